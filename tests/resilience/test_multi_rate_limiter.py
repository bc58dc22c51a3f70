"""MultiRateLimiter (REFERENCE §7.4): all-or-nothing over several meters."""

from __future__ import annotations

import math
from collections.abc import Iterator

import anyio
import pytest

from cano_dsl._errors import ConfigurationError, RateLimited
from cano_dsl.resilience import (
    MeterStatus,
    MultiPermit,
    MultiRateLimiter,
    RateLimiter,
    Tier,
    WindowedRateLimiter,
)
from cano_dsl.testing._clock import MockClock


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=10.0, autojump=False) as c:
        yield c


def bucket(tokens: int) -> RateLimiter:
    return RateLimiter(tokens, 3600)


def win(limit: int) -> WindowedRateLimiter:
    return WindowedRateLimiter(limit, 3600)


def test_empty_limiter_admits(clock: MockClock) -> None:
    assert MultiRateLimiter().try_acquire() == MultiPermit(())


def test_with_tier_returns_a_new_limiter(clock: MockClock) -> None:
    base = MultiRateLimiter()
    one = base.with_tier("a", bucket(1), 1)
    assert base.tiers == ()
    assert [t.name for t in one.tiers] == ["a"]
    assert isinstance(one.tiers[0], Tier)


def test_invalid_tiers_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        MultiRateLimiter().with_tier("a", object(), 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        MultiRateLimiter().with_tier("a", bucket(1), -1)
    with pytest.raises(ConfigurationError):
        MultiRateLimiter().with_tier(3, bucket(1), 1)  # type: ignore[arg-type]


def test_admits_when_all_tiers_have_room(clock: MockClock) -> None:
    m = MultiRateLimiter().with_tier("a", bucket(5), 1).with_tier("b", win(5), 1)
    assert m.try_acquire().tiers == ("a", "b")


def test_rejects_and_reports_the_binding_tier(clock: MockClock) -> None:
    m = MultiRateLimiter().with_tier("a", win(5), 1).with_tier("b", RateLimiter(1, 10), 1)
    m.try_acquire()
    with pytest.raises(RateLimited) as info:
        m.try_acquire()
    assert info.value.tier == "b"
    assert info.value.retry_after == pytest.approx(10.0)
    assert info.value.category == "rate_limited"


def test_no_leak_on_partial_rejection(clock: MockClock) -> None:
    a, b = win(10), win(1)
    m = MultiRateLimiter().with_tier("a", a, 1).with_tier("b", b, 1)
    m.try_acquire()
    for _ in range(5):
        with pytest.raises(RateLimited):
            m.try_acquire()
    assert a.used == 1


def test_first_tier_rejection_leaves_later_tiers_untouched(clock: MockClock) -> None:
    first, second = win(1), win(10)
    m = MultiRateLimiter().with_tier("first", first, 1).with_tier("second", second, 1)
    m.try_acquire()
    with pytest.raises(RateLimited) as info:
        m.try_acquire()
    assert info.value.tier == "first"
    assert second.used == 1


def test_weighted_mixed_tiers(clock: MockClock) -> None:
    m = MultiRateLimiter().with_tier("requests", win(100), 1).with_tier("tokens", bucket(1000), 600)
    m.try_acquire()
    with pytest.raises(RateLimited) as info:
        m.try_acquire()
    assert info.value.tier == "tokens"


def test_per_request_tier_selection(clock: MockClock) -> None:
    model_x = win(1)
    m = MultiRateLimiter().with_tier("shared", win(10), 1).with_tier("model_x", model_x, 1)
    m.try_acquire(only=["shared", "model_x"])
    m.try_acquire(only=("shared",))
    m.try_acquire(only="shared")  # a bare name is one name, not its letters
    with pytest.raises(RateLimited):
        m.try_acquire(only={"shared", "model_x"})
    assert model_x.used == 1


def test_unknown_tier_in_filter_enforces_nothing(clock: MockClock) -> None:
    m = MultiRateLimiter().with_tier("a", win(1), 1)
    m.try_acquire()
    with pytest.raises(RateLimited):
        m.try_acquire()
    assert m.try_acquire(only=["nonexistent"]) == MultiPermit(())


def test_zero_cost_tier_is_inert(clock: MockClock) -> None:
    off = win(1)
    m = MultiRateLimiter().with_tier("off", off, 0).with_tier("on", win(3), 1)
    for _ in range(3):
        m.try_acquire()
    with pytest.raises(RateLimited) as info:
        m.try_acquire()
    assert info.value.tier == "on"
    assert off.used == 0


def test_commit_makes_every_tier_permanent(clock: MockClock) -> None:
    a, b = win(5), bucket(5)
    m = MultiRateLimiter().with_tier("a", a, 1).with_tier("b", b, 1)
    permit = m.try_acquire()
    del permit
    assert a.snapshot().used == 1
    assert b.snapshot().used == 1


def test_same_meter_in_two_tiers_is_charged_twice(clock: MockClock) -> None:
    shared = win(10)
    m = MultiRateLimiter().with_tier("x", shared, 1).with_tier("y", shared, 1)
    m.try_acquire()
    assert shared.used == 2


def test_cost_over_meter_capacity_is_rejected_with_infinite_retry_after(clock: MockClock) -> None:
    m = MultiRateLimiter().with_tier("impossible", win(5), 6)
    with pytest.raises(RateLimited) as info:
        m.try_acquire()
    assert info.value.retry_after == math.inf


def test_retry_after_is_floored(clock: MockClock) -> None:
    class Stingy:
        def try_debit(self, cost: int) -> int | None:
            return None

        def credit(self, cost: int, epoch: int) -> None:
            raise AssertionError("never debited")

        def time_until(self, cost: int) -> float:
            return 0.0

        def snapshot(self) -> MeterStatus:
            return MeterStatus(0, 1, 0.0)

    with pytest.raises(RateLimited) as info:
        MultiRateLimiter().with_tier("s", Stingy(), 1).try_acquire()
    assert info.value.retry_after == 0.001


def test_a_meter_raising_refunds_earlier_tiers(clock: MockClock) -> None:
    class Broken:
        def try_debit(self, cost: int) -> int | None:
            raise OSError("meter backend down")

        def credit(self, cost: int, epoch: int) -> None: ...

        def time_until(self, cost: int) -> float:
            return 0.0

        def snapshot(self) -> MeterStatus:
            return MeterStatus(0, 1, 0.0)

    a = win(5)
    m = MultiRateLimiter().with_tier("a", a, 2).with_tier("broken", Broken(), 1)
    with pytest.raises(OSError):
        m.try_acquire()
    assert a.used == 0


@pytest.mark.anyio
async def test_acquire_waits_for_the_binding_tier() -> None:
    with MockClock() as clock:
        b = RateLimiter.per_second(100).with_max_tokens(1)
        m = MultiRateLimiter().with_tier("a", win(100), 1).with_tier("b", b, 1)
        m.try_acquire()
        start = clock.now()
        permit = await m.acquire()
        assert permit.tiers == ("a", "b")
        assert clock.now() - start == pytest.approx(0.01)


@pytest.mark.anyio
async def test_acquire_waits_for_a_window_reset() -> None:
    with MockClock() as clock:
        m = MultiRateLimiter().with_tier("w", WindowedRateLimiter(1, 5), 1)
        m.try_acquire()
        start = clock.now()
        await m.acquire()
        assert clock.now() - start == pytest.approx(5.0)


@pytest.mark.anyio
async def test_acquire_with_a_never_fitting_cost_is_a_configuration_error() -> None:
    m = MultiRateLimiter().with_tier("ok", win(5), 1).with_tier("impossible", win(5), 6)
    with pytest.raises(ConfigurationError):
        await m.acquire()
    assert m.tiers[0].meter.snapshot().used == 0
    await m.acquire(only=["ok"])


@pytest.mark.anyio
async def test_concurrent_acquires_never_exceed_the_scarcest_tier() -> None:
    with MockClock():
        scarce = WindowedRateLimiter(5, 3600)
        plenty = WindowedRateLimiter(1000, 3600)
        m = MultiRateLimiter().with_tier("plenty", plenty, 1).with_tier("scarce", scarce, 1)
        admitted = 0

        async def worker() -> None:
            nonlocal admitted
            try:
                m.try_acquire()
            except RateLimited:
                return
            admitted += 1

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(worker)
        assert admitted == 5
        assert scarce.used == 5
        assert plenty.used == 5
