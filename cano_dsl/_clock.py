"""The library's one clock.

Breakers, limiters, backoff sleeps and schedulers read time through this module so
that tests can swap in `cano_dsl.testing.MockClock` and run in near-zero wall time.
The default clock is ``time.monotonic`` with ``anyio.sleep``, so time-based
primitives can be built and used outside an event loop and from threads.

Hot paths read the time with ``_clock.now_fn()``: a module attribute that
`set_clock` rebinds to the installed clock's ``now`` (``time.monotonic`` itself for
the system clock), which saves a Python frame per reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["Clock", "SystemClock", "get_clock", "now", "now_fn", "set_clock", "sleep"]

# Sleeps on the system clock are cut into slices of at most this many seconds; callers
# recompute and sleep again, so a huge computed wait never overflows a backend timer.
MAX_SLEEP = 86_400.0


@runtime_checkable
class Clock(Protocol):
    """What the library needs of a clock: a monotonic reading and an async sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


_SYSTEM = SystemClock()
_current: list[Clock] = [_SYSTEM]

#: The installed clock's ``now`` (rebound by `set_clock`); call it as ``_clock.now_fn()``.
now_fn: Callable[[], float] = time.monotonic


def get_clock() -> Clock:
    """The clock in force."""
    return _current[0]


def set_clock(clock: Clock | None) -> Clock:
    """Install ``clock`` (``None`` restores the system clock); returns the previous one."""
    global now_fn
    previous = _current[0]
    installed = clock if clock is not None else _SYSTEM
    _current[0] = installed
    now_fn = time.monotonic if installed is _SYSTEM else installed.now
    return previous


def now() -> float:
    """The library clock's reading, in seconds."""
    return now_fn()


async def sleep(seconds: float) -> None:
    """Sleep on the library clock."""
    await _current[0].sleep(seconds)
