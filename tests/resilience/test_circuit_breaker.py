"""CircuitBreaker: the state machine of REFERENCE §7.1, on a virtual clock."""

from __future__ import annotations

import datetime
import gc
import math
import threading
from collections.abc import Iterator

import anyio
import pytest

from cano_dsl import _clock
from cano_dsl._errors import CircuitOpenError, ConfigurationError
from cano_dsl.resilience import CircuitBreaker, CircuitPermit, CircuitPolicy, CircuitState
from cano_dsl.testing._clock import MockClock


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=1000.0, autojump=False) as c:
        yield c


def fast() -> CircuitPolicy:
    return CircuitPolicy(failure_threshold=3, reset_timeout=0.02, half_open_max_calls=2)


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.try_acquire().record_failure()


def trip(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.policy.failure_threshold)
    assert breaker.state is CircuitState.OPEN


# -- policy -----------------------------------------------------------------------------


def test_default_policy_values() -> None:
    policy = CircuitPolicy()
    assert (policy.failure_threshold, policy.reset_timeout, policy.half_open_max_calls) == (
        5,
        30.0,
        1,
    )
    assert CircuitPolicy.default() == policy


def test_policy_accepts_timedelta_and_reports_float_seconds() -> None:
    policy = CircuitPolicy(reset_timeout=datetime.timedelta(milliseconds=1500))
    assert policy.reset_timeout == 1.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 0},
        {"failure_threshold": -1},
        {"failure_threshold": 2**32},
        {"failure_threshold": True},
        {"half_open_max_calls": 0},
        {"half_open_max_calls": 2**31},
        {"half_open_max_calls": 1.5},
        {"reset_timeout": -1},
        {"reset_timeout": math.nan},
        {"reset_timeout": "30"},
    ],
)
def test_invalid_policy_is_a_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        CircuitPolicy(**kwargs)  # type: ignore[arg-type]


def test_largest_half_open_max_calls_is_accepted() -> None:
    assert CircuitPolicy(half_open_max_calls=2**31 - 1).half_open_max_calls == 2**31 - 1


def test_breaker_rejects_a_non_policy() -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(5)  # type: ignore[arg-type]


def test_policy_accessor_returns_configuration() -> None:
    breaker = CircuitBreaker(fast())
    assert breaker.policy.failure_threshold == 3
    assert breaker.policy.half_open_max_calls == 2


# -- closed -----------------------------------------------------------------------------


def test_starts_closed(clock: MockClock) -> None:
    assert CircuitBreaker(fast()).state is CircuitState.CLOSED
    assert CircuitBreaker().open_until is None


def test_opens_after_threshold_failures(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    fail(breaker, 3)
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == pytest.approx(clock.now() + 0.02)
    with pytest.raises(CircuitOpenError) as info:
        breaker.try_acquire()
    assert info.value.category == "circuit_open"
    assert info.value.message == "circuit breaker open: rejecting call"


def test_failures_below_threshold_do_not_trip(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_default_policy_trips_after_five_failures(clock: MockClock) -> None:
    breaker = CircuitBreaker()
    fail(breaker, 4)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_success_resets_consecutive_failures(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    fail(breaker, 2)
    breaker.try_acquire().record_success()
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_shared_breaker_trips_for_every_caller(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    caller_a = caller_b = breaker
    fail(caller_a, 3)
    with pytest.raises(CircuitOpenError):
        caller_b.try_acquire()


# -- open -> half-open -> closed ---------------------------------------------------------


def test_state_stays_open_after_reset_timeout_until_next_acquire(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(1.0)
    assert breaker.state is CircuitState.OPEN  # lazy
    permit = breaker.try_acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    assert permit.is_trial
    permit.record_success()


def test_open_rejects_until_the_cool_down_ends(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(0.019)
    with pytest.raises(CircuitOpenError):
        breaker.try_acquire()
    clock.advance(0.001)
    breaker.try_acquire().record_success()


def test_zero_reset_timeout_probes_at_once(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=0))
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.CLOSED


def test_half_open_full_success_closes(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(0.04)
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.CLOSED


def test_half_open_failure_reopens_with_fresh_cool_down(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(0.04)
    permit = breaker.try_acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    permit.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == pytest.approx(clock.now() + 0.02)


def test_half_open_caps_concurrent_trials(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(0.04)
    p1, p2 = breaker.try_acquire(), breaker.try_acquire()
    with pytest.raises(CircuitOpenError) as info:
        breaker.try_acquire()
    assert info.value.message == "circuit breaker half-open: trial slot exhausted"
    p1.record_success()
    p2.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_consuming_a_half_open_trial_frees_a_slot(clock: MockClock) -> None:
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, reset_timeout=0.02, half_open_max_calls=3)
    )
    fail(breaker)
    clock.advance(0.04)
    p1, p2, p3 = breaker.try_acquire(), breaker.try_acquire(), breaker.try_acquire()
    with pytest.raises(CircuitOpenError):
        breaker.try_acquire()
    p1.record_success()
    assert breaker.state is CircuitState.HALF_OPEN
    p4 = breaker.try_acquire()  # the freed slot admits a fresh probe
    p2.record_success()
    p3.record_success()
    assert breaker.state is CircuitState.CLOSED
    p4.record_success()  # stale now: the close bumped the epoch
    assert breaker.state is CircuitState.CLOSED


def test_partial_half_open_success_does_not_carry_across_a_reopen(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    trip(breaker)
    clock.advance(0.04)
    p1, p2 = breaker.try_acquire(), breaker.try_acquire()
    p1.record_success()
    p2.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.04)
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.HALF_OPEN  # one fresh success is not enough
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.CLOSED


def test_round_trip_open_half_open_open_half_open_closed(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2, reset_timeout=0.02))
    fail(breaker, 2)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.04)
    permit = breaker.try_acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    permit.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.04)
    breaker.try_acquire().record_success()
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 2)  # counters were reset: a fresh threshold applies
    assert breaker.state is CircuitState.OPEN


# -- epochs: stale permits never touch a new session ------------------------------------


def test_stale_closed_permit_does_not_close_a_later_half_open(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2, reset_timeout=0.02))
    stale = breaker.try_acquire()
    fail(breaker, 2)
    clock.advance(0.04)
    probe = breaker.try_acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    stale.record_success()
    assert breaker.state is CircuitState.HALF_OPEN
    probe.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_stale_half_open_permit_ignored_after_reopen(clock: MockClock) -> None:
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, reset_timeout=0.02, half_open_max_calls=2)
    )
    fail(breaker)
    clock.advance(0.04)
    p1, p2 = breaker.try_acquire(), breaker.try_acquire()
    p1.record_failure()
    assert breaker.state is CircuitState.OPEN
    p2.record_success()
    assert breaker.state is CircuitState.OPEN


