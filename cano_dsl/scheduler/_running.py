"""The live scheduler: per-flow loops, runs, outcomes and graceful shutdown
(REFERENCE §8.2, §8.3, §8.5, §5.3).

Structure. ``Scheduler.start()`` returns a `SchedulerRun`, an async context manager.
Entering it validates, sets resources up and opens a task group *in the caller's
task*: one child per interval/cron flow (its loop awaits each run inline) and one
child per manual trigger. Leaving it stops the loops, fires every in-flight run's
`CancellationToken` (their sagas drain; a cancelled run leaves its flow Idle), waits
up to 30 s on the library clock for the runs to settle (then cancels what is left),
closes the task group and tears resources down in reverse registration order.

Other threads reach a running scheduler through a `BlockingPortal` it keeps open as a
child of its task group (``running.from_thread()``, `cano_dsl.scheduler._threads`).

Every wait goes through the library clock (`cano_dsl._clock`), so under
``cano_dsl.testing.MockClock`` schedules, backoff windows and the shutdown bound all
run in virtual time.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel

from .. import _clock, _metrics
from .._cancel import CancellationToken
from .._errors import WorkflowError, category_of
from ._backoff import STREAK_MAX, BackoffPolicy
from ._fires import FireRecords
from ._status import Backoff, FlowInfo, FlowStatus, Running, Tripped, UtcClock

if TYPE_CHECKING:
    from ._builder import FlowSpec, Scheduler
    from ._threads import SchedulerThreadHandle

__all__ = ["RunningScheduler", "SchedulerRun", "SHUTDOWN_TIMEOUT"]

logger = logging.getLogger("cano_dsl.scheduler")

SHUTDOWN_TIMEOUT = 30.0
"""How long a graceful stop waits for cancelled runs to settle, in seconds."""

_NOT_RUNNING = "Scheduler not running — call start() before {}()"
_SETTLE_TIMEOUT = "Timeout waiting for workflows to complete"
_VANISHED = "Scheduler stopped unexpectedly without publishing a result"


def _flow_run(sink: _metrics.MetricsSink, flow: str, ok: bool, started: float) -> None:
    """``cano_scheduler_flow_runs_total{flow, outcome}`` and the flow's duration."""
    sink.counter(
        _metrics.SCHEDULER_FLOW_RUNS_TOTAL,
        1,
        (("flow", flow), ("outcome", "completed" if ok else "failed")),
    )
    sink.histogram(
        _metrics.SCHEDULER_FLOW_DURATION_SECONDS, time.perf_counter() - started, (("flow", flow),)
    )


class _Flow:
    """A flow's live state; only the event loop's thread touches it."""

    __slots__ = (
        "failure_streak",
        "id",
        "last_run",
        "next_eligible",
        "policy",
        "run_count",
        "spec",
        "status",
        "token",
    )

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.policy: BackoffPolicy = spec.policy
        self.status: FlowStatus = FlowStatus.IDLE
        self.run_count = 0
        self.last_run: datetime.datetime | None = None
        self.failure_streak = 0
        self.next_eligible: datetime.datetime | None = None
        self.token: CancellationToken | None = None  # the in-flight run's

    def info(self) -> FlowInfo:
        return FlowInfo(
            id=self.id,
            status=self.status,
            run_count=self.run_count,
            last_run=self.last_run,
            failure_streak=self.failure_streak,
            next_eligible=self.next_eligible,
        )


