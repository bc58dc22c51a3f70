"""The engine's driver for `Workflow.register_stream` states (REFERENCE §3.6).

A stream state is not raced by the engine: dropping it mid-window would orphan the
partial window. Instead the run's token and total-timeout deadline are handed to the
stream, which watches them cooperatively while it waits for the next item (and while
a coroutine ``open`` is pending), then drains: it flushes the partial window, calls
``on_close(CANCELLED)`` and commits the cursor. The driver then tells the two causes
apart by the caller's token: cancelled → `WorkflowCancelled` and ``on_cancelled``;
otherwise the deadline fired → `WorkflowTimeout` and ``on_workflow_timeout``. Either
way ``on_task_failure`` fires first, as for every other state kind.

Each committed window cursor is appended as a ``STEP_CURSOR`` row (label = state name,
task id = task name) when the workflow has a store and an id; a resumed run opens the
source at the last committed cursor (consumed on first use). Only
``config().attempt_timeout`` is used, per ``process_item``; the retry mode never
re-opens the stream.

Imported for its side effect: it registers `dispatch_stream` in
``_engine.DISPATCHERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .. import _metrics
from .._errors import CanoError, WorkflowCancelled, WorkflowError, WorkflowTimeout
from .._observer import notify
from .._state import TaskResult
from ..stores._row import CheckpointRow
from ..tasks._stream_driver import Interrupt, run_stream_session
from ..tasks.stepped import decode_cursor, encode_cursor
from ._engine import DISPATCHERS, append_row
from ._entry import STREAM, Entry, Run

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["dispatch_stream"]

_SPLIT_MESSAGE = "Stream task returned a split result; split is not supported for Stream states"


async def dispatch_stream(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """Run a `register_stream` state; return its next state or raise the run's error
    (`WorkflowCancelled` / `WorkflowTimeout` after a cooperative drain)."""
    task = entry.task
    name = entry.task_id
    label = state.name
    observers = wf._observers
    what = f"stream cursor for `{name}`"
    blob = run.cursors.pop(label, None)
    token = run.token
    interrupt = (
        Interrupt(token, run.deadline) if token is not None or run.deadline is not None else None
    )
    persist = wf._store is not None and run.workflow_id is not None
    version = wf._version

    async def commit(cursor: Any) -> None:
        data = encode_cursor(cursor, what)
        if persist:
            row = CheckpointRow(run.sequence, label, name, workflow_version=version)
            await append_row(wf, run, row.with_cursor(data), "append stream cursor checkpoint")

    if observers:
        notify(observers, "on_task_start", name)
    sink = _metrics.SINK
    interrupted: CanoError | None = None
    try:
        cursor = None if blob is None else decode_cursor(blob, what)
        drained, result = await run_stream_session(
            task, wf._resources, cursor, entry.config.attempt_timeout, interrupt, commit
        )
        if drained:
            if token is not None and token.is_cancelled:
                interrupted = WorkflowCancelled()
            else:
                limit = run.limit if run.limit is not None else 0.0
                interrupted = WorkflowTimeout(anyio.current_time() - run.started, limit)
            raise interrupted
        if isinstance(result, TaskResult):
            if result.is_split:
                raise WorkflowError(_SPLIT_MESSAGE)
            result = result.states[0]
    except Exception as exc:
        if sink is not None:
            cancelled = exc is interrupted and isinstance(exc, WorkflowCancelled)
            labels = _metrics.OUTCOME_CANCELLED if cancelled else _metrics.OUTCOME_FAILED
            sink.counter(_metrics.STREAM_RUNS_TOTAL, 1, labels)
        if observers:
            notify(observers, "on_task_failure", name, exc)
        if exc is interrupted:
            if isinstance(exc, WorkflowTimeout):
                notify(observers, "on_workflow_timeout", exc.elapsed, exc.limit)
            elif not run.cancel_reported:
                run.cancel_reported = True
                notify(observers, "on_cancelled", label)
        raise
    if sink is not None:
        sink.counter(_metrics.STREAM_RUNS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)
    if observers:
        notify(observers, "on_task_success", name)
    return result


DISPATCHERS[STREAM] = dispatch_stream
