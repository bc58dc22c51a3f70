"""`Scheduler`: register workflows on an interval, a cron expression or manual
triggers, then `start()` them (REFERENCE §8.1).

Registration mutates the scheduler and returns it, so both styles work::

    sched = Scheduler().every("sync", wf, Step.START, 30).manual("adhoc", wf, Step.START)
    sched.cron("nightly", wf, Step.START, "0 0 3 * * *")

Bad input is rejected here, at registration: a taken id, an unparsable cron
expression, an interval that is not a finite number of seconds > 0 (zero would
busy-spin), a `set_backoff` for an unknown id.
"""

from __future__ import annotations

import datetime
import enum
import math
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

import anyio
import attrs

from .._config import seconds
from .._errors import ConfigurationError
from ._backoff import BackoffPolicy
from ._cron import CronSchedule
from ._fires import EnqueuingFires, FireRecords
from ._status import UtcClock, default_utc_now

__all__ = ["Scheduler"]


@attrs.define(eq=False)
class FlowSpec:
    """One registered flow (internal)."""

    id: str
    workflow: Any
    initial: Any
    kind: Literal["every", "cron", "manual"]
    interval: float = 0.0
    cron: CronSchedule | None = None
    policy: BackoffPolicy = attrs.field(factory=BackoffPolicy)

    @property
    def schedule_text(self) -> str:
        if self.kind == "every":
            return f"every {self.interval:g}s"
        if self.kind == "cron":
            assert self.cron is not None
            return f"cron {self.cron.expression!r}"
        return "manual"


def _check_workflow(workflow: Any, flow_id: str) -> None:
    from ..workflow import Workflow

    if not isinstance(workflow, Workflow):
        raise ConfigurationError(
            f"Flow '{flow_id}': expected a Workflow, got {type(workflow).__name__}"
        )


def _interval(value: Any, flow_id: str, unit: str = "seconds") -> float:
    """An interval as a finite number > 0 (of ``unit``); else `ConfigurationError`."""
    if unit != "seconds" and isinstance(value, datetime.timedelta):
        raise ConfigurationError(
            f"Flow '{flow_id}' interval in {unit} must be a number, got {value!r}; "
            "pass a timedelta to every()"
        )
    out = seconds(value, f"Flow '{flow_id}' interval")
    if not math.isfinite(out) or out <= 0:
        raise ConfigurationError(
            f"Flow '{flow_id}' interval must be a finite number of {unit} > 0, got {out!r} "
            "(a zero interval would re-run the flow in a busy loop; use manual() for a "
            "flow run only on demand)"
        )
    return out


