"""Token-bucket rate limiter: pace outbound calls (REFERENCE §7.2).

The bucket holds fractional tokens, starts **full**, and refills lazily at
``tokens_per_period / refill_period`` tokens a second up to its capacity
(``max_tokens + burst``) whenever it is touched: there is no background task. Time is
read from the library clock, so the limiter works outside an event loop, from threads,
and under ``cano_dsl.testing.MockClock``.
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

__all__ = ["RateLimiter", "RateLimiterPolicy"]

_SLACK = 1e-9


def _max_tokens(value: int) -> int:
    return check_count(value, "max_tokens")


def _per_period(value: int) -> int:
    return check_count(value, "tokens per period (refill rate must be > 0)")


def _period(value: float | datetime.timedelta) -> float:
    out = check_positive_duration(value, "refill period (refill rate must be > 0)")
    if math.isinf(out):
        raise ConfigurationError("refill period must be finite (refill rate must be > 0)")
    return out


def _burst(value: int) -> int:
    return check_count(value, "burst", minimum=0)


@attrs.frozen
class RateLimiterPolicy:
    """A token bucket's shape: capacity ``max_tokens + burst``, refilled at
    ``tokens_per_period`` tokens every ``refill_period`` seconds."""

    max_tokens: int = attrs.field(converter=_max_tokens)
    tokens_per_period: int = attrs.field(converter=_per_period)
    refill_period: float = attrs.field(converter=_period)
    burst: int = attrs.field(default=0, converter=_burst)

    @classmethod
    def new(cls, tokens: int, period: float | datetime.timedelta) -> RateLimiterPolicy:
        """``tokens`` every ``period``; capacity one period's worth, no burst."""
        return cls(tokens, tokens, period)

    @property
    def capacity(self) -> int:
        """The most tokens the bucket holds: ``max_tokens + burst``."""
        return self.max_tokens + self.burst

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.tokens_per_period / self.refill_period


