"""Always-on metrics of the circuit breaker and the rate limiters (REFERENCE §7, §11.3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitState,
    MultiRateLimiter,
    RateLimited,
    RateLimiter,
    WindowedRateLimiter,
)
from cano_dsl.testing import MockClock, RecordingMetricsSink


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=1000.0, autojump=True) as c:
        yield c


def test_breaker_acquires_outcomes_and_every_transition(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=10))
    breaker.try_acquire().record_failure()  # closed -> open
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(Exception):
        breaker.try_acquire()
    clock.advance(10)
    breaker.try_acquire().record_failure()  # open -> half-open -> open
    clock.advance(10)
    breaker.try_acquire().record_success()  # open -> half-open -> closed
    breaker.try_acquire().record_success()  # CLOSED fast path
    with breaker.try_acquire():
        pass

    def transitions(t: str) -> float:
        return sink.counter_value("cano_circuit_transitions_total", transition=t)

    assert transitions("closed_to_open") == 1
    assert transitions("open_to_halfopen") == 2
    assert transitions("halfopen_to_open") == 1
    assert transitions("halfopen_to_closed") == 1
    assert sink.counter_value("cano_circuit_acquires_total", result="acquired") == 5
    assert sink.counter_value("cano_circuit_acquires_total", result="rejected") == 1
    assert sink.counter_value("cano_circuit_outcomes_total", outcome="failure") == 2
    assert sink.counter_value("cano_circuit_outcomes_total", outcome="success") == 3


def test_a_second_resolution_records_no_second_outcome(sink: RecordingMetricsSink) -> None:
    permit = CircuitBreaker().try_acquire()
    permit.record_success()
    permit.record_failure()
    assert sink.counter_value("cano_circuit_outcomes_total") == 1


def test_bucket_try_acquire_counts_acquired_tokens_and_rejections(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    limiter = RateLimiter(3, 60)
    assert limiter.try_acquire(2)
    assert limiter.try_acquire(0)
    assert not limiter.try_acquire(2)
    assert sink.counter_value("cano_rate_limiter_acquired_total") == 2
    assert sink.counter_value("cano_rate_limiter_tokens_consumed_total") == 2
    assert sink.counter_value("cano_rate_limiter_throttled_total", result="rejected") == 1
    assert sink.histogram_values("cano_rate_limiter_wait_seconds") == []


@pytest.mark.anyio
async def test_bucket_acquire_that_waits_records_the_wait(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    limiter = RateLimiter(1, 2.0)
    await limiter.acquire()
    assert sink.histogram_values("cano_rate_limiter_wait_seconds") == []
    await limiter.acquire()
    assert sink.counter_value("cano_rate_limiter_acquired_total") == 2
    assert sink.counter_value("cano_rate_limiter_tokens_consumed_total") == 2
    assert sink.counter_value("cano_rate_limiter_throttled_total", result="waited") >= 1
    (waited,) = sink.histogram_values("cano_rate_limiter_wait_seconds")
    assert waited == pytest.approx(2.0, abs=0.01)


@pytest.mark.anyio
async def test_window_limiter_counts_like_the_bucket(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    limiter = WindowedRateLimiter(2, 5.0)
    assert limiter.try_acquire(2)
    assert not limiter.try_acquire()
    await limiter.acquire()
    assert sink.counter_value("cano_rate_limiter_acquired_total") == 2
    assert sink.counter_value("cano_rate_limiter_tokens_consumed_total") == 3
    assert sink.counter_value("cano_rate_limiter_throttled_total", result="rejected") == 1
    assert sink.counter_value("cano_rate_limiter_throttled_total", result="waited") >= 1
    assert len(sink.histogram_values("cano_rate_limiter_wait_seconds")) == 1


def test_multi_limiter_counts_the_blocking_tier(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    multi = (
        MultiRateLimiter()
        .with_tier("per_minute", WindowedRateLimiter(1, 60), 1)
        .with_tier("per_second", RateLimiter(10, 1), 1)
    )
    multi.try_acquire()
    with pytest.raises(RateLimited):
        multi.try_acquire()
    assert sink.counter_value("cano_multi_rate_limiter_throttled_total", tier="per_minute") == 1
    # tiers are reserved, not acquired: no per-limiter metric
    assert "cano_rate_limiter_acquired_total" not in sink.names()
