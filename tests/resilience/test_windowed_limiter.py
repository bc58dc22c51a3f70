"""WindowedRateLimiter (fixed window, REFERENCE §7.3) on a virtual clock."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator

import anyio
import pytest

from cano_dsl._errors import ConfigurationError
from cano_dsl.resilience import Meter, WindowedRateLimiter, WindowPolicy
from cano_dsl.testing._clock import MockClock


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=100.0, autojump=False) as c:
        yield c


@pytest.mark.parametrize(
    "build",
    [
        lambda: WindowedRateLimiter(0, 1),
        lambda: WindowedRateLimiter(-3, 1),
        lambda: WindowedRateLimiter(1, 0),
        lambda: WindowedRateLimiter(1, -1),
        lambda: WindowedRateLimiter(1, math.nan),
        lambda: WindowedRateLimiter.per_hours(1, math.nan),
        lambda: WindowedRateLimiter.per_days(0, 1),
    ],
)
def test_invalid_values_are_configuration_errors(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


def test_policy_constructors_scale_durations() -> None:
    assert WindowPolicy.per_hours(42, 5) == WindowPolicy(42, 5 * 3600)
    assert WindowPolicy.per_days(7, 2).window == 2 * 86_400
    assert WindowedRateLimiter.per_hours(3, 5).policy.window == 18_000
    assert WindowedRateLimiter(3, datetime.timedelta(minutes=1)).policy.window == 60.0


def test_admits_up_to_limit(clock: MockClock) -> None:
    w = WindowedRateLimiter(3, 60)
    assert all(w.try_acquire() for _ in range(3))
    assert not w.try_acquire()
    assert (w.used, w.remaining) == (3, 0)


def test_weighted_admits_by_cost(clock: MockClock) -> None:
    w = WindowedRateLimiter(1000, 60)
    assert not w.try_acquire(1500)
    assert w.try_acquire(600)
    assert not w.try_acquire(600)
    assert w.try_acquire(400)
    assert w.used == 1000


def test_zero_cost_is_inert(clock: MockClock) -> None:
    w = WindowedRateLimiter(1, 60)
    assert w.try_acquire()
    assert all(w.try_acquire(0) for _ in range(5))
    assert w.used == 1


def test_resets_after_the_window_and_reopens_at_the_access(clock: MockClock) -> None:
    w = WindowedRateLimiter(2, 10)
    assert w.resets_at == pytest.approx(110.0)  # opened at construction
    w.try_acquire(2)
    clock.advance(9.999)
    assert not w.try_acquire()
    clock.advance(5.001)  # 15 s after the start: the roll happens now, not on a grid
    assert w.try_acquire()
    assert w.used == 1
    assert w.resets_at == pytest.approx(125.0)


def test_time_until(clock: MockClock) -> None:
    w = WindowedRateLimiter(2, 10)
    assert w.time_until(2) == 0.0
    assert w.time_until(3) == math.inf
    w.try_acquire()
    clock.advance(4)
    assert w.time_until(1) == 0.0
    assert w.time_until(2) == pytest.approx(6.0)


def test_reservation_within_window_refunds(clock: MockClock) -> None:
    w = WindowedRateLimiter(5, 10)
    reservation = w.try_reserve(3)
    assert reservation is not None and w.used == 3
    del reservation
    assert w.used == 0


def test_reservation_commit_keeps_usage(clock: MockClock) -> None:
    w = WindowedRateLimiter(5, 10)
    reservation = w.try_reserve(3)
    assert reservation is not None
    reservation.commit()
    del reservation
    assert w.used == 3


def test_stale_reservation_does_not_erase_usage_of_a_new_window(clock: MockClock) -> None:
    w = WindowedRateLimiter(3, 10)
    stale = w.try_reserve(3)
    clock.advance(10)
    assert w.try_acquire(2)  # window 2
    assert stale is not None
    stale.cancel()  # belongs to window 1: dropped
    assert w.used == 2
    assert w.try_acquire(1)
    assert not w.try_acquire(1)


def test_stale_reservation_collected_inside_the_lock_is_dropped(clock: MockClock) -> None:
    w = WindowedRateLimiter(3, 10)
    stale = w.try_reserve(3)
    clock.advance(10)
    assert w.try_acquire(2)
    with w._lock:
        del stale
    assert w.used == 2


def test_over_limit_reservation_is_none(clock: MockClock) -> None:
    assert WindowedRateLimiter(3, 10).try_reserve(4) is None


def test_window_is_a_meter_with_a_snapshot(clock: MockClock) -> None:
    w = WindowedRateLimiter(10, 60)
    assert isinstance(w, Meter)
    assert w.try_debit(4) == 0
    status = w.snapshot()
    assert (status.used, status.limit, status.available_in) == (4, 10, 0.0)
    assert status.resets_at == pytest.approx(160.0)
    w.try_debit(6)
    clock.advance(20)
    assert w.snapshot().available_in == pytest.approx(40.0)


@pytest.mark.anyio
async def test_acquire_waits_until_the_reset() -> None:
    with MockClock() as clock:
        w = WindowedRateLimiter(1, 30)
        start = clock.now()
        await w.acquire()
        await w.acquire()
        assert clock.now() - start == pytest.approx(30.0)
        assert w.used == 1


@pytest.mark.anyio
async def test_acquire_over_limit_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        await WindowedRateLimiter(3, 1).acquire(4)


@pytest.mark.anyio
async def test_concurrent_acquires_admit_exactly_the_limit_per_window() -> None:
    with MockClock() as clock:
        w = WindowedRateLimiter(10, 60)
        start = clock.now()
        stamps: list[float] = []

        async def worker() -> None:
            await w.acquire()
            stamps.append(clock.now() - start)

        async with anyio.create_task_group() as tg:
            for _ in range(25):
                tg.start_soon(worker)
        assert sum(1 for s in stamps if s < 60) == 10
        assert sum(1 for s in stamps if 60 <= s < 120) == 10
        assert sum(1 for s in stamps if s >= 120) == 5
