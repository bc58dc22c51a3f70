"""RateLimiter (token bucket, REFERENCE §7.2) on a virtual clock."""

from __future__ import annotations

import datetime
import gc
import math
import threading
from collections.abc import Iterator

import anyio
import pytest

from cano_dsl._errors import ConfigurationError
from cano_dsl.resilience import Meter, RateLimiter, RateLimiterPolicy, Reservation
from cano_dsl.testing._clock import MockClock


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=500.0, autojump=False) as c:
        yield c


def fast() -> RateLimiter:
    return RateLimiter.per_second(10).with_max_tokens(5)


# -- construction -----------------------------------------------------------------------


def test_new_sets_capacity_and_rate_from_tokens_and_period() -> None:
    limiter = RateLimiter(10, datetime.timedelta(seconds=2))
    assert limiter.policy == RateLimiterPolicy(10, 10, 2.0, 0)
    assert limiter.capacity == 10
    assert limiter.policy.rate == 5.0


def test_with_methods_return_new_limiters_and_leave_the_receiver_alone() -> None:
    base = RateLimiter.per_second(10)
    burst = base.with_burst(5)
    smaller = base.with_max_tokens(2)
    assert burst is not base and smaller is not base
    assert (base.capacity, burst.capacity, smaller.capacity) == (10, 15, 2)
    assert smaller.policy.rate == base.policy.rate