class RunningScheduler:
    """The handle ``async with sched.start() as running`` yields.

    `trigger`, `reset_flow`, `cancel_flow`, `stop` and `wait` are async commands for
    any task of the event loop that started the scheduler; `status`, `list` and
    `has_running_flows` are synchronous snapshots and keep working after the
    scheduler stopped. From another thread (a GUI, a signal-handling thread, a
    synchronous web framework) use `from_thread`, whose blocking methods hop onto
    the scheduler's event loop.
    """

    def __init__(
        self, flows: list[_Flow], utc_now: UtcClock, fires: FireRecords | None = None
    ) -> None:
        self._flows: dict[str, _Flow] = {f.id: f for f in flows}
        self._utc_now = utc_now
        self._fires = fires
        self._running = True
        self._tg: anyio.abc.TaskGroup | None = None
        self._sleepers: set[anyio.CancelScope] = set()
        self._settled = anyio.Event()
        self._stop_result: bool | None = None  # None: not stopped yet; True: clean
        # the published end of the scheduler (cano's result watch): None while it
        # runs, then "" for a clean stop or the error message; set once the runs
        # settled (`_ended`, for the loop's tasks) and again once the start() block
        # has exited, resources torn down (`_closed`, for other threads)
        self._end: str | None = None
        self._ended = anyio.Event()
        self._closed = threading.Event()
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._loop_thread = threading.get_ident()

    # -- snapshots ---------------------------------------------------------------

    def status(self, id: str) -> FlowInfo | None:
        """A snapshot of flow ``id``, or None if no such flow is registered."""
        flow = self._flows.get(id)
        return None if flow is None else flow.info()

    def list(self) -> list[FlowInfo]:
        """Snapshots of every flow, in registration order."""
        return [flow.info() for flow in self._flows.values()]

    def has_running_flows(self) -> bool:
        """Whether any flow has a run in flight."""
        return any(isinstance(flow.status, Running) for flow in self._flows.values())

    @property
    def is_running(self) -> bool:
        """True until the scheduler starts stopping."""
        return self._running

    def __repr__(self) -> str:
        states = ", ".join(f"{f.id!r}: {f.status.name}" for f in self._flows.values())
        return f"RunningScheduler(running={self._running}, flows={{{states}}})"

    # -- commands ----------------------------------------------------------------

    def _lookup(self, id: str, command: str) -> _Flow:
        if not self._running:
            raise WorkflowError(_NOT_RUNNING.format(command))
        flow = self._flows.get(id)
        if flow is None:
            raise WorkflowError(f"No workflow registered with id '{id}'")
        return flow

    async def trigger(self, id: str) -> None:
        """Run flow ``id`` now, ignoring any backoff window; returns once the run is
        started. Raises `WorkflowError` if the flow is unknown, already running or
        tripped, or the scheduler is not running."""
        await anyio.lowlevel.checkpoint()
        flow = self._lookup(id, "trigger")
        outcome = self._reserve(flow)
        if outcome == "running":
            raise WorkflowError(f"Flow '{id}' is already running")
        if outcome == "tripped":
            raise WorkflowError(f"Flow '{id}' is tripped — call reset_flow before triggering")
        assert self._tg is not None
        self._tg.start_soon(self._execute_reserved, flow, name=f"cano_dsl.scheduler:{id}")

    async def reset_flow(self, id: str) -> None:
        """Clear the flow's failure streak and backoff window; it becomes Idle unless a
        run is in flight (that run's outcome then decides the status)."""
        await anyio.lowlevel.checkpoint()
        flow = self._lookup(id, "reset_flow")
        flow.failure_streak = 0
        flow.next_eligible = None
        if not isinstance(flow.status, Running):
            flow.status = FlowStatus.IDLE

    async def cancel_flow(self, id: str) -> None:
        """Fire the in-flight run's cancellation token (a no-op when the flow is idle).
        The run drains its saga and the flow returns to Idle, its streak untouched."""
        await anyio.lowlevel.checkpoint()
        flow = self._lookup(id, "cancel_flow")
        if flow.token is not None:
            flow.token.cancel()

    async def stop(self) -> None:
        """Stop dispatching, cancel in-flight runs and wait (up to 30 s) for them to
        settle. Resources are torn down when the ``start()`` block exits. Idempotent;
        raises ``WorkflowError("Timeout waiting for workflows to complete")`` if runs
        were still in flight after the wait."""
        await self._stop_and_wait()
        self._raise_end()

    async def wait(self) -> None:
        """Wait until the scheduler has stopped, without stopping it (cano's
        ``RunningScheduler::wait``): until some task or thread called `stop`, or the
        ``start()`` block was left, and the in-flight runs settled. Returns at once
        once stopped (every later call gives the same result). Raises what `stop`
        raises (``WorkflowError("Timeout waiting for workflows to complete")``).

        Waiting without anyone ever stopping the scheduler waits for ever; and as
        resources are torn down when the ``start()`` block exits, the usual shape is
        ``await running.wait()`` as the block's last line, with a signal handler or
        another task calling ``stop()``."""
        if self._end is None:
            await self._ended.wait()
        else:
            await anyio.lowlevel.checkpoint()
        self._raise_end()

    async def _serve_threads(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """A child of the scheduler's task group: the portal other threads call in
        through, open until `_close_portal`."""
        async with anyio.from_thread.BlockingPortal() as portal:
            self._portal = portal
            task_status.started()
            await portal.sleep_until_stopped()

    async def _close_portal(self) -> None:
        """No more calls from threads; the ones under way finish (their commands
        fail fast now that the scheduler is not running)."""
        portal, self._portal = self._portal, None
        if portal is not None:
            await portal.stop()

    def from_thread(self) -> SchedulerThreadHandle:
        """A blocking handle on this scheduler for other threads (see
        `SchedulerThreadHandle`)."""
        from ._threads import SchedulerThreadHandle

        return SchedulerThreadHandle(self)

    def _raise_end(self) -> None:
        if self._end:
            raise WorkflowError(self._end)

    def _publish_end(self, error: str) -> None:
        """Publish how the scheduler ended ("" = cleanly); the first publication wins."""
        if self._end is None:
            self._end = error
            self._ended.set()

    # -- runs --------------------------------------------------------------------

    def _reserve(self, flow: _Flow) -> Literal["reserved", "running", "tripped"]:
        """Check and claim the flow in one step (no await in between)."""
        if isinstance(flow.status, Running):
            return "running"
        if isinstance(flow.status, Tripped):
            return "tripped"
        flow.status = FlowStatus.RUNNING
        flow.last_run = self._utc_now()
        flow.run_count += 1
        flow.token = CancellationToken()
        return "reserved"

    def _dispatchable(self, flow: _Flow) -> bool:
        return not isinstance(flow.status, (Running, Tripped))

    async def _execute(self, flow: _Flow) -> None:
        if self._reserve(flow) == "reserved":
            await self._execute_reserved(flow)

    async def _execute_reserved(self, flow: _Flow) -> None:
        token = flow.token if flow.token is not None else CancellationToken()
        if not self._running:
            token.cancel()
        settled = False
        sink = _metrics.SINK
        if sink is not None:
            sink.gauge_add(_metrics.SCHEDULER_ACTIVE_FLOWS, 1, _metrics.NO_LABELS)
            started = time.perf_counter()
        try:
            await flow.spec.workflow.execute_flow(flow.spec.initial, cancel=token)
        except Exception as exc:
            if sink is not None:
                _flow_run(sink, flow.id, False, started)
            self._apply_failure(flow, exc)
            settled = True
        else:
            if sink is not None:
                _flow_run(sink, flow.id, True, started)
            flow.status = FlowStatus.COMPLETED
            flow.failure_streak = 0
            flow.next_eligible = None
            settled = True
        finally:
            if sink is not None:
                sink.gauge_add(_metrics.SCHEDULER_ACTIVE_FLOWS, -1, _metrics.NO_LABELS)
            flow.token = None
            if not settled:  # cancelled from outside, or a BaseException: never stay Running
                flow.status = FlowStatus.IDLE
            self._settled.set()
            self._settled = anyio.Event()

    def _apply_failure(self, flow: _Flow, exc: Exception) -> None:
        if category_of(exc) == "cancelled":
            logger.debug("scheduled flow %r cancelled", flow.id)
            flow.status = FlowStatus.IDLE
            return
        message = str(exc)
        streak = min(flow.failure_streak + 1, STREAK_MAX)
        flow.failure_streak = streak
        sink = _metrics.SINK
        if flow.policy.is_tripped(streak):
            if sink is not None:
                sink.counter(_metrics.SCHEDULER_FLOW_TRIPPED_TOTAL, 1, (("flow", flow.id),))
            flow.next_eligible = None
            flow.status = Tripped(streak=streak, last_error=message)
            logger.warning("scheduled flow %r tripped after %d failures: %s", flow.id, streak, exc)
            return
        delay = flow.policy.compute_delay(streak)
        until = self._utc_now() + datetime.timedelta(seconds=delay)
        flow.next_eligible = until
        flow.status = Backoff(until=until, streak=streak, last_error=message)
        if sink is not None:
            sink.counter(_metrics.SCHEDULER_FLOW_BACKOFF_TOTAL, 1, (("flow", flow.id),))
        logger.info(
            "scheduled flow %r failed (streak %d), backing off %.3fs: %s",
            flow.id,
            streak,
            delay,
            exc,
        )

    # -- loops -------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> bool:
        """Sleep on the library clock; False as soon as the scheduler stops (also for a
        zero-length wait)."""
        if not self._running:
            return False
        with anyio.CancelScope() as scope:
            self._sleepers.add(scope)
            try:
                if seconds <= 0:
                    await anyio.lowlevel.checkpoint()
                remaining = seconds
                while remaining > 0:
                    chunk = min(remaining, _clock.MAX_SLEEP)
                    await _clock.sleep(chunk)
                    remaining -= chunk
            finally:
                self._sleepers.discard(scope)
        return self._running

    async def _sleep_until(self, when: datetime.datetime) -> bool:
        delay = (when - self._utc_now()).total_seconds()
        while delay > _clock.MAX_SLEEP:  # re-read the wall clock at least once a day
            if not await self._sleep(_clock.MAX_SLEEP):
                return False
            delay = (when - self._utc_now()).total_seconds()
        if not await self._sleep(delay):
            return False
        extra = (when - self._utc_now()).total_seconds()
        if extra > 0:  # the wall clock stepped back while we slept: once more
            return await self._sleep(extra)
        return True

    def _every_wait(self, flow: _Flow, interval: float) -> float:
        eligible = flow.next_eligible
        if eligible is not None:
            extra = (eligible - self._utc_now()).total_seconds()
            if extra > interval:
                return extra
        return interval

    async def _fire_taken(self, flow: _Flow, scheduled: datetime.datetime) -> bool:
        """Whether this process fires ``flow``'s tick at ``scheduled`` (always, without
        fire records)."""
        fires = self._fires
        if fires is None:
            return True
        try:
            return await fires.take_fire(flow.id, scheduled)
        except Exception as exc:
            logger.warning("scheduled flow %r: tick %s skipped: %s", flow.id, scheduled, exc)
            return False

    async def _grid_loop(self, flow: _Flow) -> None:
        """An interval flow under fire records: ticks on the interval's grid since the
        Unix epoch, each run by the one process that takes its record."""
        interval = flow.spec.interval
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        while self._running:
            now = (self._utc_now() - epoch).total_seconds()
            tick = epoch + datetime.timedelta(seconds=(math.floor(now / interval) + 1) * interval)
            if not await self._sleep_until(tick):
                break
            eligible = flow.next_eligible
            if eligible is not None and self._utc_now() < eligible:
                continue
            if not (self._dispatchable(flow) and await self._fire_taken(flow, tick)):
                continue
            # run beside the loop, so the next tick is not missed while it runs
            tg = self._tg
            if tg is not None and self._running and self._reserve(flow) == "reserved":
                tg.start_soon(self._execute_reserved, flow)

    async def _every_loop(self, flow: _Flow) -> None:
        interval = flow.spec.interval
        if not self._running:
            return
        if self._fires is not None:
            await self._grid_loop(flow)
            return
        if self._dispatchable(flow):
            await self._execute(flow)
        while self._running:
            if not await self._sleep(self._every_wait(flow, interval)):
                break
            if self._dispatchable(flow):
                await self._execute(flow)

    async def _cron_loop(self, flow: _Flow) -> None:
        schedule = flow.spec.cron
        assert schedule is not None
        while self._running:
            fire = schedule.next_after(self._utc_now())
            if fire is None:
                logger.info("cron flow %r has no future firing; its loop ends", flow.id)
                break
            if not await self._sleep_until(fire):
                break
            eligible = flow.next_eligible
            if eligible is not None and self._utc_now() < eligible:
                logger.debug("cron tick of %r suppressed by its backoff window", flow.id)
                continue
            if self._dispatchable(flow) and await self._fire_taken(flow, fire):
                await self._execute(flow)

    def _spawn_loops(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        for flow in self._flows.values():
            name = f"cano_dsl.scheduler:{flow.id}"
            if flow.spec.kind == "every":
                tg.start_soon(self._every_loop, flow, name=name)
            elif flow.spec.kind == "cron":
                tg.start_soon(self._cron_loop, flow, name=name)

    # -- shutdown ----------------------------------------------------------------

    async def _wait_settled(self, timeout: float) -> bool:
        """Wait until no flow is Running, at most ``timeout`` seconds."""
        if not self.has_running_flows():
            return True
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while self.has_running_flows():
                    await self._settled.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            await _clock.sleep(timeout)
            tg.cancel_scope.cancel()
        return not self.has_running_flows()

    async def _stop_and_wait(self) -> bool:
        if self._stop_result is not None:
            return self._stop_result
        self._running = False
        for scope in list(self._sleepers):
            scope.cancel()
        for flow in self._flows.values():
            if flow.token is not None:
                flow.token.cancel()
        settled = await self._wait_settled(SHUTDOWN_TIMEOUT)
        if self._stop_result is None:
            self._stop_result = settled
            self._publish_end("" if settled else _SETTLE_TIMEOUT)
        return self._stop_result


class SchedulerRun:
    """What ``Scheduler.start()`` returns: enter it to run the flows (see the module
    docs). One use per object; a scheduler runs one ``start()`` block at a time."""

    def __init__(
        self,
        scheduler: Scheduler,
        specs: list[FlowSpec],
        utc_now: UtcClock,
        fires: FireRecords | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._specs = specs
        self._utc_now = utc_now
        self._fires = fires
        self._entered = False
        self._running: RunningScheduler | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> RunningScheduler:
        if self._entered:
            raise RuntimeError("a start() context can only be entered once")
        self._entered = True
        if self._scheduler._active:
            raise WorkflowError("Scheduler already running — leave its start() block first")
        specs = self._specs
        for spec in specs:
            spec.workflow.validate()
            # known-ness only, like orchestrate (reachability is validate_initial_state's)
            spec.workflow._check_initial(spec.initial)
        done: list[FlowSpec] = []
        for spec in specs:
            try:
                wf = spec.workflow
                await wf.resources._setup(wf._teardown_timeout, wf._observers)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await _teardown(reversed(done))
                raise
            done.append(spec)
        self._scheduler._active = True
        running = self._running = RunningScheduler(
            [_Flow(s) for s in specs], self._utc_now, self._fires
        )
        tg = self._tg = anyio.create_task_group()
        try:
            await tg.__aenter__()
        except BaseException:
            self._scheduler._active = False
            with anyio.CancelScope(shield=True):
                await _teardown(reversed(specs))
            raise
        running._spawn_loops(tg)
        try:
            await tg.start(running._serve_threads, name="cano_dsl.scheduler:threads")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.__aexit__(None, None, None)
            raise
        return running

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        running, tg = self._running, self._tg
        assert running is not None and tg is not None
        settled = True
        suppress = False
        try:
            try:
                with anyio.CancelScope(shield=True):
                    settled = await running._stop_and_wait()
                    await running._close_portal()
            finally:
                if not settled:
                    logger.warning(
                        "scheduler: runs still in flight after %.0fs; cancelling them",
                        SHUTDOWN_TIMEOUT,
                    )
                    tg.cancel_scope.cancel()
                # Hand the task group only a cancellation: any other exception of the
                # block propagates unwrapped, after the graceful stop.
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    suppress = bool(await tg.__aexit__(exc_type, exc, tb))
                else:
                    await tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await _teardown(reversed(self._specs))
            self._scheduler._active = False
            running._publish_end(_VANISHED)  # a no-op after a stop that published
            running._closed.set()
        if not settled and exc is None:
            raise WorkflowError(_SETTLE_TIMEOUT)
        return suppress


async def _teardown(specs: Any) -> None:
    """Tear down each flow's resources, each teardown bounded by its workflow's
    `with_teardown_timeout`; a `KeyboardInterrupt` / `SystemExit` from one flow's
    teardown is re-raised after the other flows were torn down too."""
    deferred: BaseException | None = None
    for spec in specs:
        wf = spec.workflow
        try:
            await wf.resources._teardown(wf._teardown_timeout, wf._observers)
        except BaseException as exc:
            if deferred is None:
                deferred = exc
    if deferred is not None:
        raise deferred
