"""Scheduler tests run on virtual time: a MockClock starting at 0 and a UTC wall
clock pinned to it (2024-01-01T00:00:00Z + the clock's reading)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator

import pytest

from cano_dsl.testing import MockClock

EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=0.0) as c:
        yield c


@pytest.fixture
def utc(clock: MockClock) -> Callable[[], datetime.datetime]:
    def now() -> datetime.datetime:
        return EPOCH + datetime.timedelta(seconds=clock.now())

    return now
