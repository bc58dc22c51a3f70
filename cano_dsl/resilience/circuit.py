"""Circuit breaker: fail fast while a dependency is down (REFERENCE §7.1).

```
CLOSED --(failure_threshold consecutive failures)--> OPEN(until = now + reset_timeout)
OPEN   --(first try_acquire at or after `until`)---> HALF_OPEN   (lazy: no background task)
HALF_OPEN --(half_open_max_calls successes)--------> CLOSED
HALF_OPEN --(any failure)--------------------------> OPEN(fresh cool-down)
```

Every transition bumps an *epoch*. A permit remembers the epoch it was issued in, and
an outcome recorded with a stale permit (issued before a transition) is ignored, so a
slow caller straddling a trip can never corrupt the next session's counters.

A permit must be resolved once: ``record_success()`` or ``record_failure()``, or by
leaving its ``with`` block (normal exit = success, exception = failure). A permit that
is garbage-collected unresolved counts as a failure, like the RAII guard of the
original. The breaker is synchronous and thread-safe; it reads time from the library
clock (`cano_dsl._clock`), so it works outside an event loop and under ``MockClock``.
"""

from __future__ import annotations

import datetime
import enum
import threading
from collections import deque
from types import TracebackType

import attrs

from .. import _clock, _metrics
from .._config import seconds
from .._errors import CircuitOpenError, ConfigurationError
from ._common import NoopResource, check_count

__all__ = ["CircuitBreaker", "CircuitPermit", "CircuitPolicy", "CircuitState"]

#: Upper bound on `CircuitPolicy.half_open_max_calls` (the original's ``u32::MAX / 2``).
HALF_OPEN_MAX_CALLS_LIMIT = 2**31 - 1
#: Upper bound on `CircuitPolicy.failure_threshold` (the original's ``u32::MAX``).
FAILURE_THRESHOLD_LIMIT = 2**32 - 1

_OPEN_MESSAGE = "circuit breaker open: rejecting call"
_EXHAUSTED_MESSAGE = "circuit breaker half-open: trial slot exhausted"


class CircuitState(enum.Enum):
    """Where a `CircuitBreaker` stands."""

    CLOSED = "closed"
    """Calls flow; consecutive failures are counted toward the trip threshold."""
    OPEN = "open"
    """Calls are rejected until the cool-down ends (see `CircuitBreaker.open_until`)."""
    HALF_OPEN = "half_open"
    """A bounded number of trial calls probe the dependency."""


def _threshold(value: int) -> int:
    return check_count(value, "CircuitPolicy.failure_threshold", maximum=FAILURE_THRESHOLD_LIMIT)


def _half_open(value: int) -> int:
    return check_count(
        value, "CircuitPolicy.half_open_max_calls", maximum=HALF_OPEN_MAX_CALLS_LIMIT
    )


def _reset(value: float | datetime.timedelta) -> float:
    return seconds(value, "CircuitPolicy.reset_timeout")


@attrs.frozen
class CircuitPolicy:
    """When a `CircuitBreaker` trips and how it recovers.

    ``failure_threshold``: consecutive failures in CLOSED that trip it (>= 1).
    ``reset_timeout``: seconds (float or ``timedelta``) spent OPEN before the next
    ``try_acquire`` may probe. ``half_open_max_calls``: both the number of concurrent
    trial calls admitted while HALF_OPEN and the number of trial successes needed to
    close (1 to 2**31 - 1). Bad values raise `ConfigurationError` here.
    """

    failure_threshold: int = attrs.field(default=5, converter=_threshold)
    reset_timeout: float = attrs.field(default=30.0, converter=_reset)
    half_open_max_calls: int = attrs.field(default=1, converter=_half_open)

    @classmethod
    def default(cls) -> CircuitPolicy:
        """Threshold 5, 30 s cool-down, one probe."""
        return cls()