def test_stale_closed_failure_ignored_after_trip(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2, reset_timeout=60))
    stale = breaker.try_acquire()
    fail(breaker, 2)
    until = breaker.open_until
    stale.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.open_until == until


# -- permits ----------------------------------------------------------------------------


def test_second_resolution_is_a_no_op(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2))
    permit = breaker.try_acquire()
    permit.record_failure()
    permit.record_failure()
    permit.record_success()
    assert permit.resolved
    assert breaker.state is CircuitState.CLOSED  # one failure only
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_dropped_permit_counts_as_failure(clock: MockClock) -> None:
    breaker = CircuitBreaker(fast())
    for _ in range(3):
        breaker.try_acquire()  # dropped unresolved at once
    assert breaker.state is CircuitState.OPEN


def test_permit_in_a_reference_cycle_counts_as_failure_when_collected(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    holder: list[object] = [breaker.try_acquire()]
    holder.append(holder)
    del holder
    gc.collect()
    assert breaker.state is CircuitState.OPEN


def test_dropped_half_open_trial_permit_reopens(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=0.02))
    fail(breaker)
    clock.advance(0.04)
    trial = breaker.try_acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    del trial
    assert breaker.state is CircuitState.OPEN


def test_drop_while_the_lock_is_held_is_applied_by_the_next_operation(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    permit = breaker.try_acquire()
    with breaker._lock:  # as if a collection ran inside the breaker's critical section
        del permit
    assert breaker.state is CircuitState.OPEN


def test_context_manager_normal_exit_is_success(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2))
    fail(breaker)
    with breaker.try_acquire() as permit:
        assert isinstance(permit, CircuitPermit)
    assert permit.resolved
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # the success reset the count


def test_context_manager_exception_is_failure(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    with pytest.raises(RuntimeError), breaker.try_acquire():
        raise RuntimeError("boom")
    assert breaker.state is CircuitState.OPEN


def test_context_manager_respects_a_resolution_made_inside(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    with breaker.try_acquire() as permit:
        permit.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(60)
    with pytest.raises(KeyError), breaker.try_acquire() as permit:
        permit.record_success()
        raise KeyError("handled elsewhere")
    assert breaker.state is CircuitState.CLOSED


def test_usable_without_an_event_loop_on_the_system_clock() -> None:
    assert _clock.get_clock().__class__.__name__ == "SystemClock"
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=3600))
    fail(breaker)
    with pytest.raises(CircuitOpenError):
        breaker.try_acquire()


def test_concurrent_threads_trip_without_corruption(clock: MockClock) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=60))

    def hammer() -> None:
        for _ in range(200):
            try:
                permit = breaker.try_acquire()
            except CircuitOpenError:
                continue
            permit.record_failure()

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.state is CircuitState.OPEN


def test_concurrent_half_open_never_admits_more_than_the_cap(clock: MockClock) -> None:
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, reset_timeout=1, half_open_max_calls=3)
    )
    fail(breaker)
    clock.advance(2)
    admitted: list[CircuitPermit] = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(50):
            try:
                permit = breaker.try_acquire()
            except CircuitOpenError:
                continue
            with lock:
                admitted.append(permit)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 3
    for permit in admitted:
        permit.record_success()
    assert breaker.state is CircuitState.CLOSED


# -- as a resource and on the virtual clock ---------------------------------------------


@pytest.mark.anyio
async def test_breaker_is_a_resource_with_no_op_lifecycle() -> None:
    breaker = CircuitBreaker()
    await breaker.setup()
    assert (await breaker.health()).is_healthy()
    await breaker.teardown()


@pytest.mark.anyio
async def test_cool_down_passes_on_the_mock_clock_during_a_library_sleep() -> None:
    with MockClock() as clock:
        breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=30))
        fail(breaker)
        before = clock.now()
        await _clock.sleep(31)
        assert clock.now() - before == pytest.approx(31)
        with breaker.try_acquire():
            pass
        assert breaker.state is CircuitState.CLOSED


@pytest.mark.anyio
async def test_permit_resolved_by_a_cancelled_task_counts_as_failure() -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    with anyio.move_on_after(0):
        with breaker.try_acquire():
            await anyio.sleep(1)
    assert breaker.state is CircuitState.OPEN
