"""`Fleet`: the run queue's public API, and `RunHandle`."""

from __future__ import annotations

import builtins
import datetime
import enum
import json
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

import anyio

from .. import _spans
from .._errors import ConfigurationError
from .._ids import check_workflow_id
from ..resilience import RateLimiterPolicy
from ._db import FleetDb, db_for_store
from ._record import (
    QueueLimits,
    RunCancelledError,
    RunFailedError,
    RunNotFound,
    RunRecord,
    RunStatus,
)

__all__ = ["Fleet", "RunHandle"]

_T = TypeVar("_T")


def _label(state: object) -> str:
    if isinstance(state, enum.Enum):
        return state.name
    if isinstance(state, str) and state:
        return state
    raise ConfigurationError(
        f"enqueue: initial_state must be an Enum member or a non-empty state label (str), "
        f"got {state!r}"
    )


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigurationError(f"{what} must be a non-empty str without NUL, got {value!r}")
    return value


def _json_items(data: Iterable[Any]) -> list[str]:
    blobs: list[str] = []
    for i, item in enumerate(data):
        try:
            blobs.append(json.dumps(item, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"enqueue_many: data[{i}] must be a JSON value (dict, list, str, int, "
                f"float, bool, None): {exc}"
            ) from exc
    return blobs


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**62) < value < 2**62:
        raise ConfigurationError(f"{what} must be an int in (-2**62, 2**62), got {value!r}")
    return value


