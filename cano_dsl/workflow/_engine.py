"""The engine loop shared by `Workflow.orchestrate` and `Workflow.resume_from`
(REFERENCE §1.4-1.6).

One iteration: cancel check → path + ``on_state_enter`` → checkpoint row (not for
routers) → exit check → dispatch by kind. Single and router tasks with a plain config
and no observers, token or deadline run inline (the fast path); everything else goes
through `dispatch`, which races the cancellation token and the total-timeout
deadline with one cancel scope. Every failure is wrapped in `StateFailure` and goes
through the compensation drain (`fail`), except a `CheckpointConflict`: another writer
is extending the log, so the run stops without compensating or clearing.

The store calls around a state are raced the same way: the entry row's append and the
clear at the exit state (`bounded_store_call`), so a stuck store (a locked SQLite file,
a frozen PostgreSQL server) ends the run with `WorkflowTimeout` / `WorkflowCancelled`
at its deadline instead of outliving it; the clear after a compensation drain has its
own bound (`clear_after_drain`). A run with neither a token nor a deadline adds no
cancel scope.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .. import _metrics, _spans
from .._errors import (
    CanoError,
    CheckpointConflict,
    CheckpointStoreError,
    CompensationFailed,
    WorkflowCancelled,
    WorkflowError,
    WorkflowTimeout,
    wrap_with_state,
)
from .._observer import notify
from .._retry import run_attempts, run_with_retries
from .._state import TaskResult
from ..stores._row import CheckpointRow
from ._compensation import drain_stack
from ._data import RunDataError, diff, encode_patch, format_path, overlapping, unseen_changes
from ._entry import COMPENSATABLE, ROUTER, SINGLE, SPLIT, Entry, Run
from ._split import SplitData, run_split

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = [
    "DISPATCHERS",
    "Dispatcher",
    "bounded_store_call",
    "clear_after_drain",
    "drain",
    "fail",
    "fsm",
    "interrupted_error",
    "is_conflict",
    "message_of",
]

Dispatcher = Callable[["Workflow[Any]", Run, Any, Entry], Awaitable[Any]]

_UNSET: Any = object()

# states run between two forced yields to the event loop (see `fsm`): about a
# millisecond of a machine whose tasks never await; one decrement per state otherwise
_YIELD_EVERY = 1024

# seconds: the clear after a compensation drain may take at least this long even when
# the drain used up the compensation budget, and this long when there is no budget
_CLEAR_AFTER_DRAIN_MIN = 1.0
_CLEAR_AFTER_DRAIN_UNBOUNDED = 10.0
# seconds a saga step's completion row may still take when the step finished after
# its run was cancelled or out of time (see `_RaceScope`)
_COMPLETION_ROW_GRACE = 1.0


def message_of(exc: BaseException) -> str:
    return exc.message if isinstance(exc, CanoError) else str(exc)


def data_attempt(
    run: Run, invoke: Callable[..., Awaitable[Any]], res: Any, failed: int = 0
) -> Callable[[], Awaitable[Any]]:
    """A thunk calling ``invoke(res, data)`` with the run data; every attempt after the
    first starts from a fresh copy of the data as of the state's entry (a failed
    attempt's changes are discarded). ``failed``: attempts that already ran (the
    engine's inline path runs the first one itself)."""
    calls = failed

    async def attempt() -> Any:
        nonlocal calls
        if calls:
            run.data = run.codec.from_tree(run.tree)
        calls += 1
        return await invoke(res, run.data)

    return attempt


def settle(run: Run, state: Any) -> None:
    """The task may have changed the run data: bring the tree up to date (`RunDataError`
    naming the state and the field when it does not encode). Only what changed is
    walked and encoded; the new tree shares the unchanged parts of the old one."""
    run.tree = run.codec.update(run.tree, run.data, state.name)