class CircuitBreaker(NoopResource):
    """A reusable, thread-safe circuit breaker. Share one instance across every task
    that depends on the same resource so a trip from any caller protects all of them.

    ```python
    from cano_dsl import CircuitBreaker, CircuitPolicy

    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=2, reset_timeout=30))
    with breaker.try_acquire():
        pass  # the guarded call; leaving normally records a success
    ```
    """

    __slots__ = (
        "__weakref__",
        "_closed_token",
        "_epoch",
        "_failures",
        "_in_flight",
        "_lock",
        "_max_calls",
        "_pending",
        "_policy",
        "_reset_timeout",
        "_state",
        "_successes",
        "_threshold",
        "_until",
    )

    def __init__(self, policy: CircuitPolicy | None = None) -> None:
        if policy is None:
            policy = CircuitPolicy()
        elif not isinstance(policy, CircuitPolicy):
            raise ConfigurationError(f"CircuitBreaker takes a CircuitPolicy, got {policy!r}")
        self._policy = policy
        self._threshold = policy.failure_threshold
        self._reset_timeout = policy.reset_timeout
        self._max_calls = policy.half_open_max_calls
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._until = 0.0
        self._failures = 0
        self._in_flight = 0
        self._successes = 0
        self._epoch = 0
        # ``epoch << 1`` while CLOSED, -1 otherwise: one attribute read decides the
        # CLOSED fast paths (admission, and a success that changes nothing) without
        # the lock. Both are linearizable: they act on one consistent reading.
        self._closed_token = 0
        # Outcomes of permits collected while the lock could not be taken without
        # blocking (a collection triggered inside our own critical section); applied by
        # the next operation, before anything else.
        self._pending: deque[tuple[bool, int]] = deque()

    # -- inspection -------------------------------------------------------------------

    @property
    def policy(self) -> CircuitPolicy:
        """The policy this breaker was built with."""
        return self._policy

    @property
    def state(self) -> CircuitState:
        """The current state. Lazy: stays OPEN after the cool-down until the next
        `try_acquire` promotes it to HALF_OPEN."""
        if self._pending:
            with self._lock:
                self._drain_locked()
        return self._state

    @property
    def open_until(self) -> float | None:
        """While OPEN, the library-clock reading at which probing may start; else None."""
        with self._lock:
            if self._pending:
                self._drain_locked()
            return self._until if self._state is CircuitState.OPEN else None

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self._state.name}, policy={self._policy!r})"

    # -- the protocol -----------------------------------------------------------------

    def try_acquire(self) -> CircuitPermit:
        """Ask permission for one call: a `CircuitPermit` to resolve with the call's
        outcome, or `CircuitOpenError` when OPEN or when every HALF_OPEN trial slot is
        taken. Never blocks on time; first promotes OPEN to HALF_OPEN if the cool-down
        is over."""
        token = self._closed_token
        if token >= 0 and not self._pending:
            permit = _new_permit(CircuitPermit)  # skips a Python-level __init__ frame
            permit._breaker = self
            permit._token = token
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.CIRCUIT_ACQUIRES_TOTAL, 1, _ACQUIRED)
            return permit
        try:
            permit = self._acquire_locked()
        except CircuitOpenError:
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.CIRCUIT_ACQUIRES_TOTAL, 1, _REJECTED)
            raise
        sink = _metrics.SINK
        if sink is not None:
            sink.counter(_metrics.CIRCUIT_ACQUIRES_TOTAL, 1, _ACQUIRED)
        return permit

    def _acquire_locked(self) -> CircuitPermit:
        with self._lock:
            if self._pending:
                self._drain_locked()
            state = self._state
            if state is CircuitState.CLOSED:
                return CircuitPermit(self, self._epoch << 1)
            if state is CircuitState.OPEN:
                if _clock.now_fn() < self._until:
                    raise CircuitOpenError(_OPEN_MESSAGE)
                self._transition(CircuitState.HALF_OPEN)
            if self._in_flight >= self._max_calls:
                raise CircuitOpenError(_EXHAUSTED_MESSAGE)
            self._in_flight += 1
            return CircuitPermit(self, self._epoch << 1 | 1)

    def _resolve(self, permit: CircuitPermit, success: bool) -> None:
        if permit._token is not None:
            _outcome(success)
        with self._lock:
            token = permit._token
            if token is None:
                return
            permit._token = None
            if self._pending:
                self._drain_locked()
            if success:
                self._success_locked(bool(token & 1), token >> 1)
            else:
                self._failure_locked(bool(token & 1), token >> 1)

    def _dropped(self, token: int) -> None:
        # Called from CircuitPermit.__del__, possibly by a collection that runs while
        # this very thread holds the lock: never block, defer instead.
        _outcome(False)
        self._pending.append((bool(token & 1), token >> 1))
        if self._lock.acquire(blocking=False):
            try:
                self._drain_locked()
            finally:
                self._lock.release()

    # -- state machine (lock held) ----------------------------------------------------

    def _drain_locked(self) -> None:
        pending = self._pending
        while pending:
            half_open, epoch = pending.popleft()
            self._failure_locked(half_open, epoch)

    def _transition(self, state: CircuitState) -> None:
        sink = _metrics.SINK
        if sink is not None:
            labels = _TRANSITIONS.get((self._state, state))
            if labels is not None:
                sink.counter(_metrics.CIRCUIT_TRANSITIONS_TOTAL, 1, labels)
        self._state = state
        self._in_flight = 0
        self._successes = 0
        self._epoch += 1
        self._closed_token = self._epoch << 1 if state is CircuitState.CLOSED else -1

    def _success_locked(self, half_open: bool, epoch: int) -> None:
        if epoch != self._epoch:
            return  # stale: issued before a transition
        if half_open and self._in_flight > 0:
            self._in_flight -= 1
        if self._state is CircuitState.CLOSED:
            self._failures = 0
        elif self._state is CircuitState.HALF_OPEN:
            self._successes += 1
            if self._successes >= self._max_calls:
                self._failures = 0
                self._transition(CircuitState.CLOSED)

    def _failure_locked(self, half_open: bool, epoch: int) -> None:
        if epoch != self._epoch:
            return
        if half_open and self._in_flight > 0:
            self._in_flight -= 1
        if self._state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self._threshold:
                self._until = _clock.now_fn() + self._reset_timeout
                self._transition(CircuitState.OPEN)
        elif self._state is CircuitState.HALF_OPEN:
            self._until = _clock.now_fn() + self._reset_timeout
            self._transition(CircuitState.OPEN)


