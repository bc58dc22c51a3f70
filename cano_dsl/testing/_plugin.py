"""pytest plugin (entry point ``cano_dsl``): fixtures for the testing helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._helpers import TestResources
from ._observer import RecordingObserver


@pytest.fixture
def recording_observer() -> RecordingObserver:
    """A fresh `RecordingObserver`."""
    return RecordingObserver()


@pytest.fixture
def test_resources() -> TestResources:
    """A fresh `TestResources` builder."""
    return TestResources()


@pytest.fixture
def in_memory_checkpoint_store() -> Any:
    """A fresh `InMemoryCheckpointStore`."""
    from . import InMemoryCheckpointStore

    return InMemoryCheckpointStore()


@pytest.fixture
def mock_clock() -> Iterator[Any]:
    """A `MockClock` installed as the library clock for the test."""
    from . import MockClock

    with MockClock() as clock:
        yield clock
