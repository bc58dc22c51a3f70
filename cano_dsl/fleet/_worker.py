"""`Registry` and `Worker`: claim queued runs, hold their leases, run them fenced."""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from .. import _spans
from .._cancel import CancellationToken
from .._errors import ConfigurationError, category_of
from .._state import label
from ..stores._row import CheckpointRow
from ..workflow import Workflow
from ._db import FleetDb, OpFailed
from ._fleet import Fleet
from ._record import FleetError, RunRecord, RunStatus

__all__ = ["Registry", "Worker"]

_log = logging.getLogger("cano_dsl.fleet")
_T = TypeVar("_T")

WorkflowFactory = Callable[[RunRecord], Any]


class Registry:
    """Named workflow definitions a `Worker` can run: ``(name, version)`` → a factory
    that builds a fresh `Workflow` for one run. The factory is called with the run's
    `RunRecord` (its ``run_id``, ``data``, ``recoveries``, ...) each time a worker
    starts or resumes the run, and returns a `Workflow` without a checkpoint store or
    workflow id: the worker attaches its own fenced store and the run's id. Register
    every definition before a worker starts."""

    def __init__(self) -> None:
        self._defs: dict[str, dict[int, WorkflowFactory]] = {}

    def register(self, name: str, factory: WorkflowFactory, *, version: int = 1) -> Registry:
        """Add ``factory`` under ``name`` and ``version`` (an int >= 0, default 1); a
        second registration of the same pair raises `ConfigurationError`. Returns the
        registry, so calls chain."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"Registry.register: name must be a non-empty str, got {name!r}"
            )
        if not callable(factory):
            raise ConfigurationError(
                f"Registry.register({name!r}): factory must be a callable returning a Workflow"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ConfigurationError(
                f"Registry.register({name!r}): version must be an int >= 0, got {version!r}"
            )
        versions = self._defs.setdefault(name, {})
        if version in versions:
            raise ConfigurationError(f"Registry.register: {name!r} version {version} exists")
        versions[version] = factory
        return self

    @property
    def names(self) -> list[str]:
        """The registered workflow names, sorted."""
        return sorted(self._defs)

    def factory(self, name: str, version: int | None = None) -> WorkflowFactory:
        """The factory of ``name`` at ``version`` (default: the newest);
        `ConfigurationError` if it is not registered."""
        versions = self._defs.get(name)
        if not versions:
            raise ConfigurationError(f"no workflow {name!r} in the registry")
        if version is None:
            version = max(versions)
        factory = versions.get(version)
        if factory is None:
            raise ConfigurationError(
                f"workflow {name!r} has no version {version} in the registry "
                f"(registered: {sorted(versions)})"
            )
        return factory


class _LeaseLost(BaseException):
    """Raised out of a run whose lease another worker holds now: not an `Exception`,
    so the engine neither handles it nor compensates; the worker drops the run."""


class _Held:
    """A run this worker is running."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.token = CancellationToken()
        self.lost = False
        self.clear = False
        self.workflow: Any = None

    def lose(self) -> None:
        """The lease is gone (taken over, or handed back at shutdown): from now on the
        run's appends are refused, and if it is cancelled its compensations do not run
        (the dict the engine's drain looks them up in is emptied): the run's new owner
        decides its fate."""
        self.lost = True
        if self.workflow is not None:
            self.workflow._compensators.clear()


class _GroupCommit:
    """Commits the fenced appends and final records of all of a worker's runs together:
    a caller that finds no batch in flight becomes the leader and runs every queued op
    in one transaction (`FleetDb.batch`), again and again until the queue is empty;
    the others wait for their op's result. One commit (one fsync) then serves many
    runs. The leader's loop is shielded, so a cancelled leader hands no half-done batch
    over (its own cancellation is delivered when the queue is empty)."""

    def __init__(self, db: FleetDb) -> None:
        self._db = db
        self._queue: list[tuple[Callable[[Any], Any], _Slot]] = []
        self._leading = False

    async def run(self, op: Callable[[Any], _T]) -> _T:
        slot = _Slot()
        self._queue.append((op, slot))
        if not self._leading:
            self._leading = True
            try:
                with anyio.CancelScope(shield=True):
                    while self._queue:
                        batch, self._queue = self._queue, []
                        ops = [o for o, _ in batch]
                        try:
                            results = await anyio.to_thread.run_sync(self._db.batch, ops)
                        except Exception as exc:
                            for _, s in batch:
                                s.fail(exc)
                        else:
                            for (_, s), result in zip(batch, results, strict=True):
                                if isinstance(result, OpFailed):
                                    s.fail(result.error)
                                else:
                                    s.succeed(result)
            finally:
                self._leading = False
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        out: _T = slot.result
        return out