def untracked_change(run: Run, state: Any) -> RunDataError | None:
    """At the exit: the run data must be what the engine last saw; a change made outside
    a task that takes the data (through a kept reference) is reported, not lost. Once
    per run, so this is the full check: the whole value is encoded (a value that does
    not encode is reported even where it compares equal to what it replaced, such as
    ``Decimal(1)`` for ``1``) and compared strictly (``True`` for ``1`` is reported:
    the per-state walk compares with ``==``, which cannot see it)."""
    try:
        tree = run.codec.to_tree(run.data, state.name)
    except RunDataError as exc:
        return exc
    old = run.tree
    if tree == old:
        unseen = unseen_changes(tree, old, [], [])
        if not unseen:
            return None
        fields = ", ".join(f"`{format_path(p)}`" for p in unseen[:3])
        return RunDataError(
            f"run data field(s) {fields} changed between a bool and a number of equal "
            f"value (such as 1 to True) before exit state {state.name}: such a change "
            "compares equal, so it is not tracked; assign a value that differs"
        )
    ops = diff(old, tree)
    fields = ", ".join(f"`{format_path(op[1])}`" for op in ops[:3])
    return RunDataError(
        f"run data changed outside a task that takes it (field(s) {fields}) before exit "
        f"state {state.name}: change the data only through the task's data parameter, "
        "during the task's call; such a change is not checkpointed"
    )


def data_patch(run: Run) -> bytes | None:
    """The ``data_patch`` of the next row: what changed since the last row that had
    one; the whole value in the first row."""
    tree = run.tree
    logged = run.logged
    if tree is logged:
        return None
    run.logged = tree
    ops = diff(logged, tree)
    return encode_patch(run.codec.fingerprint, ops) if ops else None


