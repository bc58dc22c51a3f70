"""The retry loop (REFERENCE §2.5): attempts, sleeps, on_retry order, raw vs
RetryExhausted, attempt timeout, breaker integration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cano_dsl import (
    CircuitOpenError,
    RetryExhausted,
    RetryMode,
    TaskConfig,
    TaskTimeout,
    _clock,
)
from cano_dsl._retry import run_with_retries
from cano_dsl.testing import RecordingObserver


class RecordingClock:
    """A clock whose sleeps return at once and are recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def clock() -> Iterator[RecordingClock]:
    c = RecordingClock()
    previous = _clock.set_clock(c)
    yield c
    _clock.set_clock(previous)


def flaky(failures: int, exc: type[Exception] = ValueError) -> Any:
    calls = {"n": 0}

    async def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc(f"failure {calls['n']}")
        return "ok"

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


@pytest.mark.anyio
async def test_success_after_retries_sleeps_fixed_delay(clock: RecordingClock) -> None:
    fn = flaky(2)
    cfg = TaskConfig().with_fixed_retry(3, 0.5)
    assert await run_with_retries(cfg, fn) == "ok"
    assert fn.calls["n"] == 3
    assert clock.sleeps == [0.5, 0.5]


@pytest.mark.anyio
async def test_single_attempt_returns_raw_error(clock: RecordingClock) -> None:
    fn = flaky(5)
    with pytest.raises(ValueError, match="failure 1"):
        await run_with_retries(TaskConfig.minimal(), fn)
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_exhaustion_wraps_last_error(clock: RecordingClock) -> None:
    fn = flaky(10)
    with pytest.raises(RetryExhausted) as info:
        await run_with_retries(TaskConfig().with_fixed_retry(2, 0.01), fn)
    assert info.value.attempts == 3
    assert str(info.value.__cause__) == "failure 3"


@pytest.mark.anyio
async def test_on_retry_fires_before_each_sleep(clock: RecordingClock) -> None:
    order: list[Any] = []

    class Obs(RecordingObserver):
        def on_retry(self, task_id: str, attempt: int) -> None:
            order.append(("retry", attempt, len(clock.sleeps)))

    fn = flaky(2)
    await run_with_retries(
        TaskConfig().with_fixed_retry(2, 1.0), fn, task_id="t", observers=[Obs()]
    )
    assert order == [("retry", 1, 0), ("retry", 2, 1)]


@pytest.mark.anyio
async def test_attempt_timeout_is_fresh_per_attempt(clock: RecordingClock) -> None:
    calls = {"n": 0}

    async def slow_then_fast() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            await anyio.sleep(10)
        return "fast"

    cfg = TaskConfig().with_fixed_retry(1, 0).with_attempt_timeout(0.02)
    assert await run_with_retries(cfg, slow_then_fast) == "fast"
    with pytest.raises(TaskTimeout, match="task attempt exceeded attempt_timeout"):
        await run_with_retries(TaskConfig.minimal().with_attempt_timeout(0.01), anyio.sleep_forever)


class FakeBreaker:
    """A breaker double recording outcomes; opens after ``allow`` admissions."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.outcomes: list[str] = []

    def try_acquire(self) -> Any:
        if self.allow <= 0:
            raise CircuitOpenError("circuit breaker open: rejecting call")
        self.allow -= 1
        breaker = self

        class Permit:
            def record_success(self) -> None:
                breaker.outcomes.append("success")

            def record_failure(self) -> None:
                breaker.outcomes.append("failure")

        return Permit()


@pytest.mark.anyio
async def test_breaker_tripping_mid_loop_stops_retries_raw(clock: RecordingClock) -> None:
    breaker = FakeBreaker(allow=2)
    fn = flaky(10)
    obs = RecordingObserver()
    cfg = TaskConfig().with_fixed_retry(5, 0.1).with_circuit_breaker(breaker)
    with pytest.raises(CircuitOpenError):
        await run_with_retries(cfg, fn, task_id="t", observers=[obs])
    assert fn.calls["n"] == 2
    assert breaker.outcomes == ["failure", "failure"]
    assert [type(e).__name__ for e in obs.events] == ["Retry", "Retry", "CircuitOpen"]


@pytest.mark.anyio
async def test_timed_out_attempt_counts_as_breaker_failure(clock: RecordingClock) -> None:
    breaker = FakeBreaker(allow=5)
    cfg = TaskConfig.minimal().with_attempt_timeout(0.01).with_circuit_breaker(breaker)
    with pytest.raises(TaskTimeout):
        await run_with_retries(cfg, anyio.sleep_forever)
    assert breaker.outcomes == ["failure"]


@pytest.mark.anyio
async def test_cancelled_attempt_counts_as_breaker_failure(clock: RecordingClock) -> None:
    breaker = FakeBreaker(allow=5)
    cfg = TaskConfig.minimal().with_circuit_breaker(breaker)
    with anyio.move_on_after(0.01):
        await run_with_retries(cfg, anyio.sleep_forever)
    assert breaker.outcomes == ["failure"]


@pytest.mark.anyio
async def test_base_exceptions_are_never_retried(clock: RecordingClock) -> None:
    calls = {"n": 0}

    async def interrupt() -> None:
        calls["n"] += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_with_retries(TaskConfig().with_fixed_retry(3, 0), interrupt)
    assert calls["n"] == 1


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.one_of(
        st.just(RetryMode.none()),
        st.builds(
            RetryMode.fixed,
            st.integers(min_value=0, max_value=6),
            st.floats(min_value=0, max_value=5),
        ),
        st.builds(
            RetryMode.exponential_custom,
            st.integers(min_value=0, max_value=6),
            st.floats(min_value=0, max_value=2),
            st.floats(min_value=0.5, max_value=4),
            st.floats(min_value=0, max_value=60),
            st.just(0.0),
        ),
    ),
    failures=st.integers(min_value=0, max_value=10),
)
def test_attempts_and_sleeps_follow_the_mode(mode: RetryMode, failures: int) -> None:
    for backend in ("asyncio", "trio"):
        clock = RecordingClock()
        previous = _clock.set_clock(clock)
        try:
            fn = flaky(failures)

            async def go() -> object:
                try:
                    return await run_with_retries(TaskConfig(retry_mode=mode), fn)
                except Exception as exc:
                    return exc

            outcome = anyio.run(go, backend=backend)
        finally:
            _clock.set_clock(previous)
        attempts = min(failures + 1, mode.max_attempts)
        assert fn.calls["n"] == attempts
        expected_sleeps = [mode.delay_for_attempt(i) for i in range(attempts - 1)]
        assert clock.sleeps == [d for d in expected_sleeps if d]
        if failures < mode.max_attempts:
            assert outcome == "ok"
        elif mode.max_attempts == 1:
            assert isinstance(outcome, ValueError)
        else:
            assert isinstance(outcome, RetryExhausted)
            assert outcome.attempts == mode.max_attempts
