"""Fixed-window rate limiter: at most ``limit`` units per ``window`` (REFERENCE §7.3).

The window opens when the limiter is built and is rolled lazily by the first access
at or after ``start + window``: the new window starts *then* (not on a grid), usage
drops to 0 and a generation counter moves on. Reservations remember the generation
they were debited in, so a refund arriving after a roll is dropped instead of erasing
usage of the new window.
"""

from __future__ import annotations

import datetime
import math
import threading
from collections import deque

import attrs

from .. import _clock, _metrics
from .._errors import ConfigurationError
from ._common import (
    THROTTLED_REJECTED,
    THROTTLED_WAITED,
    NoopResource,
    acquired_metrics,
    check_cost,
    check_count,
    check_positive_duration,
)
from ._meter import MIN_WAIT, MeterStatus, Reservation

__all__ = ["WindowPolicy", "WindowedRateLimiter"]


def _limit(value: int) -> int:
    return check_count(value, "WindowPolicy.limit")


def _window(value: float | datetime.timedelta) -> float:
    return check_positive_duration(value, "WindowPolicy.window")


@attrs.frozen
class WindowPolicy:
    """At most ``limit`` units per ``window`` seconds (float or ``timedelta``)."""

    limit: int = attrs.field(converter=_limit)
    window: float = attrs.field(converter=_window)

    @classmethod
    def per_hours(cls, limit: int, hours: float) -> WindowPolicy:
        """``limit`` units per ``hours`` hours."""
        return cls(limit, _scaled(hours, 3600.0, "hours"))

    @classmethod
    def per_days(cls, limit: int, days: float) -> WindowPolicy:
        """``limit`` units per ``days`` days."""
        return cls(limit, _scaled(days, 86_400.0, "days"))


def _scaled(value: float, unit: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"{what} must be a number, got {value!r}")
    return float(value) * unit


