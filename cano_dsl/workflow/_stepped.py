"""The engine's step loop for `Workflow.register_stepped` states (REFERENCE §3.5).

Each ``step`` call runs through the retry loop on its own, on the same cursor (a
transient error never restarts the iteration). After every `StepOutcome.more`, when
the workflow has a checkpoint store and a workflow id, the JSON cursor is appended as
a ``STEP_CURSOR`` row (label = state name, task id = task name) before the next step,
so a crash resumes from the last committed cursor. A resumed run hands that cursor to
the first step and consumes it: a later visit of the same state starts from ``None``.

Observers see one ``on_task_start`` and one ``on_task_success`` / ``on_task_failure``
for the whole stepped run, and ``on_retry`` for each retried step. The engine races
this dispatch against the cancellation token and the total timeout like a single task.

Imported for its side effect: it registers `dispatch_stepped` in
``_engine.DISPATCHERS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _metrics
from .._errors import WorkflowError
from .._observer import notify
from .._retry import run_with_retries
from .._state import TaskResult
from ..stores._row import CheckpointRow
from ..tasks.stepped import (
    STEP_DONE,
    STEP_MORE,
    check_step_outcome,
    decode_cursor,
    encode_cursor,
)
from ._engine import DISPATCHERS, append_row, data_patch, settle
from ._entry import STEPPED, Entry, Run

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["dispatch_stepped"]

_SPLIT_MESSAGE = "Stepped task returned a split result; split is not supported for Stepped states"


async def _step_loop(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    task = entry.task
    name = entry.task_id
    label = state.name
    res = wf._resources
    config = entry.config
    observers = wf._observers
    persist = wf._store is not None and run.workflow_id is not None
    what = f"cursor for `{name}`"
    step = task.step
    cursor: bytes | None = run.cursors.pop(label, None)
    sink = _metrics.SINK
    # run data: each step gets it; a retried step starts from the data as of the last
    # committed cursor (or the state's entry); each cursor row carries its changes
    takes = "step" in entry.data_hooks
    with_data = run.codec is not None

    while True:
        blob = cursor
        calls = 0

        async def attempt(blob: bytes | None = blob) -> Any:
            nonlocal calls
            value = None if blob is None else decode_cursor(blob, what)
            if takes:
                if calls:
                    run.data = run.codec.from_tree(run.tree)
                calls += 1
                got = await step(res, value, run.data)
            else:
                got = await step(res, value)
            outcome = check_step_outcome(task, got)
            if outcome.kind == "more":
                return encode_cursor(outcome.cursor, what)
            return outcome

        result = await run_with_retries(config, attempt, task_id=name, observers=observers)
        if sink is not None:
            more = type(result) is bytes
            sink.counter(_metrics.STEP_ITERATIONS_TOTAL, 1, STEP_MORE if more else STEP_DONE)
        if takes:
            settle(run, state)
        if type(result) is bytes:
            if persist:
                row = CheckpointRow(
                    run.sequence,
                    label,
                    name,
                    workflow_version=wf._version,
                    data_patch=data_patch(run) if with_data else None,
                ).with_cursor(result)
                await append_row(wf, run, row, "append step cursor checkpoint")
            cursor = result
            continue
        nxt = result.result
        if isinstance(nxt, TaskResult):
            if nxt.is_split:
                raise WorkflowError(_SPLIT_MESSAGE)
            nxt = nxt.states[0]
        return nxt


async def dispatch_stepped(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """Run a `register_stepped` state; return its next state."""
    observers = wf._observers
    task_id = entry.task_id
    if observers:
        notify(observers, "on_task_start", task_id)
    try:
        nxt = await _step_loop(wf, run, state, entry)
    except Exception as exc:
        if observers:
            notify(observers, "on_task_failure", task_id, exc)
        raise
    if observers:
        notify(observers, "on_task_success", task_id)
    return nxt


DISPATCHERS[STEPPED] = dispatch_stepped