class Scheduler:
    """Runs workflows on intervals, cron expressions and manual triggers.

    Register flows with `every` (and `every_seconds` / `every_minutes` /
    `every_hours`), `cron` and `manual`; override a flow's `BackoffPolicy` with
    `set_backoff`; then run them inside ``async with sched.start() as running:``
    (leaving the block stops gracefully) or ``await sched.serve()`` (until
    cancelled). ``utc_now`` replaces the wall clock that cron schedules, backoff
    windows and ``last_run`` read (default: real UTC time, driven by
    ``cano_dsl.testing.MockClock`` when one is installed).
    """

    def __init__(self, *, utc_now: UtcClock | None = None) -> None:
        self._flows: dict[str, FlowSpec] = {}
        self._utc_now: UtcClock = utc_now if utc_now is not None else default_utc_now
        self._active = False  # a start() block is open
        self._fires: FireRecords | None = None

    # -- registration ------------------------------------------------------------

    def _add(self, spec: FlowSpec) -> Scheduler:
        if not isinstance(spec.id, str) or not spec.id:
            raise ConfigurationError(f"Flow id must be a non-empty str, got {spec.id!r}")
        if not isinstance(spec.initial, enum.Enum):
            raise ConfigurationError(
                f"Flow '{spec.id}': the initial state must be a member of the workflow's "
                f"state Enum, got {spec.initial!r}"
            )
        if spec.id in self._flows:
            raise ConfigurationError(f"Flow '{spec.id}' already exists")
        _check_workflow(spec.workflow, spec.id)
        self._flows[spec.id] = spec
        return self

    def every(
        self, id: str, workflow: Any, initial: Any, interval: float | datetime.timedelta
    ) -> Scheduler:
        """Run ``workflow`` from ``initial`` at once, then ``interval`` seconds after
        each run ends (longer while a backoff window is open). ``interval`` is float
        seconds or a ``timedelta``, finite and > 0."""
        return self._add(FlowSpec(id, workflow, initial, "every", interval=_interval(interval, id)))

    def every_seconds(self, id: str, workflow: Any, initial: Any, n: float) -> Scheduler:
        """`every` with an interval of ``n`` seconds."""
        return self.every(id, workflow, initial, n)

    def every_minutes(self, id: str, workflow: Any, initial: Any, n: float) -> Scheduler:
        """`every` with an interval of ``n`` minutes."""
        return self.every(id, workflow, initial, _interval(n, id, "minutes") * 60)

    def every_hours(self, id: str, workflow: Any, initial: Any, n: float) -> Scheduler:
        """`every` with an interval of ``n`` hours."""
        return self.every(id, workflow, initial, _interval(n, id, "hours") * 3600)

    def cron(self, id: str, workflow: Any, initial: Any, expression: str) -> Scheduler:
        """Run ``workflow`` at each firing of the cron ``expression`` (UTC); see
        `CronSchedule` for the syntax."""
        schedule = CronSchedule.parse(expression)
        return self._add(FlowSpec(id, workflow, initial, "cron", cron=schedule))

    def manual(self, id: str, workflow: Any, initial: Any) -> Scheduler:
        """Run ``workflow`` only when `RunningScheduler.trigger` asks."""
        return self._add(FlowSpec(id, workflow, initial, "manual"))

    def set_backoff(self, id: str, policy: BackoffPolicy) -> Scheduler:
        """Replace the flow's `BackoffPolicy` (default ``BackoffPolicy()``)."""
        flow = self._flows.get(id)
        if flow is None:
            raise ConfigurationError(f"Flow '{id}' not found — cannot set backoff")
        if not isinstance(policy, BackoffPolicy):
            raise ConfigurationError(f"set_backoff expects a BackoffPolicy, got {policy!r}")
        flow.policy = policy
        return self

    # -- inspection --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._flows)

    def is_empty(self) -> bool:
        """No flow registered yet."""
        return not self._flows

    def contains(self, id: str) -> bool:
        """A flow ``id`` is registered."""
        return id in self._flows

    def __contains__(self, id: object) -> bool:
        return id in self._flows

    def ids(self) -> list[str]:
        """Flow ids in registration order."""
        return list(self._flows)

    def backoff(self, id: str) -> BackoffPolicy | None:
        """The flow's policy, or None for an unknown id."""
        flow = self._flows.get(id)
        return None if flow is None else flow.policy

    def __repr__(self) -> str:
        flows = ", ".join(f"{f.id!r}: {f.schedule_text}" for f in self._flows.values())
        return f"Scheduler({{{flows}}})"

    def once_per_fleet(
        self,
        fires: FireRecords,
        *,
        registry: Any = None,
        queue: str = "default",
        priority: int = 0,
    ) -> Scheduler:
        """Fire each interval and cron tick once across every process that runs this
        scheduler with the same ``fires`` (a `cano_dsl.fleet.Fleet`, or any
        `FireRecords`): before running a tick, a scheduler takes its fire record
        (flow id and scheduled time) and runs the flow only if the take succeeded.

        Interval flows then run on a grid shared by all processes: at every multiple of
        the interval since the Unix epoch (UTC), starting with the next one (not at
        once), and a tick that falls while the flow is still running in this process
        is skipped here (another process may take it). A take that fails (the
        database is away) skips the tick in this process. Manual flows are not
        affected.

        With ``registry`` (a `cano_dsl.fleet.Registry`; ``fires`` must then be a
        `Fleet`), the tick of a flow whose id is one of the registry's workflow names
        is not run here: the scheduler enqueues it as a fleet run of that workflow
        (`Fleet.enqueue_tick`, in ``queue`` with ``priority``), whose run id is derived
        from the flow id and the scheduled time, so the run record is the tick's fire
        record and exactly one enqueue creates it. A worker runs it, and recovers it
        like any other run if its worker dies. Other flows' ticks run here as above.
        Returns the scheduler."""
        if not isinstance(fires, FireRecords):
            raise ConfigurationError(
                "once_per_fleet needs fire records: a cano_dsl.fleet.Fleet (or an object "
                f"with `async take_fire(flow_id, scheduled_at) -> bool`), got {fires!r}"
            )
        if registry is not None:
            from ..fleet import Fleet, Registry

            if not isinstance(registry, Registry):
                raise ConfigurationError(
                    "once_per_fleet: registry must be a cano_dsl.fleet.Registry (the "
                    f"workflows the fleet's workers serve) or None, got {registry!r}"
                )
            if not isinstance(fires, Fleet):
                raise ConfigurationError(
                    "once_per_fleet: with a registry, fires must be a cano_dsl.fleet.Fleet "
                    f"(its ticks are enqueued as fleet runs), got {fires!r}"
                )
            if not isinstance(queue, str) or not queue:
                raise ConfigurationError(
                    f"once_per_fleet: queue must be a non-empty str, got {queue!r}"
                )
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise ConfigurationError(
                    f"once_per_fleet: priority must be an int, got {priority!r}"
                )
            fires = EnqueuingFires(fires, registry, self._flows, queue, priority)
        self._fires = fires
        return self

    # -- running -----------------------------------------------------------------

    def start(self) -> AbstractAsyncContextManager[Any]:
        """An async context manager running the flows; yields a `RunningScheduler`.

        On entry: validate every workflow and its initial state (registration order;
        the first error is raised as is, before any setup), then set each flow's
        resources up in registration order (a failure tears the earlier flows down
        in reverse and is raised), then start one loop per interval/cron flow in the
        caller's task. On exit: stop the loops, cancel in-flight runs (their sagas
        drain), wait up to 30 s for them, and tear resources down in reverse
        registration order.
        """
        from ._running import SchedulerRun

        return SchedulerRun(self, list(self._flows.values()), self._utc_now, self._fires)

    async def serve(self) -> None:
        """Run the flows until cancelled (then stop gracefully, as `start` does)."""
        async with self.start():
            await anyio.sleep_forever()