class WindowedRateLimiter(NoopResource):
    """A thread-safe fixed-window counter: the whole quota is there at once and comes
    back as a step when the window resets ("N per 5 hours, resets at ...").

    ```python
    from cano_dsl import WindowedRateLimiter

    window = WindowedRateLimiter(3, 60)       # 3 calls a minute
    assert all(window.try_acquire() for _ in range(3))
    assert not window.try_acquire()
    assert (window.used, window.remaining) == (3, 0)
    ```
    """

    __slots__ = (
        "__weakref__",
        "_generation",
        "_limit",
        "_lock",
        "_pending",
        "_policy",
        "_start",
        "_used",
        "_window",
    )

    def __init__(self, limit: int, window: float | datetime.timedelta) -> None:
        self._setup(WindowPolicy(limit, window))

    def _setup(self, policy: WindowPolicy) -> None:
        self._policy = policy
        self._limit = policy.limit
        self._window = policy.window
        self._lock = threading.Lock()
        self._start = _clock.now_fn()
        self._used = 0
        self._generation = 0
        self._pending: deque[tuple[int, int]] = deque()

    @classmethod
    def from_policy(cls, policy: WindowPolicy) -> WindowedRateLimiter:
        """A limiter with an empty window shaped by ``policy``."""
        if not isinstance(policy, WindowPolicy):
            raise ConfigurationError(f"expected a WindowPolicy, got {policy!r}")
        limiter = cls.__new__(cls)
        limiter._setup(policy)
        return limiter

    @classmethod
    def per_hours(cls, limit: int, hours: float) -> WindowedRateLimiter:
        """``limit`` units per ``hours`` hours."""
        return cls.from_policy(WindowPolicy.per_hours(limit, hours))

    @classmethod
    def per_days(cls, limit: int, days: float) -> WindowedRateLimiter:
        """``limit`` units per ``days`` days."""
        return cls.from_policy(WindowPolicy.per_days(limit, days))

    @property
    def policy(self) -> WindowPolicy:
        """The policy this limiter was built with."""
        return self._policy

    def __repr__(self) -> str:
        return f"WindowedRateLimiter({self._policy!r})"

    # -- window arithmetic (lock held) ------------------------------------------------

    def _roll_locked(self) -> float:
        if self._pending:
            self._drain_locked()
        now = _clock.now_fn()
        elapsed = now - self._start
        if elapsed >= self._window:
            self._start = now
            self._used = 0
            self._generation += 1
        elif elapsed < 0.0:  # the clock was swapped for one that reads earlier: rebase
            self._start = now
        return now

    def _drain_locked(self) -> None:
        pending = self._pending
        while pending:
            cost, epoch = pending.popleft()
            if epoch == self._generation:
                self._used = max(self._used - cost, 0)

    def _until_reset(self, now: float) -> float:
        return max(self._start + self._window - now, 0.0)

    def _debit(self, cost: int) -> int | None:
        with self._lock:
            self._roll_locked()
            if self._used + cost <= self._limit:
                self._used += cost
                return self._generation
            return None

    # -- acquiring --------------------------------------------------------------------

    def try_acquire(self, cost: int = 1) -> bool:
        """Count ``cost`` units if the window has room; never waits. A cost of 0 always
        succeeds; a cost above the limit never does."""
        if cost.__class__ is not int or cost <= 0:
            cost = check_cost(cost)
            if cost == 0:
                acquired_metrics(0)
                return True
        with self._lock:
            if self._pending:
                self._drain_locked()
            now = _clock.now_fn()
            elapsed = now - self._start
            if elapsed >= self._window:
                self._start = now
                self._used = 0
                self._generation += 1
            elif elapsed < 0.0:
                self._start = now
            used = self._used + cost
            ok = used <= self._limit
            if ok:
                self._used = used
        sink = _metrics.SINK
        if sink is not None:
            if ok:
                acquired_metrics(cost)
            else:
                sink.counter(_metrics.RATE_LIMITER_THROTTLED_TOTAL, 1, THROTTLED_REJECTED)
        return ok

    async def acquire(self, cost: int = 1) -> None:
        """Count ``cost`` units, sleeping on the library clock until the window resets
        when it is full. A cost above the limit raises `ConfigurationError` at once."""
        cost = check_cost(cost)
        if cost > self._limit:
            raise ConfigurationError(
                f"cost {cost} exceeds the window limit {self._limit}: it can never be admitted"
            )
        if cost == 0:
            acquired_metrics(0)
            return
        started: float | None = None
        while True:
            with self._lock:
                now = self._roll_locked()
                admitted = self._used + cost <= self._limit
                if admitted:
                    self._used += cost
                else:
                    wait = self._until_reset(now)
            if admitted:
                acquired_metrics(cost, started)
                return
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.RATE_LIMITER_THROTTLED_TOTAL, 1, THROTTLED_WAITED)
                if started is None:
                    started = _clock.now_fn()
            await _clock.sleep(min(max(wait, MIN_WAIT), _clock.MAX_SLEEP))

    def try_reserve(self, cost: int = 1) -> Reservation | None:
        """Count ``cost`` units as a `Reservation` (refunded unless committed, and only
        while its window lasts), or None if they do not fit."""
        epoch = self.try_debit(cost)
        return None if epoch is None else Reservation(self, check_cost(cost), epoch)

    # -- inspection -------------------------------------------------------------------

    @property
    def used(self) -> int:
        """Units counted in the current window."""
        with self._lock:
            self._roll_locked()
            return self._used

    @property
    def remaining(self) -> int:
        """Units still available in the current window."""
        with self._lock:
            self._roll_locked()
            return max(self._limit - self._used, 0)

    @property
    def resets_at(self) -> float:
        """Library-clock reading at which the current window ends."""
        with self._lock:
            self._roll_locked()
            return self._start + self._window

    def time_until(self, cost: int = 1) -> float:
        """Seconds until ``cost`` units fit: 0.0 if now, the time to the reset if the
        window is too full, ``math.inf`` if the cost exceeds the limit."""
        cost = check_cost(cost)
        if cost == 0:
            return 0.0
        if cost > self._limit:
            return math.inf
        with self._lock:
            now = self._roll_locked()
            if self._used + cost <= self._limit:
                return 0.0
            return self._until_reset(now)

    # -- Meter ------------------------------------------------------------------------

    def try_debit(self, cost: int) -> int | None:
        """`Meter`: count ``cost`` units; the epoch is the window's generation."""
        cost = check_cost(cost)
        if cost == 0:
            with self._lock:
                self._roll_locked()
                return self._generation
        return self._debit(cost)

    def credit(self, cost: int, epoch: int) -> None:
        """`Meter`: uncount ``cost`` units, only if their window is still current."""
        if cost <= 0:
            return
        with self._lock:
            self._roll_locked()
            if epoch == self._generation:
                self._used = max(self._used - cost, 0)

    def _credit_nowait(self, cost: int, epoch: int) -> None:
        if cost <= 0:
            return
        self._pending.append((cost, epoch))
        if self._lock.acquire(blocking=False):
            try:
                self._roll_locked()
            finally:
                self._lock.release()

    def snapshot(self) -> MeterStatus:
        """`Meter`: used / limit, time to the reset when full, the reset boundary."""
        with self._lock:
            now = self._roll_locked()
            boundary = self._start + self._window
            return MeterStatus(
                used=self._used,
                limit=self._limit,
                available_in=0.0 if self._used < self._limit else self._until_reset(now),
                resets_at=None if math.isinf(boundary) else boundary,
            )
