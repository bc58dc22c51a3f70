"""BackoffPolicy (REFERENCE §8.4): delay growth, cap, jitter bounds, trip."""

from __future__ import annotations

import datetime
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cano_dsl import BackoffPolicy, ConfigurationError


def test_defaults_match_the_original() -> None:
    p = BackoffPolicy()
    assert (p.initial, p.multiplier, p.max_delay, p.jitter, p.streak_limit) == (
        1.0,
        2.0,
        300.0,
        0.1,
        None,
    )


def test_delay_grows_exponentially_without_jitter() -> None:
    p = BackoffPolicy(initial=0.1, multiplier=2, max_delay=60, jitter=0)
    assert [p.compute_delay(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_streak_below_one_counts_as_one() -> None:
    p = BackoffPolicy(initial=3, jitter=0)
    assert p.compute_delay(0) == p.compute_delay(-5) == p.compute_delay(1) == 3.0


def test_delay_is_capped_at_max_delay() -> None:
    p = BackoffPolicy(initial=0.1, multiplier=10, max_delay=0.5, jitter=0)
    assert p.compute_delay(5) == 0.5
    assert p.compute_delay(20) == 0.5


def test_huge_streak_saturates_at_the_cap_instead_of_overflowing() -> None:
    p = BackoffPolicy(initial=1, multiplier=2, max_delay=300, jitter=0)
    assert p.compute_delay(2**32 - 1) == 300.0


def test_timedelta_durations_are_float_seconds() -> None:
    p = BackoffPolicy(
        initial=datetime.timedelta(milliseconds=250), max_delay=datetime.timedelta(minutes=1)
    )
    assert p.initial == 0.25 and p.max_delay == 60.0


@given(
    initial=st.floats(0, 1000),
    multiplier=st.floats(0, 10),
    max_delay=st.floats(0, 1000),
    jitter=st.floats(0, 3),
    streak=st.integers(-3, 200),
)
def test_jittered_delay_stays_within_bounds(
    initial: float, multiplier: float, max_delay: float, jitter: float, streak: int
) -> None:
    p = BackoffPolicy(initial=initial, multiplier=multiplier, max_delay=max_delay, jitter=jitter)
    d = p.compute_delay(streak)
    n = max(streak, 1)
    try:
        base = min(initial * multiplier ** (n - 1), max_delay)
    except OverflowError:
        base = max_delay
    j = min(jitter, 1.0)
    assert 0.0 <= d <= max_delay
    assert base * (1 - j) - 1e-9 <= d <= base * (1 + j) + 1e-9


def test_is_tripped_only_with_a_limit() -> None:
    assert not BackoffPolicy().is_tripped(10**6)
    p = BackoffPolicy.with_trip(3)
    assert [p.is_tripped(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_with_trip_zero_trips_on_the_first_failure() -> None:
    assert BackoffPolicy.with_trip(0).is_tripped(1)


def test_with_trip_on_the_class_is_the_default_plus_a_limit() -> None:
    assert BackoffPolicy.with_trip(5) == BackoffPolicy(streak_limit=5)


def test_with_trip_on_an_instance_keeps_its_other_fields() -> None:
    base = BackoffPolicy(initial=2, multiplier=3, max_delay=10, jitter=0)
    tripped = base.with_trip(4)
    assert tripped == BackoffPolicy(initial=2, multiplier=3, max_delay=10, jitter=0, streak_limit=4)
    assert base.streak_limit is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1},
        {"initial": math.nan},
        {"max_delay": -0.5},
        {"multiplier": -2},
        {"multiplier": math.nan},
        {"jitter": -0.1},
        {"jitter": math.nan},
        {"streak_limit": -1},
        {"streak_limit": 2**32},
        {"streak_limit": 1.5},
        {"initial": "1"},
    ],
)
def test_invalid_numbers_raise_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]
