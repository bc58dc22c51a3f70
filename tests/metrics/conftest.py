"""A `RecordingMetricsSink` installed for one test and uninstalled after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cano_dsl.testing import RecordingMetricsSink


@pytest.fixture
def sink() -> Iterator[RecordingMetricsSink]:
    recording = RecordingMetricsSink()
    with recording.installed():
        yield recording