async def dispatch_single(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """Single and router tasks: the retry loop with observer hooks around it."""
    observers = wf._observers
    task_id = entry.task_id
    if observers:
        notify(observers, "on_task_start", task_id)
    invoke_data = entry.invoke_data
    try:
        if invoke_data is None:
            value = await run_with_retries(
                entry.config, entry.call(wf._resources), task_id=task_id, observers=observers
            )
        else:
            value = await run_with_retries(
                entry.config,
                data_attempt(run, invoke_data, wf._resources),
                task_id=task_id,
                observers=observers,
            )
            settle(run, state)
    except Exception as exc:
        if observers:
            notify(observers, "on_task_failure", task_id, exc)
        raise
    if observers:
        notify(observers, "on_task_success", task_id)
    return value


async def dispatch_split(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    if run.codec is None or not entry.wants_data:
        return await run_split(entry, wf._resources, wf._observers, state)
    data = SplitData(run.codec, run.tree, entry.data_invokers)
    nxt = await run_split(entry, wf._resources, wf._observers, state, data)
    merge_branches(run, state, entry, data)
    return nxt


def merge_branches(run: Run, state: Any, entry: Entry, data: SplitData) -> None:
    """Merge the run data changes of the split's successful branches, in branch order;
    two branches changing the same field is a `RunDataError` naming both."""
    codec = run.codec
    base = run.tree
    names = entry.branch_names()
    changes: list[tuple[int, list[Any]]] = []
    for i in sorted(data.ok):
        value = data.values[i]
        if value is None:
            continue
        tree = codec.update(base, value, f"{state.name} (branch {i}: {names[i]})")
        ops = diff(base, tree)
        for j, other in changes:
            for op in ops:
                for prev in other:
                    if overlapping(op[1], prev[1]):
                        field = op[1] if len(op[1]) <= len(prev[1]) else prev[1]
                        raise RunDataError(
                            f"split state {state.name}: branches {j} ({names[j]}) and {i} "
                            f"({names[i]}) both changed run data field `{format_path(field)}`"
                        )
        if ops:
            changes.append((i, ops))
    if not changes:
        return
    from ._data import _copy_tree, apply_ops

    merged = _copy_tree(base)
    for _, ops in changes:
        merged = apply_ops(merged, ops)
    run.tree = merged
    run.data = codec.from_tree(merged)


# kinds whose plain data-taking tasks `fsm` runs inline (see `dispatch_single`)
_DATA_INLINE_KINDS = frozenset({SINGLE, ROUTER})

DISPATCHERS: dict[str, Dispatcher] = {
    SINGLE: dispatch_single,
    ROUTER: dispatch_single,
    SPLIT: dispatch_split,
}


async def clear_log(wf: Workflow[Any], run: Run) -> None:
    """Best-effort clear of the run's checkpoint log."""
    store = wf._store
    if store is None or run.workflow_id is None:
        return
    sink = _metrics.SINK
    try:
        await store.clear(run.workflow_id)
    except Exception as exc:
        _clear_failed(wf, run, exc)
        return
    if sink is not None:
        sink.counter(_metrics.CHECKPOINT_CLEARS_TOTAL, 1, _metrics.RESULT_OK)


def _clear_failed(wf: Workflow[Any], run: Run, exc: BaseException) -> None:
    sink = _metrics.SINK
    if sink is not None:
        sink.counter(_metrics.CHECKPOINT_CLEARS_TOTAL, 1, _metrics.RESULT_ERR)
    notify(wf._observers, "on_checkpoint_clear_failed", run.workflow_id, exc)


async def clear_after_drain(wf: Workflow[Any], run: Run, drain_started: float) -> None:
    """`clear_log` after a clean compensation drain (called shielded): bounded by what
    is left of the compensation budget (at least `_CLEAR_AFTER_DRAIN_MIN` s), or by
    `_CLEAR_AFTER_DRAIN_UNBOUNDED` s without one. A clear that does not finish in time
    fires ``on_checkpoint_clear_failed`` like a failed one (the log stays)."""
    if wf._store is None or run.workflow_id is None:
        return
    if run.comp_budget is None:
        bound = _CLEAR_AFTER_DRAIN_UNBOUNDED
    else:
        left = drain_started + run.comp_budget - anyio.current_time()
        bound = max(left, _CLEAR_AFTER_DRAIN_MIN)
    with anyio.move_on_after(bound) as scope:
        await clear_log(wf, run)
    if scope.cancelled_caught:
        _clear_failed(
            wf,
            run,
            CheckpointStoreError(
                f"clear checkpoint log of {run.workflow_id} after compensation: the store "
                f"did not answer within {bound:.3g}s; the log is left as it was"
            ),
        )


def _racing(run: Run) -> bool:
    return run.token is not None or run.deadline is not None


class _RaceScope:
    """A cancel scope with the run's deadline, attached to its token while entered.

    With ``grace``, a token already fired or a deadline already past does not cut the
    call at once: it gets ``grace`` seconds from now (a saga step that finished after
    the cancel still gets its completion row written by a store that answers)."""

    __slots__ = ("scope", "token")

    def __init__(self, run: Run, grace: float | None = None) -> None:
        deadline = run.deadline if run.deadline is not None else math.inf
        token = run.token
        if grace is not None:
            now = anyio.current_time()
            if token is not None and token.is_cancelled:
                token = None
                deadline = now + grace
            elif deadline <= now:
                deadline = now + grace
        self.token = token
        self.scope = anyio.CancelScope(deadline=deadline)

    def __enter__(self) -> anyio.CancelScope:
        token = self.token
        if token is not None:
            token._attach(self.scope)
        try:
            return self.scope.__enter__()
        except BaseException:
            if token is not None:
                token._detach(self.scope)
            raise

    def __exit__(self, *exc: Any) -> bool:
        try:
            return bool(self.scope.__exit__(*exc))
        finally:
            if self.token is not None:
                self.token._detach(self.scope)


async def bounded_store_call(
    wf: Workflow[Any], run: Run, state: Any, call: Callable[..., Awaitable[None]], *args: Any
) -> None:
    """Await ``call(*args)`` (a store call of the engine loop) raced against the run's
    token and total-timeout deadline like `dispatch`; when they cut it, raise the run's
    final error from `interrupted_error`. No cancel scope without a token or deadline."""
    token = run.token
    if token is None and run.deadline is None:
        await call(*args)
        return
    with _RaceScope(run) as scope:
        await call(*args)
    if scope.cancelled_caught:
        cancelled = token is not None and token.is_cancelled
        raise await interrupted_error(wf, run, state, None, cancelled=cancelled)


async def append_row(wf: Workflow[Any], run: Run, row: CheckpointRow, what: str) -> None:
    """Append ``row`` and fire ``on_checkpoint``; raise `CheckpointStoreError` on failure."""
    wid = run.workflow_id
    if wid is None:
        raise CheckpointStoreError("checkpointing requires a workflow id (call with_workflow_id)")
    sink = _metrics.SINK
    entry = run.in_flight
    scope: anyio.CancelScope | None = None
    try:
        if entry is not None and entry.kind == COMPENSATABLE and _racing(run):
            # a saga step's completion row: the engine does not race that dispatch (the
            # step's work must reach the stack), but the wait for the store is bounded
            with _RaceScope(run, _COMPLETION_ROW_GRACE) as scope:
                await wf._store.append(wid, row)
        else:
            await wf._store.append(wid, row)
    except Exception as exc:
        if sink is not None:
            sink.counter(_metrics.CHECKPOINT_APPENDS_TOTAL, 1, _metrics.RESULT_ERR)
        if is_conflict(exc):
            raise CheckpointConflict(wid, row.sequence, f"{what}: {message_of(exc)}") from exc
        raise CheckpointStoreError(f"{what}: {message_of(exc)}") from exc
    if scope is not None and scope.cancelled_caught:
        # the step is on the stack already: the dispatch's failure path compensates it
        token = run.token
        cancelled = token is not None and token.is_cancelled
        raise _interruption(wf, run, run.path[-1], None, cancelled=cancelled)
    if sink is not None:
        sink.counter(_metrics.CHECKPOINT_APPENDS_TOTAL, 1, _metrics.RESULT_OK)
    notify(wf._observers, "on_checkpoint", wid, row.sequence)
    run.sequence = row.sequence + 1


def is_conflict(exc: BaseException) -> bool:
    """A store's refusal of a taken ``(workflow_id, sequence)``: a `CheckpointConflict`,
    or the contract's ``CheckpointStoreError("checkpoint conflict: ...")`` of a store
    written before that class existed."""
    return isinstance(exc, CheckpointConflict) or (
        isinstance(exc, CheckpointStoreError) and exc.message.startswith("checkpoint conflict")
    )


def _conflict_in(err: BaseException | None) -> bool:
    for _ in range(8):  # the error or one of its causes
        if err is None:
            return False
        if isinstance(err, CheckpointConflict):
            return True
        err = err.__cause__
    return False


async def fail(wf: Workflow[Any], run: Run, state: Any, err: BaseException) -> BaseException:
    """Wrap ``err`` with the state context, then drain the compensation stack (LIFO,
    shielded). Returns the error the run ends with. A `CheckpointConflict` (another
    writer owns the log now) skips the drain: the stack and the log are left as they
    are, for the run's owner."""
    wrapped = wrap_with_state(state, run.path, err)
    if not run.stack or _conflict_in(err):
        return wrapped
    with anyio.CancelScope(shield=True):
        errors = await drain(wf, run)
    return CompensationFailed([wrapped, *errors]) if errors else wrapped


async def drain(wf: Workflow[Any], run: Run) -> list[BaseException]:
    """Drain the run's compensation stack (LIFO) and, when it was clean, clear the log
    (bounded, `clear_after_drain`). Returns the compensation errors. The caller
    shields it."""
    stack = list(run.stack)
    run.stack.clear()
    drain_started = anyio.current_time()
    errors = await drain_stack(
        stack,
        wf._compensators,
        wf._resources,
        run.comp_budget,
        (run.codec, wf._comp_data) if run.codec is not None else None,
    )
    if not errors:
        await clear_after_drain(wf, run, drain_started)
    return errors


async def interrupted_error(
    wf: Workflow[Any], run: Run, state: Any, entry: Entry | None, *, cancelled: bool
) -> BaseException:
    """The run was cut by its token (``cancelled``) or its total timeout: report the
    in-flight task(s) as failed, fire the run-level hook, drain."""
    return await fail(wf, run, state, _interruption(wf, run, state, entry, cancelled=cancelled))


def _interruption(
    wf: Workflow[Any], run: Run, state: Any, entry: Entry | None, *, cancelled: bool
) -> CanoError:
    """`interrupted_error` without the drain: the error, with its observer hooks fired."""
    observers = wf._observers
    err: CanoError
    if cancelled:
        err = WorkflowCancelled()
        if observers and entry is not None:
            for task_id in entry.in_flight_ids():
                notify(observers, "on_task_failure", task_id, err)
        if not run.cancel_reported:
            run.cancel_reported = True
            notify(observers, "on_cancelled", state.name)
    else:
        limit = run.limit if run.limit is not None else 0.0
        elapsed = anyio.current_time() - run.started
        err = WorkflowTimeout(elapsed, limit)
        if observers and entry is not None:
            for task_id in entry.in_flight_ids():
                notify(observers, "on_task_failure", task_id, err)
        notify(observers, "on_workflow_timeout", elapsed, limit)
    return err


def task_duration(state: Any, kind: str, started: float) -> None:
    """Record ``cano_task_duration_seconds{state, kind}`` since ``started``."""
    sink = _metrics.SINK
    if sink is not None:
        sink.histogram(
            _metrics.TASK_DURATION_SECONDS,
            time.perf_counter() - started,
            (("state", state.name), ("kind", kind)),
        )


async def dispatch(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """Dispatch ``entry``; race it against the token and the deadline when it is a raced
    kind. Returns the task's raw result or raises the run's final error."""
    handler = DISPATCHERS.get(entry.kind)
    if handler is None:  # pragma: no cover - every kind registers its dispatcher
        raise await fail(wf, run, state, WorkflowError(f"no dispatcher for {entry.kind}"))
    token = run.token
    error: BaseException | None = None
    value: Any = _UNSET
    # cano_task_duration_seconds; a compensatable state times itself (before its row)
    sink = _metrics.SINK
    started = time.perf_counter() if sink is not None and entry.kind != COMPENSATABLE else None
    run.in_flight = entry
    if entry.raced and (token is not None or run.deadline is not None):
        scope = anyio.CancelScope(deadline=run.deadline if run.deadline is not None else math.inf)
        if token is not None:
            token._attach(scope)
        try:
            with scope:
                value = await handler(wf, run, state, entry)
        except Exception as exc:
            error = exc
        finally:
            if token is not None:
                token._detach(scope)
        # left set when a foreign cancellation propagates, so the run can report it
        run.in_flight = None
        if started is not None:
            task_duration(state, entry.kind, started)
        if value is _UNSET and error is None:
            cancelled = token is not None and token.is_cancelled
            raise await interrupted_error(wf, run, state, entry, cancelled=cancelled)
    else:
        try:
            value = await handler(wf, run, state, entry)
        except Exception as exc:
            error = exc
        run.in_flight = None
        if started is not None:
            task_duration(state, entry.kind, started)
    if error is not None:
        raise await fail(wf, run, state, error)
    return value


async def dispatch_traced(wf: Workflow[Any], run: Run, state: Any, entry: Entry) -> Any:
    """`dispatch` in a traced run: a ``single_task_execution`` (or
    ``compensatable_task_execution``) span {state, kind} around it; a split state has
    no span of its own (each branch opens a ``split_task`` span)."""
    kind = entry.kind
    if kind == SPLIT:
        return await dispatch(wf, run, state, entry)
    with run.tracer.start_as_current_span(
        _spans.state_span_name(kind), attributes={"state": state.name, "kind": kind}
    ):
        return await dispatch(wf, run, state, entry)


def undeclared_error(entry: Entry, state: Any, nxt: Any) -> WorkflowError:
    """A task returned a state outside its declared targets."""
    allowed = ", ".join(sorted(s.name for s in entry.to or ()))
    who = entry.task_id or "<split>"
    return WorkflowError(
        f"task {who} in state {state.name} returned {nxt.name}, which it does not declare; "
        f"declared targets: {{{allowed}}} (add it to `to=` or the Literal return annotation)"
    )


def _coerce_error(wf: Workflow[Any], entry: Entry, value: Any) -> CanoError:
    if isinstance(value, TaskResult) and value.is_split:
        if entry.kind == "stepped":
            return WorkflowError(
                "Stepped task returned a split result; split is not supported for Stepped states"
            )
        if entry.kind == "stream":
            return WorkflowError(
                "Stream task returned a split result; split is not supported for Stream states"
            )
        return WorkflowError(
            "Single task returned split result - use register_split() for split tasks"
        )
    expected = wf._state_type.__name__ if wf._state_type is not None else "state"
    return WorkflowError(
        f"task {entry.task_id or '<split>'} returned {value!r}; expected a {expected} member "
        "or a TaskResult"
    )


async def fsm(wf: Workflow[Any], run: Run, current: Any) -> Any:
    """Run the machine from ``current`` until an exit state; return it."""
    entries = wf._entries
    exits = wf._exit_set
    res = wf._resources
    observers = wf._observers
    store = wf._store
    token = run.token
    path = run.path
    with_data = run.codec is not None
    state_type = wf._state_type
    # with a metrics sink every dispatch goes through `dispatch`, which times it; a
    # traced run (decided at its start) goes through `dispatch_traced`
    tracer = run.tracer
    inline = (
        not observers
        and token is None
        and run.deadline is None
        and _metrics.SINK is None
        and tracer is None
    )
    disp = dispatch if tracer is None else dispatch_traced
    deadline = run.deadline
    until_yield = _YIELD_EVERY
    while True:
        until_yield -= 1
        if not until_yield:
            # A machine whose tasks never await would otherwise hold the event loop for
            # ever: yield now and then so a token fired elsewhere, an enclosing cancel
            # scope and the total timeout can still stop it.
            until_yield = _YIELD_EVERY
            await anyio.lowlevel.checkpoint()
            if deadline is not None and anyio.current_time() >= deadline:
                raise await interrupted_error(wf, run, current, None, cancelled=False)
        if token is not None and token._cancelled:
            raise await interrupted_error(wf, run, current, None, cancelled=True)
        path.append(current)
        if observers:
            notify(observers, "on_state_enter", current.name)
        entry = entries.get(current)
        if store is not None and (entry is None or entry.kind != ROUTER):
            row = CheckpointRow(
                run.sequence,
                current.name,
                entry.task_id if entry is not None else "",
                workflow_version=wf._version,
                data_patch=data_patch(run) if with_data else None,
            )
            append_error: CheckpointStoreError | None = None
            try:
                await bounded_store_call(
                    wf, run, current, append_row, wf, run, row, "append checkpoint"
                )
            except CheckpointStoreError as exc:
                append_error = exc
            if append_error is not None:
                raise await fail(wf, run, current, append_error)
        if current in exits:
            if with_data:
                untracked = untracked_change(run, current)
                if untracked is not None:
                    raise await fail(wf, run, current, untracked)
            if store is not None:
                await bounded_store_call(wf, run, current, clear_log, wf, run)
            return current
        if entry is None:
            raise await fail(
                wf, run, current, WorkflowError(f"No task registered for state: {current.name}")
            )
        if inline and entry.fast:
            error: BaseException | None = None
            invoke = entry.invoke
            try:
                nxt = await (invoke(res) if entry.pass_res else invoke())  # type: ignore[misc]
            except Exception as exc:
                try:
                    nxt = await run_attempts(
                        entry.config, entry.call(res), 1, task_id=entry.task_id, first_error=exc
                    )
                except Exception as exc2:
                    error = exc2
            if error is not None:
                raise await fail(wf, run, current, error)
        elif (
            inline
            and with_data
            and entry.invoke_data is not None
            and entry.kind in _DATA_INLINE_KINDS
            and entry.config.is_plain
        ):
            # the fast path of a plain task that takes the run data: attempt 1 inline on
            # the live value; a failure hands over to the retry loop, whose attempts
            # restart from the entry tree; then the tree catches up with what changed
            error = None
            invoke_data = entry.invoke_data
            try:
                nxt = await invoke_data(res, run.data)
            except Exception as exc:
                try:
                    nxt = await run_attempts(
                        entry.config,
                        data_attempt(run, invoke_data, res, 1),
                        1,
                        task_id=entry.task_id,
                        first_error=exc,
                    )
                except Exception as exc2:
                    error = exc2
            if error is None:
                try:
                    settle(run, current)
                except RunDataError as exc:
                    error = exc
            if error is not None:
                raise await fail(wf, run, current, error)
        else:
            nxt = await disp(wf, run, current, entry)
        if type(nxt) is not state_type:
            if isinstance(nxt, TaskResult) and not nxt.is_split:
                nxt = nxt.states[0]
            if type(nxt) is not state_type:
                raise await fail(wf, run, current, _coerce_error(wf, entry, nxt))
        to = entry.to
        if to is not None and nxt not in to:
            raise await fail(wf, run, current, undeclared_error(entry, current, nxt))
        current = nxt