class _Slot:
    """One op's outcome in a `_GroupCommit` batch."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: BaseException | None = None
        self.result: Any = None

    def succeed(self, result: Any) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class _FencedStore:
    """The `CheckpointStore` a worker's run writes through: every append is checked
    against the run's lease (owner and epoch) in the same transaction as the insert;
    a refused append raises `_LeaseLost`. ``clear`` is deferred to the final record's
    transaction, so a run that dies between the two is resumed at its exit state
    rather than started again."""

    def __init__(
        self, db: FleetDb, commits: _GroupCommit, owner: str, held: _Held, patience: float
    ) -> None:
        self._db = db
        self._commits = commits
        self._owner = owner
        self._held = held
        self._patience = patience

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        held = self._held
        if held.lost:
            raise _LeaseLost
        epoch = held.record.epoch
        op = self._db.fenced_append_op(workflow_id, self._owner, epoch, row)
        outcome = await _patiently(held, self._patience, lambda: self._commits.run(op))
        if outcome == "fenced":
            held.lose()
            raise _LeaseLost
        if outcome == "conflict":
            from ..stores._codec import conflict_error

            raise conflict_error(workflow_id, row.sequence)

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        return await _patiently(
            self._held,
            self._patience,
            lambda: anyio.to_thread.run_sync(self._db.load, workflow_id),
        )

    async def clear(self, workflow_id: str) -> None:
        self._held.clear = True


async def _patiently(held: _Held, patience: float, call: Callable[[], Awaitable[_T]]) -> _T:
    """``call()`` in a worker thread, tried again while the database is unreachable
    (a restart, a network cut) for up to ``patience`` seconds (the lease: after that
    another worker may own the run); then the run is dropped quietly (`_LeaseLost`)
    and whoever claims it next resumes it from its checkpoint."""
    deadline = anyio.current_time() + patience
    delay = 0.05
    while True:
        try:
            return await call()
        except FleetError as exc:
            if anyio.current_time() + delay >= deadline:
                _log.warning("fleet: giving a run up, the database is away: %s", exc)
                held.lose()
                raise _LeaseLost from exc
            await anyio.sleep(delay)
            delay = min(delay * 2, 1.0)


def _has_lease_lost(exc: BaseException) -> bool:
    if isinstance(exc, _LeaseLost):
        return True
    inner = getattr(exc, "exceptions", None)  # a BaseExceptionGroup (3.10: the backport)
    if isinstance(inner, tuple):
        return any(isinstance(e, BaseException) and _has_lease_lost(e) for e in inner)
    return exc.__cause__ is not None and _has_lease_lost(exc.__cause__)


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"Worker: {what} must be a number > 0, got {value!r}")
    return float(value)


class Worker:
    """Runs the fleet's queued runs of the workflows in ``registry``.

    Claims runs of the registered names (only from ``queues``, default every queue),
    highest priority first, FIFO within a priority, and runs up to ``concurrency``
    (default 8) at once. Each run is held under a lease of ``lease`` seconds (default
    30), renewed every ``heartbeat`` seconds (default ``lease / 3``; must be below
    ``lease``). A run whose lease expires (its worker died or stalled) is claimed by any
    worker and resumed from its checkpoint log; the former owner's later writes are
    refused and it drops the run quietly. An idle worker polls for work every
    ``poll_interval`` seconds at first (default 0.05), backing off to ``max_poll_interval``
    (default 1.0) while the queue stays empty. ``worker_id`` names the worker in the
    run records (default ``host:pid:random``).
    """

    def __init__(
        self,
        fleet: Fleet,
        registry: Registry,
        *,
        concurrency: int = 8,
        lease: float = 30.0,
        heartbeat: float | None = None,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        queues: Iterable[str] | None = None,
        worker_id: str | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"Worker: concurrency must be an int >= 1, got {concurrency!r}"
            )
        self._lease = _positive(lease, "lease")
        self._heartbeat = (
            self._lease / 3 if heartbeat is None else _positive(heartbeat, "heartbeat")
        )
        if self._heartbeat >= self._lease:
            raise ConfigurationError(
                f"Worker: heartbeat ({self._heartbeat}s) must be shorter than lease "
                f"({self._lease}s)"
            )
        self._poll = _positive(poll_interval, "poll_interval")
        self._max_poll = max(self._poll, _positive(max_poll_interval, "max_poll_interval"))
        if not registry.names:
            raise ConfigurationError("Worker: the registry has no workflows")
        self._fleet = fleet
        self._db = fleet._db
        self._registry = registry
        self._concurrency = concurrency
        self._queues = None if queues is None else list(queues)
        self._id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[str, _Held] = {}
        self._commits = _GroupCommit(self._db)
        self._stopping = False
        self._wake = anyio.Event()
        self._stop_scope: anyio.CancelScope | None = None

    @property
    def worker_id(self) -> str:
        """The owner name this worker writes into the records of runs it holds."""
        return self._id

    @property
    def running(self) -> int:
        """How many runs the worker holds right now."""
        return len(self._held)

    def stop(self) -> None:
        """Stop claiming new runs; `run` returns once the held runs are finished (see
        `run`'s ``grace``)."""
        self._stopping = True
        self._wake.set()

    async def run(self, *, grace: float = 30.0) -> None:
        """Serve until `stop` is called or the surrounding scope is cancelled.

        After `stop`, runs in progress get ``grace`` seconds (default 30) to finish.
        Then the leases of those still running are handed back to the queue (another
        worker claims and resumes them from their checkpoints at once, without waiting
        for the lease to expire) and they are interrupted: no more appends, no
        compensation (the run is not over; its next owner carries on). The same
        hand-back happens when the surrounding scope cancels `run`."""
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
            raise ConfigurationError(f"Worker.run: grace must be a number >= 0, got {grace!r}")
        await self._fleet.open()
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._heartbeat_loop)
            if self._db.dialect == "postgres":
                outer.start_soon(self._listen)
            try:
                async with anyio.create_task_group() as runs:
                    try:
                        await self._claim_loop(runs)
                        with anyio.move_on_after(grace):
                            while self._held:
                                await self._wait_for_change()
                    finally:
                        with anyio.CancelScope(shield=True):
                            await self._release_all()
                        runs.cancel_scope.cancel()
            finally:
                outer.cancel_scope.cancel()

    def _wake_up(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """PostgreSQL: ``LISTEN`` on the run table's channel in a thread, on a connection
        of its own, and wake the claim loop on every ``NOTIFY`` (an enqueue, a release),
        so an idle worker starts a new run within milliseconds instead of at its next
        poll. If listening fails, polling alone goes on."""
        token = anyio.lowlevel.current_token()
        stop = threading.Event()
        channel = self._db.runs

        def wake(_notify: object) -> None:
            try:
                anyio.from_thread.run_sync(self._wake_up, token=token)
            except RuntimeError:  # the loop is gone
                stop.set()

        def listen() -> None:
            conn = self._db.connect_raw()
            try:
                conn.autocommit = True
                conn.add_notify_handler(wake)
                conn.execute(f"LISTEN {channel}")
                while not stop.is_set():
                    ready, _, _ = select.select([conn.fileno()], [], [], 0.5)
                    if ready:
                        conn.execute("SELECT 1")  # delivers the pending notifications
            finally:
                conn.close()

        try:
            await anyio.to_thread.run_sync(listen, abandon_on_cancel=True)
        except Exception as exc:
            _log.warning("worker %s: LISTEN failed, polling only: %s", self._id, exc)
        finally:
            stop.set()

    async def _wait_for_change(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    async def _claim_loop(self, runs: anyio.abc.TaskGroup) -> None:
        delay = self._poll
        while not self._stopping:
            free = self._concurrency - len(self._held)
            claimed: list[RunRecord] = []
            if free > 0:
                try:
                    claimed = await anyio.to_thread.run_sync(
                        self._db.claim,
                        self._id,
                        free,
                        self._lease,
                        self._registry.names,
                        self._queues,
                    )
                except Exception as exc:  # the database is away: try again later
                    _log.warning("worker %s: claim failed: %s", self._id, exc)
            for record in claimed:
                held = _Held(record)
                self._held[record.run_id] = held
                runs.start_soon(self._run_one, held)
            if claimed:
                delay = self._poll
                continue
            with anyio.move_on_after(delay):
                await self._wait_for_change()
            if free > 0:
                delay = min(delay * 2, self._max_poll)

    async def _heartbeat_loop(self) -> None:
        while True:
            await anyio.sleep(self._heartbeat)
            held = [(rid, h.record.epoch) for rid, h in self._held.items()]
            try:
                lost, cancel = await anyio.to_thread.run_sync(
                    self._db.heartbeat, self._id, held, self._lease
                )
            except Exception as exc:
                _log.warning("worker %s: heartbeat failed: %s", self._id, exc)
                continue
            for rid in lost:
                h = self._held.get(rid)
                if h is not None:
                    h.lose()
            for rid in cancel:
                h = self._held.get(rid)
                if h is not None:
                    h.token.cancel()

    async def _release_all(self) -> None:
        held = [(rid, h.record.epoch) for rid, h in self._held.items()]
        for h in self._held.values():
            h.lose()
        if held:
            try:
                await anyio.to_thread.run_sync(lambda: self._db.release(self._id, held))
            except Exception as exc:
                _log.warning("worker %s: release failed: %s", self._id, exc)

    async def _run_one(self, held: _Held) -> None:
        record = held.record
        rid = record.run_id
        try:
            with _spans.remote_parent(record.trace_context):
                await self._execute(held)
        except BaseException as exc:
            if not _has_lease_lost(exc):
                raise
            _log.info("worker %s: run %s is owned by another worker now", self._id, rid)
        finally:
            if self._held.get(rid) is held:
                del self._held[rid]
            self._wake.set()

    async def _execute(self, held: _Held) -> None:
        record = held.record
        rid = record.run_id
        if record.cancel_requested:
            held.token.cancel()
        try:
            wf = self._registry.factory(record.workflow_name, record.workflow_version)(record)
            if not isinstance(wf, Workflow):
                raise ConfigurationError(
                    f"the registry's factory for {record.workflow_name!r} returned "
                    f"{type(wf).__name__}, not a Workflow"
                )
            # this run's own compensator table: `_Held.lose` empties it, and a factory
            # may hand out one shared Workflow to every run
            wf = wf.with_checkpoint_store(
                _FencedStore(self._db, self._commits, self._id, held, self._lease)
            )._evolve(_compensators=dict(wf._compensators))
            held.workflow = wf
            codec = wf._codec
            if held.lost:
                raise _LeaseLost
            # through the group commit: one round trip shared with other runs' writes
            load = self._db.load_op(rid)
            rows = await _patiently(held, self._lease, lambda: self._commits.run(load))
            if rows:
                result = await wf.resume(rid, cancel=held.token)
            else:
                by_label = {s.name: s for s in (*wf.registered_states(), *wf.exit_states)}
                initial = by_label.get(record.initial_state)
                if initial is None:
                    raise ConfigurationError(
                        f"workflow {record.workflow_name!r} has no state {record.initial_state!r}"
                    )
                wf = wf.with_workflow_id(rid)
                held.workflow = wf
                codec = wf._codec
                if codec is None:
                    result = await wf.run(initial, cancel=held.token)
                else:
                    start = (
                        codec.default("enqueue")
                        if record.data is None
                        else codec.from_tree(record.data)
                    )
                    result = await wf.run(initial, data=start, cancel=held.token)
        except Exception as exc:
            if _has_lease_lost(exc):
                raise _LeaseLost from None
            if held.lost:
                raise _LeaseLost from None
            cancelled = held.token.is_cancelled and category_of(exc) == "cancelled"
            state = getattr(exc, "state", None)
            await self._finish(
                held,
                RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
                error=(
                    category_of(exc),
                    str(exc),
                    None if state is None else label(state),
                ),
            )
            return
        await self._finish(
            held,
            RunStatus.SUCCEEDED,
            exit_state=label(result.state),
            result_data=None if codec is None else codec.encode(result.data, label(result.state)),
        )

    async def _finish(self, held: _Held, status: RunStatus, **fields: Any) -> None:
        rid = held.record.run_id
        epoch = held.record.epoch
        clear = held.clear or status is RunStatus.SUCCEEDED
        with anyio.CancelScope(shield=True):
            op = self._db.finish_op(rid, self._id, epoch, status, clear_log=clear, **fields)
            done = await _patiently(held, self._lease, lambda: self._commits.run(op))
        if not done:
            raise _LeaseLost
