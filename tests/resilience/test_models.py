"""Hypothesis state machines: the breaker and each limiter against a plain reference
model, driven by a manual MockClock (no autojump, no event loop)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from cano_dsl._errors import CircuitOpenError, RateLimited
from cano_dsl.resilience import (
    CircuitBreaker,
    CircuitPermit,
    CircuitPolicy,
    CircuitState,
    MultiRateLimiter,
    RateLimiter,
    Reservation,
    WindowedRateLimiter,
)
from cano_dsl.testing._clock import MockClock

SETTINGS = settings(max_examples=60, stateful_step_count=60, deadline=None)

# Times are multiples of 1/1024 s so the float clock is exact.
TICK = 1 / 1024
ticks = st.integers(min_value=0, max_value=4096)


class _ClockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = MockClock(start=0.0, autojump=False).install()

    def teardown(self) -> None:
        self.clock.uninstall()

    def now_ticks(self) -> int:
        return round(self.clock.now() / TICK)


# -- circuit breaker ----------------------------------------------------------------------


class BreakerMachine(_ClockMachine):
    """Reference: a breaker as a list of sessions. Each session has a kind, and
    permits belong to the session they were issued in; an outcome for an old session
    is ignored."""

    permits = Bundle("permits")

    @initialize(
        threshold=st.integers(1, 4),
        reset=st.integers(0, 2048),
        max_calls=st.integers(1, 3),
    )
    def build(self, threshold: int, reset: int, max_calls: int) -> None:
        self.threshold, self.reset, self.max_calls = threshold, reset, max_calls
        self.breaker = CircuitBreaker(
            CircuitPolicy(
                failure_threshold=threshold,
                reset_timeout=reset * TICK,
                half_open_max_calls=max_calls,
            )
        )
        self.session = 0
        self.kind = "closed"
        self.reopen_at = 0
        self.failures = 0
        self.trials = 0
        self.successes = 0
        self.live: dict[int, tuple[CircuitPermit, int, bool]] = {}
        self.next_id = 0

    def _enter(self, kind: str) -> None:
        self.session += 1
        self.kind = kind
        self.trials = 0
        self.successes = 0
        if kind == "open":
            self.reopen_at = self.now_ticks() + self.reset

    def _outcome(self, session: int, trial: bool, ok: bool) -> None:
        if session != self.session:
            return
        if trial:
            self.trials -= 1
        if self.kind == "closed":
            if ok:
                self.failures = 0
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self._enter("open")
        elif self.kind == "half_open":
            if ok:
                self.successes += 1
                if self.successes >= self.max_calls:
                    self.failures = 0
                    self._enter("closed")
            else:
                self._enter("open")

    @rule(target=permits)
    def acquire(self) -> Any:
        if self.kind == "open" and self.now_ticks() >= self.reopen_at:
            self._enter("half_open")
        expect_ok = self.kind == "closed" or (
            self.kind == "half_open" and self.trials < self.max_calls
        )
        try:
            permit = self.breaker.try_acquire()
        except CircuitOpenError:
            assert not expect_ok
            return None
        assert expect_ok
        trial = self.kind == "half_open"
        assert permit.is_trial == trial
        if trial:
            self.trials += 1
        self.next_id += 1
        self.live[self.next_id] = (permit, self.session, trial)
        return self.next_id

    @rule(pid=consumes(permits), how=st.sampled_from(["success", "failure", "drop", "with"]))
    def resolve(self, pid: int | None, how: str) -> None:
        if pid is None:
            return
        permit, session, trial = self.live.pop(pid)
        if how == "success":
            permit.record_success()
        elif how == "failure":
            permit.record_failure()
        elif how == "with":
            with permit:
                pass
        else:
            del permit
        self._outcome(session, trial, how in ("success", "with"))

    @rule(dt=ticks)
    def advance(self, dt: int) -> None:
        self.clock.advance(dt * TICK)

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "breaker"):
            return
        expected = {
            "closed": CircuitState.CLOSED,
            "open": CircuitState.OPEN,
            "half_open": CircuitState.HALF_OPEN,
        }[self.kind]
        assert self.breaker.state is expected
        assert 0 <= self.trials <= self.max_calls
        if self.kind == "open":
            assert self.breaker.open_until == self.reopen_at * TICK


# -- token bucket -------------------------------------------------------------------------


class BucketMachine(_ClockMachine):
    """Reference: exact rational tokens. Admission must match the model except within a
    hair of the boundary, where the model follows the limiter. Independently of the
    model, net admissions never exceed capacity + rate x elapsed."""

    reservations = Bundle("reservations")
    EPS = Fraction(1, 10**6)

    @initialize(
        tokens=st.integers(1, 20),
        period_ticks=st.integers(1, 4096),
        max_tokens=st.integers(1, 20),
        burst=st.integers(0, 5),
    )
    def build(self, tokens: int, period_ticks: int, max_tokens: int, burst: int) -> None:
        self.limiter = (
            RateLimiter(tokens, period_ticks * TICK).with_max_tokens(max_tokens).with_burst(burst)
        )
        self.cap = Fraction(max_tokens + burst)
        self.rate = Fraction(tokens) / (Fraction(period_ticks) * Fraction(1, 1024))
        self.tokens = self.cap
        self.last = self.now_ticks()
        self.start = self.last
        self.net_admitted = Fraction(0)
        self.live: dict[int, Reservation] = {}

    def _refill(self) -> None:
        now = self.now_ticks()
        self.tokens = min(self.cap, self.tokens + (now - self.last) * Fraction(1, 1024) * self.rate)
        self.last = now

    def _decide(self, cost: int, actual: bool) -> None:
        self._refill()
        if self.tokens >= cost + self.EPS:
            assert actual, f"rejected {cost} with {float(self.tokens)} tokens"
        elif self.tokens < cost - self.EPS:
            assert not actual, f"admitted {cost} with {float(self.tokens)} tokens"
        if actual and cost:
            self.tokens = max(self.tokens - cost, Fraction(0))
            self.net_admitted += cost

    @rule(cost=st.integers(0, 25))
    def try_acquire(self, cost: int) -> None:
        self._decide(cost, self.limiter.try_acquire(cost))

    @rule(target=reservations, cost=st.integers(0, 25))
    def reserve(self, cost: int) -> Any:
        reservation = self.limiter.try_reserve(cost)
        self._decide(cost, reservation is not None)
        if reservation is None:
            return None
        self.live[id(reservation)] = reservation
        return id(reservation)

    @rule(rid=consumes(reservations), how=st.sampled_from(["commit", "cancel", "drop"]))
    def settle(self, rid: int | None, how: str) -> None:
        if rid is None:
            return
        reservation = self.live.pop(rid)
        if how == "commit":
            reservation.commit()
            return
        cost = reservation.cost
        if how == "cancel":
            reservation.cancel()
        else:
            del reservation
        self.tokens = min(self.cap, self.tokens + cost)  # refunds are capped
        self.net_admitted -= cost

    @rule(dt=ticks)
    def advance(self, dt: int) -> None:
        self.clock.advance(dt * TICK)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "limiter"):
            return
        self._refill()
        available = self.limiter.tokens_available
        assert available <= self.cap
        assert abs(available - math.floor(self.tokens)) <= 1
        if abs(self.tokens - round(self.tokens)) > self.EPS:
            assert available == math.floor(self.tokens)
        elapsed = Fraction(self.now_ticks() - self.start, 1024)
        assert self.net_admitted <= self.cap + self.rate * elapsed + self.EPS


# -- fixed window -------------------------------------------------------------------------


class WindowMachine(_ClockMachine):
    """Reference: exact integer ticks. Never more than ``limit`` per window; a refund
    applies only inside the window it was debited in."""

    reservations = Bundle("reservations")

    @initialize(limit=st.integers(1, 10), window=st.integers(1, 4096))
    def build(self, limit: int, window: int) -> None:
        self.limit, self.window = limit, window
        self.w = WindowedRateLimiter(limit, window * TICK)
        self.start = self.now_ticks()
        self.used = 0
        self.generation = 0
        self.admitted_in_window: dict[int, int] = {0: 0}
        self.live: dict[int, tuple[Reservation, int]] = {}

    def _roll(self) -> None:
        now = self.now_ticks()
        if now - self.start >= self.window:
            self.start, self.used = now, 0
            self.generation += 1
            self.admitted_in_window[self.generation] = 0

    def _decide(self, cost: int, actual: bool) -> None:
        self._roll()
        assert actual == (self.used + cost <= self.limit)
        if actual:
            self.used += cost
            self.admitted_in_window[self.generation] += cost

    @rule(cost=st.integers(0, 12))
    def try_acquire(self, cost: int) -> None:
        self._decide(cost, self.w.try_acquire(cost))

    @rule(target=reservations, cost=st.integers(0, 12))
    def reserve(self, cost: int) -> Any:
        reservation = self.w.try_reserve(cost)
        self._decide(cost, reservation is not None)
        if reservation is None:
            return None
        self.live[id(reservation)] = (reservation, self.generation)
        return id(reservation)

    @rule(rid=consumes(reservations), how=st.sampled_from(["commit", "cancel", "drop"]))
    def settle(self, rid: int | None, how: str) -> None:
        if rid is None:
            return
        reservation, generation = self.live.pop(rid)
        if how == "commit":
            reservation.commit()
            return
        cost = reservation.cost
        if how == "cancel":
            reservation.cancel()
        else:
            del reservation
        self._roll()
        if generation == self.generation:
            self.used -= cost
            self.admitted_in_window[generation] -= cost

    @rule(dt=ticks)
    def advance(self, dt: int) -> None:
        self.clock.advance(dt * TICK)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "w"):
            return
        self._roll()
        assert self.w.used == self.used
        assert self.w.remaining == self.limit - self.used
        assert self.w.resets_at == (self.start + self.window) * TICK
        assert all(0 <= n <= self.limit for n in self.admitted_in_window.values())


# -- multi-tier ---------------------------------------------------------------------------


class MultiMachine(_ClockMachine):
    """All-or-nothing: after any acquisition either every applicable tier moved by its
    cost or none did; a rejection names the first tier without room."""

    @initialize(limits=st.lists(st.integers(1, 6), min_size=1, max_size=4))
    def build(self, limits: list[int]) -> None:
        self.windows = [WindowedRateLimiter(n, 1024 * TICK) for n in limits]
        self.costs = [(i % 3) for i in range(len(limits))]
        multi = MultiRateLimiter()
        for i, (w, cost) in enumerate(zip(self.windows, self.costs, strict=True)):
            multi = multi.with_tier(f"t{i}", w, cost)
        self.multi = multi

    @rule(subset=st.sets(st.integers(0, 3)))
    def try_acquire(self, subset: set[int]) -> None:
        only = [f"t{i}" for i in sorted(subset)]
        wanted = [
            i for i in range(len(self.windows)) if self.costs[i] and (not only or f"t{i}" in only)
        ]
        before = [w.used for w in self.windows]
        blocking = next(
            (i for i in wanted if before[i] + self.costs[i] > self.windows[i].policy.limit), None
        )
        try:
            permit = self.multi.try_acquire(only=only)
        except RateLimited as err:
            assert blocking is not None and err.tier == f"t{blocking}"
            assert err.retry_after >= 0.001
            assert [w.used for w in self.windows] == before
            return
        assert blocking is None
        assert permit.tiers == tuple(f"t{i}" for i in wanted)
        after = [w.used for w in self.windows]
        for i in range(len(self.windows)):
            assert after[i] == before[i] + (self.costs[i] if i in wanted else 0)

    @precondition(lambda self: hasattr(self, "windows"))
    @rule(dt=ticks)
    def advance(self, dt: int) -> None:
        self.clock.advance(dt * TICK)

    @invariant()
    def within_limits(self) -> None:
        for w in getattr(self, "windows", []):
            assert 0 <= w.used <= w.policy.limit


TestBreakerModel = BreakerMachine.TestCase
TestBucketModel = BucketMachine.TestCase
TestWindowModel = WindowMachine.TestCase
TestMultiModel = MultiMachine.TestCase
for _case in (TestBreakerModel, TestBucketModel, TestWindowModel, TestMultiModel):
    _case.settings = SETTINGS
del _case
