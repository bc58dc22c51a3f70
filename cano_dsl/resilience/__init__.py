"""Resilience primitives: a circuit breaker and rate limiters (REFERENCE §7).

All of them are synchronous, thread-safe objects that read time from the library
clock (`cano_dsl._clock`), so they can be built and used outside an event loop and
are driven by `cano_dsl.testing.MockClock` in tests. Each is a `Resource` with a
no-op lifecycle.
"""

from __future__ import annotations

from ._meter import Meter as Meter
from ._meter import MeterStatus as MeterStatus
from ._meter import Reservation as Reservation
from .circuit import CircuitBreaker as CircuitBreaker
from .circuit import CircuitPermit as CircuitPermit
from .circuit import CircuitPolicy as CircuitPolicy
from .circuit import CircuitState as CircuitState
from .multi import MultiPermit as MultiPermit
from .multi import MultiRateLimiter as MultiRateLimiter
from .multi import Tier as Tier
from .rate_limit import RateLimiter as RateLimiter
from .rate_limit import RateLimiterPolicy as RateLimiterPolicy
from .window import WindowedRateLimiter as WindowedRateLimiter
from .window import WindowPolicy as WindowPolicy

__all__ = [
    "CircuitBreaker",
    "CircuitPermit",
    "CircuitPolicy",
    "CircuitState",
    "Meter",
    "MeterStatus",
    "MultiPermit",
    "MultiRateLimiter",
    "RateLimiter",
    "RateLimiterPolicy",
    "Reservation",
    "Tier",
    "WindowPolicy",
    "WindowedRateLimiter",
]
