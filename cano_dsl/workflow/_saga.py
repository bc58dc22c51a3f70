"""The dispatcher of compensatable (saga) states (REFERENCE §3.7, §10).

The forward run goes through the retry loop with ``attempt_timeout`` taken off the
loop's config and re-applied around the forward ``run`` call only, so an inline
``compensate`` (after a split result or an output that does not encode to JSON) is
never cut short. On success the output is JSON-encoded, pushed on the run's
compensation stack and, with a checkpoint store, recorded in a completion row. The
engine never races this dispatch against the cancellation token or the total
timeout: a committed side effect always reaches the stack.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .. import _metrics
from .._errors import (
    CompensationFailed,
    TaskExecutionError,
    TaskTimeout,
    WorkflowError,
)
from .._observer import notify
from .._retry import mark_final, run_with_retries
from .._state import TaskResult
from ..stores._row import CheckpointRow
from . import _engine
from ._entry import COMPENSATABLE, Entry, Run

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["dispatch_compensatable", "encode_output"]

_NONE: Any = object()


def _data_of(run: Run | None) -> Any:
    return _NONE if run is None else run.data


def _takes_data(task: Any) -> bool:
    from ._entry import data_hooks_of

    return "compensate" in data_hooks_of(task)


def encode_output(output: Any) -> bytes:
    """``output`` as the UTF-8 JSON blob a completion row carries (strict JSON: no NaN)."""
    return json.dumps(output, allow_nan=False, separators=(",", ":")).encode("utf-8")


async def _inline_compensate(
    task: Any, res: Any, output: Any, original: Exception, data: Any = _NONE
) -> Exception:
    """Undo a forward run the engine rejected; the error the attempt ends with, flagged
    final so that the retry loop does not run the step (and its side effect) again."""
    try:
        if data is _NONE or not _takes_data(task):
            await task.compensate(res, output)
        else:
            await task.compensate(res, output, data)
    except Exception as exc:
        return mark_final(CompensationFailed([original, exc]))
    return mark_final(original)


def _next_state(wf: Workflow[Any], value: Any) -> Any:
    """The state a forward run chose, or ``None`` when ``value`` names none."""
    state_type = wf._state_type
    if state_type is not None and type(value) is state_type:
        return value
    if isinstance(value, TaskResult) and not value.is_split:
        inner = value.states[0]
        if state_type is None or type(inner) is state_type:
            return inner
    return None


async def _forward(
    wf: Workflow[Any],
    task: Any,
    name: str,
    timeout: float | None,
    run: Run | None = None,
    state: Any = None,
    first: bool = True,
    takes: bool = False,
) -> Any:
    """One attempt: the forward run (bounded by ``timeout``) and its post-processing.
    With ``run`` (the task's ``run`` takes the run data), every attempt but the
    ``first`` starts from the data as of the state's entry."""
    res = wf._resources
    args: tuple[Any, ...] = (res,)
    if run is not None and takes:
        if not first:
            run.data = run.codec.from_tree(run.tree)
        args = (res, run.data)
    if timeout is None:
        result = await task.run(*args)
    else:
        with anyio.move_on_after(timeout) as scope:
            result = await task.run(*args)
        if scope.cancelled_caught:
            raise TaskTimeout(
                f"compensatable task `{name}` forward run exceeded attempt_timeout {timeout}"
            )
    if not isinstance(result, tuple) or len(result) != 2:
        raise WorkflowError(
            f"compensatable task `{name}` returned {result!r}; run must return (next_state, output)"
        )
    value, output = result
    blob: bytes | None = None
    encode_error: Exception | None = None
    try:
        blob = encode_output(output)
        # compensate always sees the JSON round trip, whether or not a crash intervenes
        decoded = json.loads(blob)
    except Exception as exc:  # any encoder failure: RecursionError, OverflowError, ...
        blob, encode_error = None, exc
    else:
        output = decoded
    if isinstance(value, TaskResult) and value.is_split:
        raise await _inline_compensate(
            task,
            res,
            output,
            WorkflowError(
                f"Compensatable task `{name}` returned a split result — split states cannot "
                "be compensatable"
            ),
            _data_of(run),
        )
    nxt = _next_state(wf, value)
    if nxt is None:
        expected = wf._state_type.__name__ if wf._state_type is not None else "state"
        raise await _inline_compensate(
            task,
            res,
            output,
            WorkflowError(
                f"compensatable task `{name}` returned {value!r} as its next state; expected "
                f"a {expected} member or a TaskResult"
            ),
            _data_of(run),
        )
    if encode_error is not None:
        raise await _inline_compensate(
            task,
            res,
            output,
            TaskExecutionError(
                f"serialize compensation output for `{name}`: "
                f"{type(encode_error).__name__}: {encode_error}"
            ),
            _data_of(run),
        )
    assert blob is not None
    if run is not None and takes:
        try:
            tree = run.codec.update(run.tree, run.data, state.name)
        except Exception as exc:
            raise await _inline_compensate(task, res, output, exc, run.data) from None
        return nxt, blob, tree
    return nxt, blob, None


async def dispatch_compensatable(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """Run a compensatable state to completion; push its output; return the next state."""
    observers = wf._observers
    task = entry.task
    name = entry.task_id
    config = entry.config
    timeout = config.attempt_timeout
    loop_config = attrs.evolve(config, attempt_timeout=None) if timeout is not None else config
    if observers:
        notify(observers, "on_task_start", name)
    started = time.perf_counter() if _metrics.SINK is not None else None
    data_run = run if run.codec is not None else None
    takes = "run" in entry.data_hooks
    calls = 0

    def attempt() -> Any:
        nonlocal calls
        calls += 1
        return _forward(wf, task, name, timeout, data_run, state, calls == 1, takes)

    try:
        nxt, blob, tree = await run_with_retries(
            loop_config, attempt, task_id=name, observers=observers
        )
    except Exception as exc:
        if started is not None:
            _engine.task_duration(state, COMPENSATABLE, started)
        if observers:
            notify(observers, "on_task_failure", name, exc)
        raise
    if started is not None:
        _engine.task_duration(state, COMPENSATABLE, started)
    if observers:
        notify(observers, "on_task_success", name)
    # pushed before the row is written: if the append fails (or the run is cancelled
    # from outside while it is in flight) the committed work is still rolled back
    if run.codec is None:
        run.stack.append((name, blob))
    else:
        if tree is not None:
            run.tree = tree
        # compensate sees the run data as of this state's completion
        run.stack.append((name, blob, run.tree))
    if wf._store is not None:
        row = CheckpointRow(
            run.sequence,
            state.name,
            name,
            workflow_version=wf._version,
            data_patch=_engine.data_patch(run) if run.codec is not None else None,
        ).with_output(blob)
        await _engine.append_row(wf, run, row, "append compensation checkpoint")
    return nxt


_engine.DISPATCHERS[COMPENSATABLE] = dispatch_compensatable
