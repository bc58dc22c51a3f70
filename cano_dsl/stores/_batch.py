"""Group commit for stores that talk to a blocking database connection.

A store owns one blocking connection (sqlite3, psycopg) that must be used by one thread
at a time and never from the event loop. Every operation becomes an `Op` in a queue. The
first caller to find the queue idle becomes the *leader*: it takes every queued op and
runs them as one batch in a worker thread (``anyio.to_thread.run_sync``), so appends
that arrive while a batch is in flight share the next transaction instead of paying for
one commit each. When its batch is done the leader wakes the callers it served and hands
leadership to the oldest op still queued, then returns; nobody waits on somebody else's
backlog longer than one batch.

Cancellation: a caller's *wait* is always cancellable; the batch is not, because it
carries other callers' ops too (one caller's deadline must not fail its neighbours).

- An op still queued when its caller is cancelled is withdrawn and never runs.
- An op whose batch is in the worker thread is *abandoned*: its caller leaves at once
  (with its cancellation) and the batch goes on for the others. If the thread had not
  started writing that op yet, the op is skipped (not written); otherwise its outcome
  is unknown (it may or may not have been committed).
- One caller at a time *watches* the batch in flight (the leader first): when the
  watcher leaves, the role passes to another caller still waiting on that batch, else
  to the oldest queued op, else to the next caller to arrive. Whoever watches it
  finishes the batch on the loop: wakes its callers and hands leadership over.
- When every op of a running batch has been abandoned, the store's ``abandon`` hook is
  called (on the loop) so it can cut the stuck work short (the PostgreSQL store shuts
  the connection's socket; the SQLite store's lock wait notices by itself).

The worker thread never calls back into the event loop, so a batch that outlives its
loop (a frozen server, the run long over) cannot hang or crash anything: it finishes
in its thread and its result is dropped.

Inline ops: a store may give the runner an ``inline(op)`` hook. When the runner is
idle (no batch in flight, none queued, no leader: the worker thread is not touching
the connection) a submitted op is first offered to it, on the event loop's thread,
after a cancellation check (a cancelled caller starts nothing, as with the thread).
The hook either resolves the op there and then and returns ``True`` (it must not
wait for anything: the SQLite store's inline append has a zero lock wait) or returns
``False`` having changed nothing, and the op goes the usual way. The hook runs with
no ``await``, so nothing else on the loop (another submit in particular) can
interleave with it: it is atomic with respect to the runner. That saves the thread
hop (two cross-thread wake-ups, ~75-160 µs on a loaded VM) when one run writes at a
time; when ops do pile up (concurrent runs, a lock held elsewhere) they queue and
commit together as before.

Everything else runs on one event loop at a time; the queue is never touched from a
thread.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from .._errors import CheckpointStoreError
from .._ids import check_workflow_id
from ._row import CheckpointRow

__all__ = ["BatchRunner", "BatchedStore", "Op", "OpKind", "all_abandoned", "skip_abandoned"]

_S = TypeVar("_S", bound="BatchedStore")


class OpKind(enum.Enum):
    OPEN = enum.auto()
    APPEND = enum.auto()
    LOAD = enum.auto()
    CLEAR = enum.auto()
    CLOSE = enum.auto()


class _Phase(enum.Enum):
    QUEUED = enum.auto()
    RUNNING = enum.auto()
    DONE = enum.auto()


class Op:
    """One store operation and, once its batch has run, its result or error.

    ``abandoned`` is set (on the loop) when the op's caller stopped waiting while its
    batch was in the worker thread; the thread reads it to skip ops not yet written and
    to give up a lock wait nobody waits for any more (see `all_abandoned`).
    """

    __slots__ = (
        "abandoned",
        "args",
        "error",
        "event",
        "kind",
        "lead",
        "phase",
        "resolved",
        "result",
        "watch",
    )

    def __init__(self, kind: OpKind, *args: Any) -> None:
        self.kind = kind
        self.args = args
        self.result: Any = None
        self.error: BaseException | None = None
        self.event: anyio.Event | None = None  # set while its caller waits in `_wait`
        self.lead = False  # told to lead the next batch
        self.watch = False  # told to watch the batch in flight
        self.abandoned = False
        self.phase = _Phase.QUEUED
        self.resolved = False

    def succeed(self, result: Any = None) -> None:
        self.result = result
        self.resolved = True

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.resolved = True

    @property
    def is_write(self) -> bool:
        return self.kind in (OpKind.APPEND, OpKind.CLEAR)


def all_abandoned(ops: Sequence[Op]) -> bool:
    """Whether every caller of ``ops`` has stopped waiting (thread side: give up)."""
    return all(op.abandoned for op in ops)


def skip_abandoned(ops: Sequence[Op]) -> list[Op]:
    """Thread side, before writing: resolve the ops whose callers have left as not run
    and return the others (``CLOSE`` always runs)."""
    live = []
    for op in ops:
        if op.abandoned and op.kind is not OpKind.CLOSE:
            op.fail(CheckpointStoreError("abandoned by its caller before it ran"))
        else:
            live.append(op)
    return live


class _State(enum.Enum):
    PENDING = enum.auto()  # handed to a worker thread that has not picked it up yet
    STARTED = enum.auto()  # the thread is running it
    FINISHED = enum.auto()  # the thread is done: results are in
    DROPPED = enum.auto()  # given up before the thread picked it up: never runs


class _Batch:
    """A batch in flight and its handshake with the worker thread (under ``lock``)."""

    __slots__ = ("abandon_called", "done", "lock", "ops", "state")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.lock = threading.Lock()
        self.state = _State.PENDING
        self.done = threading.Event()
        self.abandon_called = False


class BatchRunner:
    """Runs `Op`s through ``execute(batch)`` in worker threads, one batch at a time.

    ``execute`` runs in a worker thread and must call ``op.succeed(...)`` or
    ``op.fail(...)`` on every op of the batch; if it raises instead, the exception is
    given to every op it left unresolved. A `BaseException` that is not an `Exception`
    (``KeyboardInterrupt``, ``SystemExit``) fails every unresolved op with
    `CheckpointStoreError` and then propagates to the batch's leader. (Rolling back what
    the batch did is ``execute``'s job: the stores do it before they let anything out.)
    ``abandon(ops)`` (optional) is called on the event loop when every caller of a
    running batch has stopped waiting. ``inline(op)`` (optional) may run an op on the
    event loop while the runner is idle (see the module docstring).
    """

    def __init__(
        self,
        execute: Callable[[Sequence[Op]], None],
        abandon: Callable[[Sequence[Op]], None] | None = None,
        inline: Callable[[Op], bool] | None = None,
    ) -> None:
        self._execute = execute
        self._abandon = abandon
        self._inline = inline
        self._queue: deque[Op] = deque()
        self._busy = False  # a leader owns the queue (running a batch or about to)
        self._batch: _Batch | None = None  # the batch in flight
        self._vacant = False  # the batch in flight has nobody watching it

    @property
    def idle(self) -> bool:
        """No batch in flight or queued: the worker thread leaves the connection alone."""
        return not self._busy

    async def submit(self, op: Op) -> Any:
        inline = self._inline
        if inline is not None and not self._busy:
            await anyio.lowlevel.checkpoint_if_cancelled()
            # no await between this check and the hook: nothing can start a batch
            if not self._busy and inline(op):
                op.phase = _Phase.DONE
                if op.error is not None:
                    raise op.error
                return op.result
        self._queue.append(op)
        if not self._busy:
            self._busy = True
            op.lead = True
        elif self._vacant:
            self._vacant = False
            op.watch = True
        while op.phase is not _Phase.DONE:
            if op.watch:
                op.watch = False
                await self._watch(op)
            elif op.lead:
                op.lead = False
                await self._lead(op)
            else:
                await self._wait(op)
        if op.error is not None:
            raise op.error
        return op.result

    async def _lead(self, op: Op) -> None:
        ops = list(self._queue)
        self._queue.clear()
        for o in ops:
            o.phase = _Phase.RUNNING
        batch = self._batch = _Batch(ops)
        try:
            await anyio.to_thread.run_sync(self._work, batch, abandon_on_cancel=True)
        except BaseException:
            self._leave(op, batch)
            raise
        self._finish(batch)

    async def _watch(self, op: Op) -> None:
        batch = self._batch
        assert batch is not None
        try:
            if not batch.done.is_set():
                await anyio.to_thread.run_sync(batch.done.wait, abandon_on_cancel=True)
        except BaseException:
            self._leave(op, batch)
            raise
        self._finish(batch)

    async def _wait(self, op: Op) -> None:
        event = op.event = anyio.Event()
        try:
            await event.wait()
        except BaseException:
            op.event = None
            if op.phase is _Phase.QUEUED:  # withdraw: it never ran
                self._queue.remove(op)
                if op.lead:  # leadership had just been handed to it: pass it on
                    op.lead = False
                    self._hand_over()
                elif op.watch:
                    op.watch = False
                    self._pass_watch()
            elif op.phase is _Phase.RUNNING:
                op.abandoned = True
                if op.watch:
                    op.watch = False
                    self._pass_watch()
                else:
                    self._check_abandoned()
            raise
        op.event = None

    def _work(self, batch: _Batch) -> None:
        """Worker thread: run ``batch`` unless the loop gave it up first."""
        with batch.lock:
            if batch.state is _State.DROPPED:
                return
            batch.state = _State.STARTED
        try:
            live = skip_abandoned(batch.ops)
            if live:
                self._run_batch(live)
        finally:
            with batch.lock:
                batch.state = _State.FINISHED
            batch.done.set()

    def _run_batch(self, batch: Sequence[Op]) -> None:
        try:
            self._execute(batch)
        except Exception as exc:
            for op in batch:
                if not op.resolved:
                    op.fail(exc)
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit, ...: every op still gets an outcome (so no
            # caller waits for one that never comes), then it propagates to the leader.
            err = CheckpointStoreError(f"store batch interrupted by {type(exc).__name__}")
            err.__cause__ = exc
            for op in batch:
                if not op.resolved:
                    op.fail(err)
            raise

    def _leave(self, op: Op, batch: _Batch) -> None:
        """The watcher ``op`` stops waiting for ``batch`` (its caller was cancelled)."""
        with batch.lock:
            if batch.state is _State.PENDING:
                batch.state = _State.DROPPED
            state = batch.state
        if op.phase is _Phase.QUEUED:  # a queued op watching for a vacancy: withdraw it
            self._queue.remove(op)
        if state is _State.FINISHED:
            self._finish(batch)
        elif state is _State.DROPPED:
            # Never ran: its other callers go back to the front of the queue, in order.
            self._batch = None
            again = [o for o in batch.ops if o is not op and not o.abandoned]
            for o in again:
                o.phase = _Phase.QUEUED
            self._queue.extendleft(reversed(again))
            self._hand_over()
        else:
            op.abandoned = True
            self._pass_watch()

    def _pass_watch(self) -> None:
        """Give the batch in flight a new watcher: a caller still waiting on it, else
        the oldest queued op, else whoever arrives next."""
        batch = self._batch
        assert batch is not None
        for o in (*batch.ops, *self._queue):
            if o.event is not None and not o.abandoned:
                o.watch = True
                o.event.set()
                break
        else:
            self._vacant = True
        self._check_abandoned()

    def _check_abandoned(self) -> None:
        batch = self._batch
        if (
            batch is not None
            and not batch.abandon_called
            and self._abandon is not None
            and all_abandoned(batch.ops)
        ):
            batch.abandon_called = True
            self._abandon(batch.ops)

    def _finish(self, batch: _Batch) -> None:
        """On the loop, once the thread is done: wake the batch's callers, hand over."""
        self._batch = None
        self._vacant = False
        for op in batch.ops:
            op.phase = _Phase.DONE
            if op.event is not None:
                op.event.set()
        self._hand_over()

    def _hand_over(self) -> None:
        if self._queue:
            nxt = self._queue[0]
            nxt.lead = True
            if nxt.event is not None:
                nxt.event.set()
        else:
            self._busy = False


