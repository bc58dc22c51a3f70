"""RetryMode formulas and pinned values, TaskConfig (REFERENCE §2.3-2.4)."""

from __future__ import annotations

import datetime
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cano_dsl import CircuitBreaker, CircuitPolicy, ConfigurationError, RetryMode, TaskConfig


def test_none_is_one_attempt() -> None:
    mode = RetryMode.none()
    assert mode.max_attempts == 1
    assert mode.delay_for_attempt(0) is None


def test_fixed_delays_then_none() -> None:
    mode = RetryMode.fixed(2, 0.05)
    assert mode.max_attempts == 3
    assert [mode.delay_for_attempt(i) for i in range(3)] == [0.05, 0.05, None]


def test_exponential_default_equals_custom() -> None:
    assert RetryMode.exponential(3) == RetryMode.exponential_custom(3, 0.1, 2.0, 30, 0.1)
    assert RetryMode.exponential(3).max_attempts == 4


def test_pinned_exponential_values() -> None:
    mode = RetryMode.exponential_custom(2, datetime.timedelta(milliseconds=50), 3.0, 5, 0)
    assert [mode.delay_for_attempt(i) for i in range(3)] == [0.05, 0.15, None]
    capped = RetryMode.exponential_custom(3, 0.1, 10.0, 0.5, 0.0)
    assert [capped.delay_for_attempt(i) for i in range(3)] == [0.1, 0.5, 0.5]


@pytest.mark.parametrize("mult", [float("nan"), 0.0, -2.0, float("inf")])
def test_degenerate_multiplier_means_every_delay_is_base(mult: float) -> None:
    mode = RetryMode.exponential_custom(3, 0.1, mult, 30, 0)
    assert [mode.delay_for_attempt(i) for i in range(3)] == [0.1, 0.1, 0.1]


@pytest.mark.parametrize("jitter", [7.0, 1.01, -1.0, -0.0001, float("nan"), float("inf")])
def test_jitter_outside_zero_one_is_refused_not_clamped(jitter: float) -> None:
    with pytest.raises(ConfigurationError, match=r"jitter must be a number in \[0, 1\]"):
        RetryMode.exponential_custom(1, 0.1, 2.0, 1, jitter)


@given(st.integers(min_value=0, max_value=20))
def test_jitter_half_stays_within_bounds(i: int) -> None:
    mode = RetryMode.exponential_custom(30, 0.1, 1.0, 30, 0.5)
    d = mode.delay_for_attempt(i)
    assert d is not None and 0.05 <= d <= 0.15


@given(
    retries=st.integers(min_value=0, max_value=12),
    base_ms=st.integers(min_value=0, max_value=5000),
    mult=st.floats(min_value=0.5, max_value=8.0),
    cap_ms=st.integers(min_value=0, max_value=60_000),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    i=st.integers(min_value=0, max_value=15),
)
def test_backoff_bounds(
    retries: int, base_ms: int, mult: float, cap_ms: int, jitter: float, i: int
) -> None:
    mode = RetryMode.exponential_custom(retries, base_ms / 1000, mult, cap_ms / 1000, jitter)
    d = mode.delay_for_attempt(i)
    if i >= retries:
        assert d is None
        return
    assert d is not None
    capped = min(base_ms * mult**i, cap_ms)
    assert d * 1000 <= capped * (1 + jitter) + 1
    assert d * 1000 >= math.floor(capped * (1 - jitter)) - 1 or d == 0.001
    if base_ms > 0:
        assert d >= 0.001
    else:
        assert d == 0


@pytest.mark.parametrize(
    "build",
    [
        lambda: RetryMode.fixed(-1, 0.1),
        lambda: RetryMode.fixed(1, -0.1),
        lambda: RetryMode.fixed(1, float("nan")),
        lambda: RetryMode.exponential(-3),
        lambda: RetryMode.exponential_custom(1, -1, 2, 1, 0),
        lambda: TaskConfig().with_attempt_timeout(float("nan")),
        lambda: TaskConfig().with_attempt_timeout(-1),
    ],
)
def test_invalid_numbers_raise_configuration_error(build: object) -> None:
    with pytest.raises(ConfigurationError):
        build()  # type: ignore[operator]


def test_task_config_defaults_and_builders() -> None:
    assert TaskConfig() == TaskConfig.default()
    assert TaskConfig.default().retry_mode == RetryMode.exponential(3)
    assert TaskConfig.minimal().retry_mode == RetryMode.none()
    base = TaskConfig()
    t = base.with_attempt_timeout(datetime.timedelta(milliseconds=250))
    assert t.attempt_timeout == 0.25 and base.attempt_timeout is None
    assert base.with_fixed_retry(2, 0.01).retry_mode == RetryMode.fixed(2, 0.01)
    assert base.with_exponential_retry(5).retry_mode == RetryMode.exponential(5)
    assert base.with_retry(RetryMode.none()).retry_mode.max_attempts == 1
    breaker = CircuitBreaker(CircuitPolicy())
    assert base.with_circuit_breaker(breaker).circuit_breaker is breaker
    assert base.circuit_breaker is None


def test_configs_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        TaskConfig().attempt_timeout = 3  # type: ignore[misc]