class RateLimiter(NoopResource):
    """A thread-safe token bucket. Share one instance across every task that draws on
    the same quota.

    ```python
    import anyio
    from cano_dsl import RateLimiter

    limiter = RateLimiter.per_second(100).with_burst(10)   # capacity 110, starts full

    async def main() -> None:
        assert limiter.try_acquire()          # shed load: True / False, never waits
        await limiter.acquire(cost=5)         # pace: waits until 5 tokens have refilled

    anyio.run(main)
    ```
    """

    __slots__ = (
        "__weakref__",
        "_cap",
        "_last",
        "_lock",
        "_pending",
        "_policy",
        "_rate",
        "_slack",
        "_tokens",
    )

    def __init__(self, tokens: int, period: float | datetime.timedelta = 1.0) -> None:
        self._setup(RateLimiterPolicy.new(tokens, period))

    def _setup(self, policy: RateLimiterPolicy) -> None:
        self._policy = policy
        self._cap = float(policy.capacity)
        self._rate = policy.rate
        self._tokens = self._cap
        # Float refills can land a hair under a whole token (0.1 + 0.1 seconds of a
        # 5/s bucket); a shortfall this small counts as there, and is never carried.
        self._slack = _SLACK * self._cap
        self._lock = threading.Lock()
        self._last = _clock.now_fn()
        # refunds from reservations collected while the lock was taken (see _credit_nowait)
        self._pending: deque[int] = deque()

    @classmethod
    def from_policy(cls, policy: RateLimiterPolicy) -> RateLimiter:
        """A limiter with a full bucket shaped by ``policy``."""
        if not isinstance(policy, RateLimiterPolicy):
            raise ConfigurationError(f"expected a RateLimiterPolicy, got {policy!r}")
        limiter = cls.__new__(cls)
        limiter._setup(policy)
        return limiter

    @classmethod
    def per_second(cls, tokens: int) -> RateLimiter:
        """``tokens`` a second, capacity ``tokens``."""
        return cls(tokens, 1.0)

    def with_max_tokens(self, max_tokens: int) -> RateLimiter:
        """A new limiter (full bucket) with another steady-state ceiling, same rate."""
        return RateLimiter.from_policy(attrs.evolve(self._policy, max_tokens=max_tokens))

    def with_burst(self, burst: int) -> RateLimiter:
        """A new limiter (full bucket) with ``burst`` extra tokens of capacity."""
        return RateLimiter.from_policy(attrs.evolve(self._policy, burst=burst))

    @property
    def policy(self) -> RateLimiterPolicy:
        """The policy this limiter was built with."""
        return self._policy

    @property
    def capacity(self) -> int:
        """``max_tokens + burst``."""
        return self._policy.capacity

    def __repr__(self) -> str:
        return f"RateLimiter({self._policy!r})"

    # -- bucket arithmetic (lock held) ------------------------------------------------

    def _refill_locked(self) -> float:
        if self._pending:
            self._drain_locked()
        now = _clock.now_fn()
        elapsed = now - self._last
        if elapsed > 0.0:
            tokens = self._tokens + elapsed * self._rate
            self._tokens = tokens if tokens < self._cap else self._cap
            self._last = now
        elif elapsed < 0.0:  # the clock was swapped for one that reads earlier: rebase
            self._last = now
        return self._tokens

    def _drain_locked(self) -> None:
        pending = self._pending
        while pending:
            tokens = self._tokens + pending.popleft()
            self._tokens = tokens if tokens < self._cap else self._cap

    def _debit(self, cost: int) -> bool:
        with self._lock:
            tokens = self._refill_locked()
            if tokens >= cost - self._slack:
                self._tokens = max(tokens - cost, 0.0)
                return True
            return False

    def _wait_for(self, cost: int) -> float:
        """Seconds until ``cost`` tokens are there (0.0 if now); lock held."""
        tokens = self._refill_locked()
        if tokens >= cost - self._slack:
            return 0.0
        return (cost - tokens) / self._rate

    # -- acquiring --------------------------------------------------------------------

    def try_acquire(self, cost: int = 1) -> bool:
        """Take ``cost`` tokens if they are there; never waits, never debits partially.
        A cost of 0 always succeeds; a cost above capacity never does."""
        if cost.__class__ is not int or cost <= 0:
            cost = check_cost(cost)
            if cost == 0:
                acquired_metrics(0)
                return True
        with self._lock:
            if self._pending:
                self._drain_locked()
            now = _clock.now_fn()
            tokens = self._tokens
            elapsed = now - self._last
            if elapsed > 0.0:
                tokens += elapsed * self._rate
                if tokens > self._cap:
                    tokens = self._cap
                self._last = now
            elif elapsed < 0.0:
                self._last = now
            ok = tokens >= cost - self._slack
            if ok:
                tokens -= cost
                self._tokens = tokens if tokens > 0.0 else 0.0
            else:
                self._tokens = tokens
        sink = _metrics.SINK
        if sink is not None:
            if ok:
                acquired_metrics(cost)
            else:
                sink.counter(_metrics.RATE_LIMITER_THROTTLED_TOTAL, 1, THROTTLED_REJECTED)
        return ok

    async def acquire(self, cost: int = 1) -> None:
        """Take ``cost`` tokens, sleeping on the library clock until they have refilled.

        Returns without yielding when the tokens are there. Best-effort fairness: each
        waiter sleeps its own computed deficit, then retries. A cost above capacity can
        never be admitted and raises `ConfigurationError` at once."""
        if cost.__class__ is int and cost > 0 and not self._pending:
            with self._lock:  # fast path: the tokens are there (same arithmetic as below)
                now = _clock.now_fn()
                elapsed = now - self._last
                if elapsed > 0.0:
                    tokens = self._tokens + elapsed * self._rate
                    self._tokens = tokens if tokens < self._cap else self._cap
                    self._last = now
                tokens = self._tokens
                admitted = elapsed >= 0.0 and tokens >= cost - self._slack
                if admitted:
                    tokens -= cost
                    self._tokens = tokens if tokens > 0.0 else 0.0
            if admitted:
                if _metrics.SINK is not None:
                    acquired_metrics(cost)
                return
        cost = check_cost(cost)
        if cost > self._cap:
            raise ConfigurationError(
                f"cost {cost} exceeds the bucket capacity {self.capacity}: it can never be "
                "admitted (raise max_tokens or burst, or lower the cost)"
            )
        if cost == 0:
            acquired_metrics(0)
            return
        started: float | None = None
        while True:
            with self._lock:
                wait = self._wait_for(cost)
                if wait == 0.0:
                    self._tokens = max(self._tokens - cost, 0.0)
            if wait == 0.0:
                acquired_metrics(cost, started)
                return
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.RATE_LIMITER_THROTTLED_TOTAL, 1, THROTTLED_WAITED)
                if started is None:
                    started = _clock.now_fn()
            await _clock.sleep(min(max(wait, MIN_WAIT), _clock.MAX_SLEEP))

    def try_reserve(self, cost: int = 1) -> Reservation | None:
        """Debit ``cost`` tokens as a `Reservation` (refunded unless committed), or None
        if they are not there."""
        cost = check_cost(cost)
        if cost and not self._debit(cost):
            return None
        return Reservation(self, cost, 0)

    # -- inspection -------------------------------------------------------------------

    @property
    def tokens_available(self) -> int:
        """Whole tokens in the bucket now."""
        with self._lock:
            return max(math.floor(self._refill_locked() + self._slack), 0)

    def time_until(self, cost: int = 1) -> float:
        """Seconds until ``cost`` tokens are there: 0.0 if now, ``math.inf`` if the cost
        exceeds capacity."""
        cost = check_cost(cost)
        if cost == 0:
            return 0.0
        if cost > self._cap:
            return math.inf
        with self._lock:
            return self._wait_for(cost)

    # -- Meter ------------------------------------------------------------------------

    def try_debit(self, cost: int) -> int | None:
        """`Meter`: debit ``cost`` tokens; a bucket's epoch is always 0 (tokens are
        fungible, so any refund is valid)."""
        cost = check_cost(cost)
        if cost and not self._debit(cost):
            return None
        return 0

    def credit(self, cost: int, epoch: int = 0) -> None:
        """`Meter`: give ``cost`` tokens back, capped at capacity (no refill first)."""
        if cost <= 0:
            return
        with self._lock:
            if self._pending:
                self._drain_locked()
            tokens = self._tokens + cost
            self._tokens = tokens if tokens < self._cap else self._cap

    def _credit_nowait(self, cost: int, epoch: int) -> None:
        # Refund from a finalizer: never block (the collection may run while this very
        # thread holds the lock); queue it and apply it now if the lock is free.
        if cost <= 0:
            return
        self._pending.append(cost)
        if self._lock.acquire(blocking=False):
            try:
                self._drain_locked()
            finally:
                self._lock.release()

    def snapshot(self) -> MeterStatus:
        """`Meter`: used = capacity - whole tokens available; no reset boundary."""
        capacity = self._policy.capacity
        available = self.tokens_available
        return MeterStatus(
            used=max(capacity - available, 0),
            limit=capacity,
            available_in=self.time_until(1),
            resets_at=None,
        )