class Fleet:
    """The run queue and run records of one checkpoint store's database.

    ``store`` is a `SqliteCheckpointStore` (several processes on one host) or a
    `PostgresCheckpointStore` (many hosts); anything else raises `ConfigurationError`.
    The fleet keeps its own database connection and creates its run table
    (``cano_fleet_runs`` on SQLite, ``<store table>_runs`` on PostgreSQL) on first use,
    after the store has created its own schema. Usable from any process, with or without
    a `Worker`: `enqueue`, `get`, `list` and `cancel` only touch the database.

    Use as ``async with Fleet(store) as fleet:`` or call `aclose` when done (the store is
    not closed: it belongs to the caller).
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._db: FleetDb = db_for_store(store)
        self._opened = False

    @property
    def store(self) -> Any:
        """The checkpoint store this fleet's runs write to."""
        return self._store

    async def _call(self, fn: Callable[[], _T]) -> _T:
        if not self._opened:
            await self._store.open()  # the store's schema first, under its own rules
            self._opened = True
        return await anyio.to_thread.run_sync(fn)

    async def open(self) -> None:
        """Open the store and create the run table now (else on first use)."""
        await self._call(lambda: self._db.list_runs((), None, None, 1, 0))

    async def aclose(self) -> None:
        """Close the fleet's connection (a later call opens a new one)."""
        await anyio.to_thread.run_sync(self._db.close)

    async def __aenter__(self) -> Fleet:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def enqueue(
        self,
        workflow_name: str,
        initial_state: object,
        data: Any = None,
        *,
        run_id: str | None = None,
        queue: str = "default",
        priority: int = 0,
        version: int | None = None,
    ) -> RunHandle:
        """Queue a run of the registered workflow ``workflow_name`` starting at
        ``initial_state`` (an Enum member or its label) with run ``data`` (any JSON
        value; ``None`` by default) and return its handle.

        ``run_id`` (a workflow id; default a fresh UUID hex) makes the call idempotent:
        if a run with that id exists, whatever its state, nothing is queued and its
        handle is returned (`RunHandle.created` is ``False``). ``queue`` names the queue
        (``"default"``); a higher ``priority`` (an int, default 0) is claimed first,
        FIFO within one priority. ``version`` pins the registered version a worker
        builds (default: the newest the worker has). Bad input raises
        `ConfigurationError` before anything is written.

        Called inside an active OpenTelemetry span (with a tracer provider configured),
        the run record keeps that span's W3C trace context (`RunRecord.trace_context`)
        and the worker's root span of the run (``workflow_orchestrate`` /
        ``workflow_resume``) is its child, in whichever process or host runs it.
        """
        name = _name(workflow_name, "enqueue: workflow_name")
        state = _label(initial_state)
        queue = _name(queue, "enqueue: queue")
        priority = _int(priority, "enqueue: priority")
        if version is not None:
            version = _int(version, "enqueue: version")
        rid = uuid.uuid4().hex if run_id is None else check_workflow_id(run_id, "enqueue")
        try:
            blob = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                "enqueue: data must be a JSON value (dict, list, str, int, float, bool, None): "
                f"{exc}"
            ) from exc
        carrier = _spans.current_trace_context()
        trace = None if carrier is None else json.dumps(carrier)
        record, created = await self._call(
            lambda: self._db.enqueue(rid, name, version, queue, priority, state, blob, trace)
        )
        return RunHandle(self, record.run_id, created=created)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on the existing run ``run_id`` (no I/O; a later call on the handle
        raises `RunNotFound` if there is no such run)."""
        return RunHandle(self, check_workflow_id(run_id, "handle"), created=False)

    async def get(self, run_id: str) -> RunRecord:
        """The record of run ``run_id``; `RunNotFound` if there is none."""
        rid = check_workflow_id(run_id, "get")
        record = await self._call(lambda: self._db.get(rid))
        if record is None:
            raise RunNotFound(rid)
        return record

    async def list(
        self,
        *,
        status: RunStatus | str | Iterable[RunStatus | str] | None = None,
        queue: str | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Run records, oldest enqueued first, filtered by ``status`` (one status or
        several), ``queue`` and ``workflow_name`` (``None``: any); one page of at most
        ``limit`` (1..10,000, default 100) records after skipping ``offset``."""
        if status is None:
            statuses: list[str] = []
        elif isinstance(status, (RunStatus, str)):
            statuses = [RunStatus(status).value]
        else:
            statuses = [RunStatus(s).value for s in status]
        limit = _int(limit, "list: limit")
        offset = _int(offset, "list: offset")
        if not 1 <= limit <= 10_000 or offset < 0:
            raise ConfigurationError(
                f"list: limit must be in 1..10000 and offset >= 0, got {limit!r}, {offset!r}"
            )
        return await self._call(
            lambda: self._db.list_runs(statuses, queue, workflow_name, limit, offset)
        )

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel run ``run_id`` from any process: a queued run becomes ``CANCELLED`` at
        once and never starts; a running one is cancelled by its owner through its
        cancellation token at its next heartbeat (compensations run as for any
        cancelled run); a finished run is left as it is. Returns the record as of the
        request; `RunNotFound` if there is no such run."""
        rid = check_workflow_id(run_id, "cancel")
        record = await self._call(lambda: self._db.cancel(rid))
        if record is None:
            raise RunNotFound(rid)
        return record

    async def set_queue_limits(
        self,
        queue: str,
        *,
        max_running: int | None = None,
        start_rate: RateLimiterPolicy | None = None,
    ) -> None:
        """Limit ``queue`` across the whole fleet: at most ``max_running`` (an int >= 1)
        of its runs at once, and run starts paced by ``start_rate`` (a
        `RateLimiterPolicy`: a token bucket of its capacity, starting full, refilled at
        its rate; each claim of a run, a fresh start or a recovery, takes one token).
        Both are checked and spent in the claim's transaction, so they hold however many
        workers there are; runs over a limit stay queued (never failed). A call replaces
        the queue's previous limits; with neither given it removes them."""
        queue = _name(queue, "set_queue_limits: queue")
        if max_running is not None:
            max_running = _int(max_running, "set_queue_limits: max_running")
            if max_running < 1:
                raise ConfigurationError(
                    f"set_queue_limits: max_running must be >= 1 (or None), got {max_running}"
                )
        if start_rate is not None and not isinstance(start_rate, RateLimiterPolicy):
            raise ConfigurationError(
                "set_queue_limits: start_rate must be a RateLimiterPolicy (for example "
                f"RateLimiterPolicy.new(10, 1.0)) or None, got {start_rate!r}"
            )
        capacity = None if start_rate is None else float(start_rate.capacity)
        rate = None if start_rate is None else start_rate.rate
        await self._call(lambda: self._db.set_queue(queue, max_running, capacity, rate))

    async def queue_limits(self, queue: str) -> QueueLimits:
        """``queue``'s limits (all ``None`` when it has none)."""
        queue = _name(queue, "queue_limits: queue")
        found = await self._call(lambda: self._db.get_queue(queue))
        if found is None:
            return QueueLimits(queue, None, None, None)
        return QueueLimits(queue, *found)

    async def enqueue_tick(
        self,
        flow_id: str,
        scheduled_at: datetime.datetime,
        initial_state: object,
        *,
        queue: str = "default",
        priority: int = 0,
    ) -> RunHandle:
        """Enqueue the scheduler tick of ``flow_id`` at ``scheduled_at`` as a run of the
        registered workflow named ``flow_id`` (what `Scheduler.once_per_fleet` does with
        a ``registry``). Its run id, ``"<flow id>@<scheduled time, UTC ISO 8601>"``
        (`tick_run_id`), makes the run record the tick's fire record: across every
        process, exactly one call per tick gets a handle with ``created`` ``True``."""
        flow = _name(flow_id, "enqueue_tick: flow_id")
        return await self.enqueue(
            flow,
            initial_state,
            run_id=tick_run_id(flow, scheduled_at),
            queue=queue,
            priority=priority,
        )

    async def take_fire(self, flow_id: str, scheduled_at: datetime.datetime) -> bool:
        """Take the fire record of ``flow_id``'s tick at ``scheduled_at`` (the
        `cano_dsl.scheduler.FireRecords` protocol, used by `Scheduler.once_per_fleet`):
        ``True`` for exactly one caller across every process sharing the database. A
        naive ``scheduled_at`` is taken as UTC."""
        if scheduled_at.tzinfo is None:
            scheduled_at = scheduled_at.replace(tzinfo=datetime.timezone.utc)
        key = scheduled_at.astimezone(datetime.timezone.utc).isoformat()
        flow = _name(flow_id, "take_fire: flow_id")
        return await self._call(lambda: self._db.take_fire(flow, key))

    async def enqueue_many(
        self,
        workflow_name: str,
        initial_state: object,
        data: Iterable[Any],
        *,
        run_ids: Iterable[str] | None = None,
        queue: str = "default",
        priority: int = 0,
        version: int | None = None,
    ) -> builtins.list[RunHandle]:
        """Queue one run of ``workflow_name`` at ``initial_state`` per item of ``data``
        (each a JSON value, as in `enqueue`), all in one transaction (on PostgreSQL one
        round trip), and return their handles in order: many times faster than as many
        `enqueue` calls. ``run_ids`` (as many workflow ids as ``data`` has items)
        makes each one idempotent like `enqueue`'s ``run_id``: a run whose id exists
        is left alone and its handle has `RunHandle.created` ``False``; default fresh
        UUIDs. ``queue``, ``priority``, ``version`` and the active span's trace context
        (as in `enqueue`) apply to every run. Bad input (any item) raises
        `ConfigurationError` before anything is written."""
        name = _name(workflow_name, "enqueue_many: workflow_name")
        state = _label(initial_state)
        queue = _name(queue, "enqueue_many: queue")
        priority = _int(priority, "enqueue_many: priority")
        if version is not None:
            version = _int(version, "enqueue_many: version")
        blobs = _json_items(data)
        if run_ids is None:
            rids = [uuid.uuid4().hex for _ in blobs]
        else:
            if isinstance(run_ids, str):
                raise ConfigurationError(
                    "enqueue_many: run_ids must be an iterable of workflow ids, not a str"
                )
            rids = [check_workflow_id(r, "enqueue_many") for r in run_ids]
            if len(rids) != len(blobs):
                raise ConfigurationError(
                    f"enqueue_many: run_ids has {len(rids)} ids for {len(blobs)} data items "
                    "(one id per item)"
                )
        carrier = _spans.current_trace_context()
        trace = None if carrier is None else json.dumps(carrier)
        rows = [
            (rid, name, version, queue, priority, state, blob, trace)
            for rid, blob in zip(rids, blobs, strict=True)
        ]
        created = await self._call(lambda: self._db.enqueue_many(rows))
        return [RunHandle(self, rid, created=c) for rid, c in zip(rids, created, strict=True)]