class BatchedStore:
    """The `CheckpointStore` protocol and the store lifecycle over a `BatchRunner`:
    subclasses own one blocking connection and implement ``_execute(batch)`` (run in a
    worker thread, one batch at a time)."""

    #: whether the store offers ops to `_inline` (set by the subclass before
    #: ``BatchedStore.__init__``)
    _inlines = False

    def __init__(self) -> None:
        self._closed = False
        self._runner = BatchRunner(
            self._execute, self._abandon, self._inline if self._inlines else None
        )

    def _execute(self, batch: Sequence[Op]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _inline(self, op: Op) -> bool:
        """On the loop, the runner idle: resolve ``op`` here without waiting for
        anything and return ``True``, or change nothing and return ``False`` (it then
        goes to the worker thread). Called only when ``_inlines`` is true."""
        return False

    def _abandon(self, batch: Sequence[Op]) -> None:
        """On the loop: every caller of the running ``batch`` stopped waiting; cut the
        stuck work short if the store can (default: nothing, the thread notices)."""

    # -- the CheckpointStore protocol -------------------------------------------------

    # A bad workflow id is a ConfigurationError here, before its op can join a batch.

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        """Add ``row`` to ``workflow_id``'s log; a taken sequence raises the conflict error."""
        wid = check_workflow_id(workflow_id, f"{type(self).__name__}.append")
        await self._submit(Op(OpKind.APPEND, wid, row))

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        """Every row of ``workflow_id``, ascending by sequence (``[]`` if none)."""
        wid = check_workflow_id(workflow_id, f"{type(self).__name__}.load_run")
        rows: list[CheckpointRow] = await self._submit(Op(OpKind.LOAD, wid))
        return rows

    async def clear(self, workflow_id: str) -> None:
        """Delete ``workflow_id``'s rows (and nothing else); an unknown id is fine."""
        wid = check_workflow_id(workflow_id, f"{type(self).__name__}.clear")
        await self._submit(Op(OpKind.CLEAR, wid))

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (and check or create the schema) now instead of on first use."""
        await self._submit(Op(OpKind.OPEN))

    async def aclose(self) -> None:
        """Close the connection once the calls already queued are done. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._runner.submit(Op(OpKind.CLOSE))

    async def __aenter__(self: _S) -> _S:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _submit(self, op: Op) -> Any:
        if self._closed:
            raise CheckpointStoreError(f"{self!r} is closed")
        return await self._runner.submit(op)
