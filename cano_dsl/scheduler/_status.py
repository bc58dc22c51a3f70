"""What a scheduled flow is doing: `FlowStatus` and the `FlowInfo` snapshot
(REFERENCE §8.2), and the scheduler's UTC wall clock.

```
            reserve                 Ok
Idle ─┬──────────────> Running ──────────────> Completed
      │                   │  cancelled (token)  ─> Idle      streak untouched
      │                   └─ other error ─> streak + 1 ─┬─> Backoff(until, streak, last_error)
      │                                                 └─> Tripped(streak, last_error)  (limit hit)
      └ Completed / Backoff may be reserved again; Running and Tripped may not.
```
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Callable
from typing import ClassVar

import attrs

from .. import _clock

__all__ = [
    "Backoff",
    "Completed",
    "FlowInfo",
    "FlowStatus",
    "Idle",
    "Running",
    "Status",
    "Tripped",
    "UtcClock",
    "default_utc_now",
]

UTC = datetime.timezone.utc

#: Where the scheduler reads UTC wall time.
UtcClock = Callable[[], datetime.datetime]


@attrs.frozen
class FlowStatus:
    """Base of the five statuses. Compare with ``==`` (``info.status ==
    FlowStatus.RUNNING``), test with ``isinstance`` (``isinstance(s, FlowStatus.Backoff)``)
    or ``match`` on the classes; ``status.name`` is the lower-case kind."""

    name: ClassVar[str] = "status"

    # Filled in below, once the subclasses exist.
    Idle: ClassVar[type[_IdleT]]
    Running: ClassVar[type[_RunningT]]
    Completed: ClassVar[type[_CompletedT]]
    Backoff: ClassVar[type[_BackoffT]]
    Tripped: ClassVar[type[_TrippedT]]
    IDLE: ClassVar[_IdleT]
    RUNNING: ClassVar[_RunningT]
    COMPLETED: ClassVar[_CompletedT]


@attrs.frozen
class Idle(FlowStatus):
    """Not running; never ran, was reset, or its last run was cancelled."""

    name: ClassVar[str] = "idle"


@attrs.frozen
class Running(FlowStatus):
    """A run is in flight (a flow never runs twice at once)."""

    name: ClassVar[str] = "running"


@attrs.frozen
class Completed(FlowStatus):
    """The last run reached an exit state."""

    name: ClassVar[str] = "completed"


@attrs.frozen
class Backoff(FlowStatus):
    """The last run failed; scheduled dispatch waits until ``until`` (UTC). A manual
    trigger may still run it."""

    name: ClassVar[str] = "backoff"
    until: datetime.datetime
    streak: int
    last_error: str


@attrs.frozen
class Tripped(FlowStatus):
    """``streak`` consecutive failures hit the policy's limit: nothing runs the flow
    until ``reset_flow``."""

    name: ClassVar[str] = "tripped"
    streak: int
    last_error: str


_IdleT = Idle
_RunningT = Running
_CompletedT = Completed
_BackoffT = Backoff
_TrippedT = Tripped

FlowStatus.Idle = Idle
FlowStatus.Running = Running
FlowStatus.Completed = Completed
FlowStatus.Backoff = Backoff
FlowStatus.Tripped = Tripped
FlowStatus.IDLE = Idle()
FlowStatus.RUNNING = Running()
FlowStatus.COMPLETED = Completed()

#: The original's name for `FlowStatus`.
Status = FlowStatus


@attrs.frozen
class FlowInfo:
    """A snapshot of one flow. ``last_run`` and ``next_eligible`` are aware UTC
    datetimes; ``next_eligible`` is set while a backoff window is open."""

    id: str
    status: FlowStatus
    run_count: int = 0
    last_run: datetime.datetime | None = None
    failure_streak: int = 0
    next_eligible: datetime.datetime | None = None


_anchors: weakref.WeakKeyDictionary[object, tuple[float, datetime.datetime]] = (
    weakref.WeakKeyDictionary()
)


def default_utc_now() -> datetime.datetime:
    """UTC wall time. Under the system clock, the real time; under another library
    clock (``MockClock``), the real time when that clock was first read here, moved on
    by that clock's readings since, so virtual time drives cron schedules too."""
    clock = _clock.get_clock()
    if isinstance(clock, _clock.SystemClock):
        return datetime.datetime.now(UTC)
    reading = clock.now()
    try:
        anchor = _anchors.get(clock)
        if anchor is None:
            anchor = _anchors[clock] = (reading, datetime.datetime.now(UTC))
    except TypeError:  # not weak-referenceable: no anchor to keep
        return datetime.datetime.now(UTC)
    return anchor[1] + datetime.timedelta(seconds=reading - anchor[0])