@pytest.mark.parametrize(
    "build",
    [
        lambda: RateLimiter(0, 1),
        lambda: RateLimiter(-1, 1),
        lambda: RateLimiter(1, 0),
        lambda: RateLimiter(1, -1),
        lambda: RateLimiter(1, math.nan),
        lambda: RateLimiter(1, math.inf),
        lambda: RateLimiter(True, 1),
        lambda: RateLimiter.per_second(1).with_max_tokens(0),
        lambda: RateLimiter.per_second(1).with_burst(-1),
        lambda: RateLimiterPolicy(1, 0, 1.0),
    ],
)
def test_invalid_values_are_configuration_errors(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("cost", [-1, math.nan, 1.5, math.inf, "1", True])
def test_invalid_costs_are_configuration_errors(cost: object) -> None:
    limiter = fast()
    with pytest.raises(ConfigurationError):
        limiter.try_acquire(cost)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        limiter.try_reserve(cost)  # type: ignore[arg-type]


def test_integral_float_cost_is_accepted(clock: MockClock) -> None:
    limiter = fast()
    assert limiter.try_acquire(2.0)  # type: ignore[arg-type]
    assert limiter.tokens_available == 3


# -- try_acquire ------------------------------------------------------------------------


def test_bucket_starts_full(clock: MockClock) -> None:
    limiter = fast()
    assert limiter.tokens_available == 5
    assert all(limiter.try_acquire() for _ in range(5))
    assert not limiter.try_acquire()


def test_burst_adds_capacity(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(10).with_max_tokens(2).with_burst(5)
    admitted = 0
    while limiter.try_acquire() and admitted < 100:
        admitted += 1
    assert admitted == 7


def test_weighted_cost_debits_cost(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(10)
    assert limiter.try_acquire(3)
    assert limiter.tokens_available == 7
    assert limiter.try_acquire(7)
    assert limiter.tokens_available == 0
    assert not limiter.try_acquire(1)


def test_zero_cost_always_admits_without_debit(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(10).with_max_tokens(2)
    limiter.try_acquire(2)
    assert all(limiter.try_acquire(0) for _ in range(10))
    assert limiter.tokens_available == 0


def test_cost_over_available_rejects_without_partial_debit(clock: MockClock) -> None:
    limiter = fast()
    assert not limiter.try_acquire(6)
    assert limiter.tokens_available == 5
    assert limiter.try_acquire(5)
    assert not limiter.try_acquire(1)


def test_tokens_refill_with_time_up_to_capacity(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(50).with_max_tokens(1)
    assert limiter.try_acquire()
    assert not limiter.try_acquire()
    clock.advance(0.01)  # half a token
    assert not limiter.try_acquire()
    clock.advance(0.01)
    assert limiter.try_acquire()
    clock.advance(3600)
    assert limiter.tokens_available == 1


def test_time_until(clock: MockClock) -> None:
    limiter = fast()  # 10/s, capacity 5
    assert limiter.time_until(5) == 0.0
    assert limiter.time_until(0) == 0.0
    assert limiter.time_until(6) == math.inf
    limiter.try_acquire(5)
    assert limiter.time_until(2) == pytest.approx(0.2)
    clock.advance(0.1)
    assert limiter.time_until(2) == pytest.approx(0.1)


def test_huge_cost_rejects_without_error(clock: MockClock) -> None:
    limiter = fast()
    assert not limiter.try_acquire(2**64)
    assert limiter.time_until(2**64) == math.inf


def test_same_limiter_object_shares_the_bucket(clock: MockClock) -> None:
    limiter = fast()
    alias = limiter
    assert limiter.try_acquire(5)
    assert not alias.try_acquire()


def test_threads_never_over_admit(clock: MockClock) -> None:
    limiter = RateLimiter(100, 3600)
    admitted = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(100):
            if limiter.try_acquire():
                with lock:
                    admitted.append(1)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 100


def test_clock_stepping_back_rebases_instead_of_draining(clock: MockClock) -> None:
    limiter = fast()
    limiter.try_acquire(5)
    with MockClock(start=0.0, autojump=False) as earlier:
        assert not limiter.try_acquire()
        earlier.advance(0.1)
        assert limiter.try_acquire()


# -- reservations -----------------------------------------------------------------------


def test_reservation_refunds_when_dropped(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1).with_max_tokens(10)
    reservation = limiter.try_reserve(4)
    assert isinstance(reservation, Reservation)
    assert limiter.tokens_available == 6
    del reservation
    assert limiter.tokens_available == 10


def test_reservation_commit_keeps_the_debit(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1).with_max_tokens(10)
    reservation = limiter.try_reserve(4)
    assert reservation is not None
    reservation.commit()
    assert reservation.committed
    del reservation
    assert limiter.tokens_available == 6


def test_reservation_cancel_refunds_once(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1).with_max_tokens(10)
    reservation = limiter.try_reserve(4)
    other = limiter.try_reserve(4)
    assert reservation is not None and other is not None
    other.commit()
    reservation.cancel()
    reservation.cancel()
    reservation.commit()  # first resolution wins
    assert reservation.cancelled
    assert limiter.tokens_available == 6


def test_reservation_refund_is_capped_at_capacity(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1000).with_max_tokens(5)
    reservation = limiter.try_reserve(3)
    clock.advance(1)  # refills to the cap meanwhile
    assert limiter.tokens_available == 5
    assert reservation is not None
    reservation.cancel()
    assert limiter.tokens_available == 5


def test_reservation_as_context_manager_refunds_unless_committed(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1).with_max_tokens(10)
    with limiter.try_reserve(3) as kept:  # type: ignore[union-attr]
        kept.commit()
    with limiter.try_reserve(3):  # type: ignore[union-attr]
        pass
    assert limiter.tokens_available == 7


def test_reservation_rejected_when_tokens_are_short(clock: MockClock) -> None:
    limiter = fast()
    assert limiter.try_reserve(6) is None
    zero = limiter.try_reserve(0)
    assert zero is not None and zero.cost == 0


def test_reservation_collected_inside_the_lock_is_refunded_later(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(1).with_max_tokens(10)
    reservation = limiter.try_reserve(4)
    with limiter._lock:
        del reservation
        gc.collect()
    assert limiter.tokens_available == 10


# -- Meter ------------------------------------------------------------------------------


def test_bucket_is_a_meter_with_a_snapshot(clock: MockClock) -> None:
    limiter = RateLimiter.per_second(10)
    assert isinstance(limiter, Meter)
    assert limiter.try_debit(4) == 0
    status = limiter.snapshot()
    assert (status.used, status.limit, status.available_in, status.resets_at) == (4, 10, 0.0, None)
    limiter.credit(4, 0)
    assert limiter.snapshot().used == 0
    assert limiter.try_debit(11) is None


# -- acquire ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_acquire_returns_at_once_when_tokens_are_there() -> None:
    with MockClock() as clock:
        limiter = fast()
        before = clock.now()
        await limiter.acquire()
        assert clock.now() == before
        assert limiter.tokens_available == 4


@pytest.mark.anyio
async def test_acquire_waits_exactly_the_deficit() -> None:
    with MockClock() as clock:
        limiter = RateLimiter.per_second(100).with_max_tokens(1)
        assert limiter.try_acquire()
        before = clock.now()
        await limiter.acquire()
        assert clock.now() - before == pytest.approx(0.01)


@pytest.mark.anyio
async def test_acquire_weighted_cost_waits_for_the_refill() -> None:
    with MockClock() as clock:
        limiter = RateLimiter.per_second(200).with_max_tokens(5)
        assert limiter.try_acquire(5)
        before = clock.now()
        await limiter.acquire(5)
        assert clock.now() - before == pytest.approx(0.025)


@pytest.mark.anyio
async def test_acquire_over_capacity_is_a_configuration_error_at_once() -> None:
    limiter = fast()
    with pytest.raises(ConfigurationError):
        await limiter.acquire(6)
    with pytest.raises(ConfigurationError):
        await limiter.acquire(-1)


@pytest.mark.anyio
async def test_concurrent_acquires_are_paced_to_the_rate() -> None:
    with MockClock() as clock:
        limiter = RateLimiter.per_second(5).with_max_tokens(1)
        stamps: list[float] = []
        start = clock.now()

        async def worker() -> None:
            for _ in range(5):
                await limiter.acquire()
                stamps.append(clock.now() - start)

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)
        assert len(stamps) == 10
        assert stamps == sorted(stamps)
        assert stamps[-1] == pytest.approx(1.8)
        for i, stamp in enumerate(stamps):  # never ahead of the bucket
            assert stamp >= i * 0.2 - 1e-9


@pytest.mark.anyio
async def test_slow_refill_wait_is_cancellable() -> None:
    limiter = RateLimiter(1, 10**9)
    assert limiter.try_acquire()
    with anyio.move_on_after(0.01) as scope:
        await limiter.acquire()
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_limiter_is_a_resource() -> None:
    limiter = fast()
    await limiter.setup()
    assert (await limiter.health()).is_healthy()
    await limiter.teardown()
