"""`RetryMode` and `TaskConfig` (REFERENCE §2.3-2.4)."""

from __future__ import annotations

import datetime
import math
import random
from typing import Any, Literal

import attrs

from ._errors import ConfigurationError

__all__ = ["RetryMode", "TaskConfig", "as_seconds", "finite_seconds", "optional_seconds", "seconds"]

_I32_MAX = 2**31 - 1
_U64_MAX = 2**64 - 1


def as_seconds(
    value: float | datetime.timedelta,
    what: str,
    allowed: str = "float seconds or a datetime.timedelta",
) -> float:
    """A number or a `datetime.timedelta` as float seconds, unchecked (NaN, negative and
    infinite pass); anything else is a `ConfigurationError` saying ``{what} must be
    {allowed}``."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigurationError(f"{what} must be {allowed}, got {value!r}")


def seconds(value: float | datetime.timedelta, what: str = "duration") -> float:
    """Normalise a duration to float seconds; reject negative, NaN and non-numbers."""
    out = as_seconds(value, what)
    if math.isnan(out) or out < 0:
        raise ConfigurationError(f"{what} must be a non-negative number of seconds, got {out!r}")
    return out


def finite_seconds(value: float | datetime.timedelta, what: str = "duration") -> float:
    """`seconds`, and finite: for waits that must end (retry delays, intervals)."""
    out = seconds(value, what)
    if math.isinf(out):
        raise ConfigurationError(
            f"{what} must be a finite non-negative number of seconds, got {out!r}"
        )
    return out


def optional_seconds(
    value: float | datetime.timedelta | None, what: str = "duration"
) -> float | None:
    return None if value is None else seconds(value, what)


def _count(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an int, got {value!r}")
    if value < 0:
        raise ConfigurationError(f"{what} must be >= 0, got {value}")
    return value


@attrs.frozen(repr=False)
class RetryMode:
    """How many times an attempt is retried, and how long to wait between attempts.

    Build with `none()`, `fixed(retries, delay)`, `exponential(max_retries)` or
    `exponential_custom(...)`. Durations are float seconds.
    """

    kind: Literal["none", "fixed", "exponential"] = "none"
    retries: int = 0
    delay: float = 0.0
    multiplier: float = 1.0
    max_delay: float = 0.0
    jitter: float = 0.0

    @classmethod
    def none(cls) -> RetryMode:
        """One attempt, no retry."""
        return _NONE

    @classmethod
    def fixed(cls, retries: int, delay: float | datetime.timedelta) -> RetryMode:
        """``retries`` retries, ``delay`` seconds apart."""
        return cls("fixed", _count(retries, "retries"), finite_seconds(delay, "retry delay"))

    @classmethod
    def exponential(cls, max_retries: int) -> RetryMode:
        """Exponential backoff: base 0.1 s, x2.0, capped at 30 s, jitter 0.1."""
        return cls.exponential_custom(max_retries, 0.1, 2.0, 30.0, 0.1)

    @classmethod
    def exponential_custom(
        cls,
        max_retries: int,
        base_delay: float | datetime.timedelta,
        multiplier: float,
        max_delay: float | datetime.timedelta,
        jitter: float,
    ) -> RetryMode:
        """Exponential backoff with every knob. A non-finite or non-positive multiplier
        means 1.0 (every delay is the base). ``base_delay`` and ``max_delay`` are finite
        seconds >= 0; ``jitter`` is a number in [0, 1] (anything else, NaN included, is
        a `ConfigurationError`, not clamped)."""
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise ConfigurationError(f"multiplier must be a number, got {multiplier!r}")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
            raise ConfigurationError(f"jitter must be a number in [0, 1], got {jitter!r}")
        j = float(jitter)
        if not 0.0 <= j <= 1.0:  # NaN fails too
            raise ConfigurationError(
                f"jitter must be a number in [0, 1] (0 = no jitter, 1 = full), got {j!r}"
            )
        return cls(
            "exponential",
            _count(max_retries, "max_retries"),
            finite_seconds(base_delay, "base_delay"),
            float(multiplier),
            finite_seconds(max_delay, "max_delay"),
            j,
        )

    @property
    def max_attempts(self) -> int:
        """Total attempts: retries + 1."""
        return self.retries + 1

    def delay_for_attempt(self, attempt: int) -> float | None:
        """Seconds to wait after the 0-based attempt ``attempt`` failed; None = no retry."""
        if attempt < 0 or attempt >= self.retries:
            return None
        if self.kind == "fixed":
            return self.delay
        # exponential, in integer milliseconds like the original
        base_ms = int(self.delay * 1000)
        mult = self.multiplier if math.isfinite(self.multiplier) and self.multiplier > 0 else 1.0
        exponent = min(attempt, _I32_MAX)
        try:
            raw = base_ms * mult**exponent
        except OverflowError:
            raw = math.inf
        capped = min(raw, int(self.max_delay * 1000))
        factor = 1.0 + self.jitter * random.uniform(-1.0, 1.0) if self.jitter > 0 else 1.0
        d = max(capped * factor, 0.0)
        d_ms = _U64_MAX if not math.isfinite(d) or d >= _U64_MAX else int(d)
        if base_ms > 0:
            d_ms = max(d_ms, 1)
        return d_ms / 1000.0

    def __repr__(self) -> str:
        if self.kind == "none":
            return "RetryMode.none()"
        if self.kind == "fixed":
            return f"RetryMode.fixed({self.retries}, {self.delay!r})"
        return (
            f"RetryMode.exponential_custom({self.retries}, {self.delay!r}, "
            f"{self.multiplier!r}, {self.max_delay!r}, {self.jitter!r})"
        )


_NONE = RetryMode()


def _timeout_converter(value: Any) -> float | None:
    t = optional_seconds(value, "attempt_timeout")
    return t


def _default_retry() -> RetryMode:
    return RetryMode.exponential(3)


@attrs.frozen
class TaskConfig:
    """How the engine runs a task: its retry policy, an optional per-attempt timeout and
    an optional circuit breaker. ``TaskConfig() == TaskConfig.default()``."""

    retry_mode: RetryMode = attrs.field(factory=_default_retry)
    attempt_timeout: float | None = attrs.field(default=None, converter=_timeout_converter)
    circuit_breaker: Any = attrs.field(default=None, eq=attrs.cmp_using(eq=lambda a, b: a is b))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.retry_mode, RetryMode):
            raise ConfigurationError(f"retry_mode must be a RetryMode, got {self.retry_mode!r}")
        breaker = self.circuit_breaker
        if breaker is not None and not callable(getattr(breaker, "try_acquire", None)):
            raise ConfigurationError(
                f"circuit_breaker must be a CircuitBreaker (anything with try_acquire()) "
                f"or None, got {breaker!r}"
            )

    @classmethod
    def default(cls) -> TaskConfig:
        """Exponential backoff with 3 retries (4 attempts)."""
        return _DEFAULT

    @classmethod
    def minimal(cls) -> TaskConfig:
        """One attempt, no timeout, no breaker."""
        return _MINIMAL

    def with_retry(self, mode: RetryMode) -> TaskConfig:
        """A copy with retry policy ``mode``."""
        return attrs.evolve(self, retry_mode=mode)

    def with_fixed_retry(self, retries: int, delay: float | datetime.timedelta) -> TaskConfig:
        """A copy retrying ``retries`` times, ``delay`` seconds apart (`RetryMode.fixed`)."""
        return attrs.evolve(self, retry_mode=RetryMode.fixed(retries, delay))

    def with_exponential_retry(self, max_retries: int) -> TaskConfig:
        """A copy retrying up to ``max_retries`` times with cano's default exponential backoff."""
        return attrs.evolve(self, retry_mode=RetryMode.exponential(max_retries))

    def with_attempt_timeout(self, timeout: float | datetime.timedelta) -> TaskConfig:
        """Bound each attempt by ``timeout`` seconds (>= 0). Zero, as in cano, is an
        attempt that times out at once: at its first await that reaches the event loop
        (a sleep, I/O, a lock, an event); a task that never yields still finishes."""
        return attrs.evolve(self, attempt_timeout=timeout)

    def with_circuit_breaker(self, breaker: Any) -> TaskConfig:
        """A copy whose attempts go through ``breaker`` (a `CircuitBreaker`; tasks may
        share one)."""
        return attrs.evolve(self, circuit_breaker=breaker)

    @property
    def is_plain(self) -> bool:
        """No timeout and no breaker: the engine may take its fast path."""
        return self.attempt_timeout is None and self.circuit_breaker is None


_DEFAULT = TaskConfig()
_MINIMAL = TaskConfig(retry_mode=RetryMode.none())
