"""Pieces shared by the breaker and the limiters: argument checks and the no-op
`Resource` lifecycle."""

from __future__ import annotations

import datetime
import math

from .. import _clock, _metrics
from .._config import seconds
from .._errors import ConfigurationError
from .._resources import HealthStatus

__all__ = [
    "NoopResource",
    "THROTTLED_REJECTED",
    "THROTTLED_WAITED",
    "acquired_metrics",
    "check_count",
    "check_cost",
    "check_positive_duration",
]

THROTTLED_WAITED: _metrics.Labels = (("result", "waited"),)
THROTTLED_REJECTED: _metrics.Labels = (("result", "rejected"),)


def acquired_metrics(cost: int, waiting_since: float | None = None) -> None:
    """A rate limiter admitted ``cost``: the acquired counter, the tokens consumed (not
    for 0) and, when the call slept (``waiting_since`` is its first sleep's library-clock
    reading), the wait histogram."""
    sink = _metrics.SINK
    if sink is None:
        return
    sink.counter(_metrics.RATE_LIMITER_ACQUIRED_TOTAL, 1, _metrics.NO_LABELS)
    if cost:
        sink.counter(_metrics.RATE_LIMITER_TOKENS_CONSUMED_TOTAL, cost, _metrics.NO_LABELS)
    if waiting_since is not None:
        sink.histogram(
            _metrics.RATE_LIMITER_WAIT_SECONDS, _clock.now_fn() - waiting_since, _metrics.NO_LABELS
        )


def check_count(value: object, what: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` in ``[minimum, maximum]``; bools and other types are rejected."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigurationError(f"{what} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{what} must be <= {maximum}, got {value}")
    return value


def check_cost(cost: object) -> int:
    """A non-negative integer cost (an integral float is accepted); NaN, infinities,
    fractions, negatives and bools raise `ConfigurationError`."""
    if isinstance(cost, float):
        if math.isnan(cost) or math.isinf(cost) or not cost.is_integer():
            raise ConfigurationError(f"cost must be a non-negative integer, got {cost!r}")
        cost = int(cost)
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise ConfigurationError(f"cost must be a non-negative integer, got {cost!r}")
    if cost < 0:
        raise ConfigurationError(f"cost must be >= 0, got {cost}")
    return cost


def check_positive_duration(value: float | datetime.timedelta, what: str) -> float:
    """Float seconds, strictly positive (infinity allowed)."""
    out = seconds(value, what)
    if out <= 0:
        raise ConfigurationError(f"{what} must be > 0 seconds, got {out!r}")
    return out


class NoopResource:
    """Breakers and limiters are `Resource`s with a no-op lifecycle, so they can be
    inserted into `Resources` and looked up inside task bodies."""

    __slots__ = ()

    async def setup(self) -> None:
        """Nothing to set up."""

    async def teardown(self) -> None:
        """Nothing to tear down."""

    async def health(self) -> HealthStatus:
        """Always healthy: the primitive itself cannot fail."""
        return HealthStatus.healthy()