class CircuitPermit:
    """Permission for one call through a `CircuitBreaker`.

    Resolve it once with `record_success` or `record_failure` (a second resolution is
    a no-op), or use it as a context manager. An unresolved permit that is
    garbage-collected counts as a failure. A permit belongs to one caller: resolve it
    from one thread.
    """

    # ``_token`` is ``epoch << 1 | is_trial`` until resolved, then None.
    __slots__ = ("_breaker", "_token")

    def __init__(self, breaker: CircuitBreaker, token: int) -> None:
        self._breaker = breaker
        self._token: int | None = token

    @property
    def resolved(self) -> bool:
        """Whether an outcome was recorded (or the permit was dropped)."""
        return self._token is None

    @property
    def is_trial(self) -> bool:
        """Whether this permit was issued as a HALF_OPEN probe."""
        return self._token is not None and bool(self._token & 1)

    def record_success(self) -> None:
        """The call succeeded."""
        token = self._token
        if token is None:
            return
        breaker = self._breaker
        if token == breaker._closed_token and not breaker._failures and not breaker._pending:
            self._token = None  # CLOSED, current, nothing to reset: a no-op success
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.CIRCUIT_OUTCOMES_TOTAL, 1, _SUCCESS)
            return
        breaker._resolve(self, True)

    def record_failure(self) -> None:
        """The call failed (timeouts and cancellations count as failures too)."""
        if self._token is not None:
            self._breaker._resolve(self, False)

    def __enter__(self) -> CircuitPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token = self._token
        if token is None:
            return
        breaker = self._breaker
        if exc_type is not None:
            breaker._resolve(self, False)
        elif token == breaker._closed_token and not breaker._failures and not breaker._pending:
            self._token = None
            sink = _metrics.SINK
            if sink is not None:
                sink.counter(_metrics.CIRCUIT_OUTCOMES_TOTAL, 1, _SUCCESS)
        else:
            breaker._resolve(self, True)

    def __del__(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            try:
                self._breaker._dropped(token)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        token = self._token
        if token is None:
            return "CircuitPermit(resolved)"
        return f"CircuitPermit(trial={bool(token & 1)}, epoch={token >> 1})"


_new_permit = object.__new__

_ACQUIRED: _metrics.Labels = (("result", "acquired"),)
_REJECTED: _metrics.Labels = (("result", "rejected"),)
_SUCCESS: _metrics.Labels = (("outcome", "success"),)
_FAILURE: _metrics.Labels = (("outcome", "failure"),)
_TRANSITIONS: dict[tuple[CircuitState, CircuitState], _metrics.Labels] = {
    (CircuitState.CLOSED, CircuitState.OPEN): (("transition", "closed_to_open"),),
    (CircuitState.OPEN, CircuitState.HALF_OPEN): (("transition", "open_to_halfopen"),),
    (CircuitState.HALF_OPEN, CircuitState.CLOSED): (("transition", "halfopen_to_closed"),),
    (CircuitState.HALF_OPEN, CircuitState.OPEN): (("transition", "halfopen_to_open"),),
}


def _outcome(success: bool) -> None:
    """``cano_circuit_outcomes_total{outcome}`` for one resolved permit."""
    sink = _metrics.SINK
    if sink is not None:
        sink.counter(_metrics.CIRCUIT_OUTCOMES_TOTAL, 1, _SUCCESS if success else _FAILURE)
