"""Group commit for stores that talk to a blocking database connection.

A store owns one blocking connection (sqlite3, psycopg) that must be used by one thread
at a time and never from the event loop. Every operation becomes an `Op` in a queue. The
first caller to find the queue idle becomes the *leader*: it takes every queued op and
runs them as one batch in a worker thread (``anyio.to_thread.run_sync``), so appends
that arrive while a batch is in flight share the next transaction instead of paying for
one commit each. When its batch is done the leader wakes the callers it served and hands
leadership to the oldest op still queued, then returns; nobody waits on somebody else's
backlog longer than one batch.

Cancellation: an op still queued when its caller is cancelled is withdrawn and never
runs. Once an op's batch is in the worker thread, cancellation of its caller is held
back until the batch is done (as with ``to_thread.run_sync``), so a cancelled append
has either fully happened or not happened at all.

Everything here runs on one event loop at a time; no thread touches the queue.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio

from .._errors import CheckpointStoreError
from .._ids import check_workflow_id
from ._row import CheckpointRow

__all__ = ["BatchRunner", "BatchedStore", "Op", "OpKind"]

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
    """One store operation and, once its batch has run, its result or error."""

    __slots__ = ("args", "error", "event", "kind", "lead", "phase", "resolved", "result")

    def __init__(self, kind: OpKind, *args: Any) -> None:
        self.kind = kind
        self.args = args
        self.result: Any = None
        self.error: BaseException | None = None
        self.event: anyio.Event | None = None
        self.lead = False
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


class BatchRunner:
    """Runs `Op`s through ``execute(batch)`` in worker threads, one batch at a time.

    ``execute`` runs in a worker thread and must call ``op.succeed(...)`` or
    ``op.fail(...)`` on every op of the batch; if it raises instead, the exception is
    given to every op it left unresolved. A `BaseException` that is not an `Exception`
    (``KeyboardInterrupt``, ``SystemExit``) fails every unresolved op with
    `CheckpointStoreError` and then propagates to the batch's leader. (Rolling back what
    the batch did is ``execute``'s job: the stores do it before they let anything out.)
    """

    def __init__(self, execute: Callable[[Sequence[Op]], None]) -> None:
        self._execute = execute
        self._queue: deque[Op] = deque()
        self._busy = False  # a leader owns the queue (running a batch or about to)

    async def submit(self, op: Op) -> Any:
        self._queue.append(op)
        if self._busy:
            await self._follow(op)
        else:
            self._busy = True
            await self._lead()
        if op.error is not None:
            raise op.error
        return op.result

    async def _lead(self) -> None:
        batch = list(self._queue)
        self._queue.clear()
        for op in batch:
            op.phase = _Phase.RUNNING
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._run_batch, batch)
        finally:
            for op in batch:
                op.phase = _Phase.DONE
                if op.event is not None:
                    op.event.set()
            self._hand_over()

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

    def _hand_over(self) -> None:
        if self._queue:
            nxt = self._queue[0]
            nxt.lead = True
            if nxt.event is not None:
                nxt.event.set()
        else:
            self._busy = False

    async def _follow(self, op: Op) -> None:
        op.event = anyio.Event()
        try:
            await op.event.wait()
        except BaseException:
            if op.phase is _Phase.QUEUED:
                # Withdraw: it never ran. If leadership had just been handed to it,
                # pass it on.
                self._queue.remove(op)
                if op.lead:
                    self._hand_over()
            elif op.phase is _Phase.RUNNING:
                with anyio.CancelScope(shield=True):
                    await op.event.wait()
            raise
        if op.phase is _Phase.QUEUED:  # woken to lead
            await self._lead()


class BatchedStore:
    """The `CheckpointStore` protocol and the store lifecycle over a `BatchRunner`:
    subclasses own one blocking connection and implement ``_execute(batch)`` (run in a
    worker thread, one batch at a time)."""

    def __init__(self) -> None:
        self._closed = False
        self._runner = BatchRunner(self._execute)

    def _execute(self, batch: Sequence[Op]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

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