def tick_run_id(flow_id: str, scheduled_at: datetime.datetime) -> str:
    """The run id of ``flow_id``'s tick at ``scheduled_at`` (naive: UTC):
    ``"<flow id>@<scheduled time as UTC ISO 8601>"``."""
    if scheduled_at.tzinfo is None:
        scheduled_at = scheduled_at.replace(tzinfo=datetime.timezone.utc)
    return f"{flow_id}@{scheduled_at.astimezone(datetime.timezone.utc).isoformat()}"


class RunHandle:
    """A reference to one run of a `Fleet` (from `Fleet.enqueue` or `Fleet.handle`)."""

    def __init__(self, fleet: Fleet, run_id: str, *, created: bool) -> None:
        self._fleet = fleet
        self._run_id = run_id
        self._created = created

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def created(self) -> bool:
        """Whether the `Fleet.enqueue` that made this handle queued the run (``False``
        when the id existed already, and for `Fleet.handle`)."""
        return self._created

    def __repr__(self) -> str:
        return f"RunHandle({self._run_id!r})"

    async def record(self) -> RunRecord:
        """The run's current record (`Fleet.get`)."""
        return await self._fleet.get(self._run_id)

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.record()).status

    async def cancel(self) -> RunRecord:
        """Cancel the run (`Fleet.cancel`)."""
        return await self._fleet.cancel(self._run_id)

    async def result(
        self, *, timeout: float | None = None, poll_interval: float = 0.05
    ) -> RunRecord:
        """Wait until the run is final and return its record if it ``SUCCEEDED``
        (``exit_state`` and ``result_data`` hold the result). A ``FAILED`` run raises
        `RunFailedError`, a ``CANCELLED`` one `RunCancelledError` (both carry the
        record). ``timeout`` (seconds, default none) raises `TimeoutError` when it runs
        out; the record is read every ``poll_interval`` seconds, doubling up to 1 s."""
        if isinstance(poll_interval, bool) or not poll_interval > 0:
            raise ConfigurationError(f"result: poll_interval must be > 0, got {poll_interval!r}")
        with anyio.fail_after(timeout):
            delay = float(poll_interval)
            while True:
                record = await self.record()
                if record.status is RunStatus.SUCCEEDED:
                    return record
                if record.status is RunStatus.FAILED:
                    raise RunFailedError(record)
                if record.status is RunStatus.CANCELLED:
                    raise RunCancelledError(record)
                await anyio.sleep(delay)
                delay = min(delay * 2, max(1.0, poll_interval))
