"""`BackoffPolicy`: how long a scheduled flow waits after failing, and when it trips
(REFERENCE §8.4).

After the n-th consecutive failure (the *streak*) the scheduler parks the flow in
``Backoff`` for ``compute_delay(n)`` seconds, or in ``Tripped`` once
``is_tripped(n)``; a tripped flow does not run again until ``reset_flow``.

```
delay(n) = min(initial * multiplier ** (n - 1), max_delay)     n < 1 counts as 1
         * (1 + jitter * U(-1, 1))                              only when jitter > 0
         then floored at 0 and capped at max_delay again
```
"""

from __future__ import annotations

import datetime
import math
import random
from typing import Any

import attrs

from .._config import seconds
from .._errors import ConfigurationError

__all__ = ["BackoffPolicy", "STREAK_MAX"]

#: Failure streaks saturate here (the original counts them in a ``u32``).
STREAK_MAX = 2**32 - 1


def _initial(value: float | datetime.timedelta) -> float:
    return seconds(value, "BackoffPolicy.initial")


def _max_delay(value: float | datetime.timedelta) -> float:
    return seconds(value, "BackoffPolicy.max_delay")


def _multiplier(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"BackoffPolicy.multiplier must be a number, got {value!r}")
    out = float(value)
    if math.isnan(out) or out < 0:
        raise ConfigurationError(f"BackoffPolicy.multiplier must be >= 0, got {out!r}")
    return out


def _jitter(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"BackoffPolicy.jitter must be a number, got {value!r}")
    out = float(value)
    if math.isnan(out) or out < 0:
        raise ConfigurationError(f"BackoffPolicy.jitter must be >= 0, got {out!r}")
    return out


def _limit(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"BackoffPolicy.streak_limit must be an int, got {value!r}")
    if not 0 <= value <= STREAK_MAX:
        raise ConfigurationError(
            f"BackoffPolicy.streak_limit must be in [0, {STREAK_MAX}], got {value}"
        )
    return value


class _ClassOrInstance:
    """``with_trip`` works on the class (the default policy plus a limit, like the
    original's constructor) and on an instance (that policy plus a limit)."""

    def __init__(self, func: Any) -> None:
        self._func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: object, owner: type) -> Any:
        target = owner() if obj is None else obj

        def bound(n: int) -> Any:
            return self._func(target, n)

        bound.__doc__ = self._func.__doc__
        return bound


@attrs.frozen
class BackoffPolicy:
    """Delay after a failed scheduled run, and the streak at which the flow trips.

    ``initial``: delay after the first failure of a streak (seconds or ``timedelta``,
    default 1 s). ``multiplier``: growth per further failure (default 2.0).
    ``max_delay``: hard cap (default 300 s). ``jitter``: relative spread in ``[0, 1]``
    (default 0.1; larger values are clamped to 1 when used). ``streak_limit``: trip
    after this many consecutive failures (default ``None``: never trip; 0 trips on
    the first failure). Every flow gets ``BackoffPolicy()`` unless
    ``Scheduler.set_backoff`` says otherwise.
    """

    initial: float = attrs.field(default=1.0, converter=_initial)
    multiplier: float = attrs.field(default=2.0, converter=_multiplier)
    max_delay: float = attrs.field(default=300.0, converter=_max_delay)
    jitter: float = attrs.field(default=0.1, converter=_jitter)
    streak_limit: int | None = attrs.field(default=None, converter=_limit)

    @_ClassOrInstance
    def with_trip(self, n: int) -> BackoffPolicy:
        """This policy (the default one when called on the class) tripping after
        ``n`` consecutive failures."""
        return attrs.evolve(self, streak_limit=n)

    def with_jitter(self, jitter: float) -> BackoffPolicy:
        """This policy with another jitter (0 makes `compute_delay` deterministic)."""
        return attrs.evolve(self, jitter=jitter)

    def compute_delay(self, streak: int) -> float:
        """Seconds to wait after ``streak`` consecutive failures (``streak < 1`` counts
        as 1); at most ``max_delay``."""
        n = max(int(streak), 1)
        try:
            base = self.initial * self.multiplier ** (n - 1)
        except OverflowError:
            base = math.inf
        if math.isnan(base):  # 0 s * inf
            base = 0.0
        capped = min(base, self.max_delay)
        if self.jitter > 0:
            j = min(self.jitter, 1.0)
            capped *= 1.0 + j * random.uniform(-1.0, 1.0)
        return min(max(capped, 0.0), self.max_delay)

    def is_tripped(self, failure_streak: int) -> bool:
        """True once ``failure_streak`` reaches ``streak_limit`` (never without one)."""
        return self.streak_limit is not None and failure_streak >= self.streak_limit
