"""Property-test your own workflow: fault plans, crash points, completion orders and
invariant checkers, on asyncio and trio.

```python
import enum
from hypothesis import given
from cano_dsl import TaskConfig, Workflow, task
from cano_dsl.testing.strategies import (
    assert_effects_once, assert_terminates, effect, plans, run_plan_sync, workflow_settings,
)

class Step(enum.Enum):
    CHARGE = 1
    DONE = 2

@task(config=TaskConfig().with_fixed_retry(2, 0.1), name="charge")
async def charge() -> Step:
    effect("charge", "order-1")
    return Step.DONE

wf = Workflow.bare().register(Step.CHARGE, charge).add_exit_state(Step.DONE)

@workflow_settings(max_examples=10)
@given(plan=plans(wf, crashes=1))
def test_charge_once(plan):
    for backend in ("asyncio", "trio"):
        history = run_plan_sync(wf, Step.CHARGE, plan, backend=backend)
        assert_effects_once(history, "charge", required=False)
        assert_terminates(history)

test_charge_once()
```

A **plan** (`Plan`) says which attempts of which states raise which error (`Fault`),
where the process dies (`Crash`), how long concurrent split branches and batch items
take (`Delay`) and when the run is cancelled from outside (`Cancel`). `plans` draws
one for a given workflow; `run_plan` applies it without editing the workflow: it builds
a new `Workflow` from the user's one whose registered tasks are wrapped, runs it under
a `MockClock` (so slow attempts and retry backoff cost no wall time), and after each
crash resumes from the store until the run ends. The
`History` it returns is what the ``assert_*`` checkers read; each failure message shows
the plan, and hypothesis shrinks the plan first, so the message shows the shortest one.

How a crash is emulated (and how it differs from ``kill -9``): at the crash point the
runner raises a private `BaseException`, which the engine never catches, wraps or
compensates (API ground rule); a store wrapper refuses every write after it, so the
store holds exactly the rows committed before the crash. Unlike a real kill, the
``finally`` blocks of the dying run still execute: resource ``teardown`` runs (a real
kill never tears down) and sibling branches of a split see a cancellation instead of
vanishing. Neither writes to the store nor runs a compensation, so what a resume sees
is the same as after a kill (tests/testing/test_strategies_kill.py checks one case
against a SIGKILLed subprocess).

Hypothesis is an optional dependency (the ``test`` extra pulls it in): importing this
module works without it; the strategies, `workflow_settings` and `WorkflowMachine` raise
`ImportError` naming the extra when it is missing.
"""

from __future__ import annotations

import contextvars
import copy
import enum
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.lowlevel
import attrs

from .. import _clock
from .._cancel import CancellationToken
from .._errors import CanoError, CircuitOpenError, RateLimited, TaskTimeout
from .._outcome import Err, Ok
from ..stores._row import CheckpointRow, RowKind
from ..tasks._decorate import model_of
from ..workflow._entry import COMPENSATABLE, ROUTER, SINGLE, SPLIT, Entry
from ..workflow._split import JoinStrategy
from ._checkpoint import InMemoryCheckpointStore
from ._clock import MockClock
from ._observer import RecordingObserver, StateEntered

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from ..workflow._workflow import Workflow

    WorkflowMachine: type  # built on first access (hypothesis is optional)

__all__ = [
    "FAULT_KINDS",
    "Cancel",
    "Crash",
    "Delay",
    "Fault",
    "History",
    "Plan",
    "Segment",
    "WorkflowMachine",
    "assert_batch_order",
    "assert_compensation_lifo",
    "assert_effects_once",
    "assert_join_consistent",
    "assert_prefix_never_rerun",
    "assert_retries_within_policy",
    "assert_terminates",
    "cancel_points",
    "crash_points",
    "effect",
    "fault_plans",
    "plans",
    "run_plan",
    "run_plan_sync",
    "timings",
    "workflow_property",
    "workflow_settings",
]

FAULT_KINDS = ("error", "fatal", "timeout", "slow", "circuit_open", "rate_limited")
"""What a `Fault` does to an attempt: ``error`` raises a retryable `ConnectionError` on
that attempt only; ``fatal`` raises `RuntimeError` on that attempt and every later one of
the same visit (retries cannot fix it); ``timeout`` raises the `TaskTimeout` an
``attempt_timeout`` raises; ``slow`` makes the attempt take ``seconds`` of virtual time;
``circuit_open`` raises `CircuitOpenError` (a breaker refusing: the retry loop stops at
once); ``rate_limited`` raises `RateLimited` (a limiter tier refusing)."""

T = TypeVar("T")
_Fn = TypeVar("_Fn", bound=Callable[..., Any])

_EXTRA_HINT = "pip install 'cano-dsl[test]'"


def _hypothesis() -> Any:
    try:
        import hypothesis
        import hypothesis.strategies
    except ImportError as exc:  # pragma: no cover - the test extra is installed in CI
        raise ImportError(
            "cano_dsl.testing.strategies needs hypothesis, an optional dependency: "
            f"install the `test` extra ({_EXTRA_HINT})"
        ) from exc
    return hypothesis


# -- plans ------------------------------------------------------------------------------


def _label(state: Any) -> str:
    return state.name if isinstance(state, enum.Enum) else str(state)


@attrs.frozen
class Fault:
    """Attempt ``attempt`` (1-based, counted per visit of the state) of ``state``'s task
    does ``kind`` (one of `FAULT_KINDS`). ``branch`` targets one branch of a split
    state, ``item`` one item of a batch state (then ``attempt`` counts that item's
    attempts). ``seconds``: how long a ``slow`` attempt takes (virtual time)."""

    state: str = attrs.field(converter=_label)
    attempt: int = 1
    kind: str = "error"
    branch: int | None = None
    item: int | None = None
    seconds: float = 0.0

    def __attrs_post_init__(self) -> None:
        from .._errors import ConfigurationError

        if self.kind not in FAULT_KINDS:
            raise ConfigurationError(f"Fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.attempt < 1:
            raise ConfigurationError(f"Fault attempt is 1-based, got {self.attempt!r}")

    def matches(self, state: str, attempt: int, branch: int | None, item: int | None) -> bool:
        """Whether this fault applies to that attempt."""
        if self.state != state or self.branch != branch or self.item != item:
            return False
        return attempt >= self.attempt if self.kind == "fatal" else attempt == self.attempt

    def describe(self) -> str:
        """One readable line: ``state CHARGE attempt 1 raised ConnectionError``."""
        where = f"state {self.state}"
        if self.branch is not None:
            where += f" branch {self.branch}"
        if self.item is not None:
            where += f" item {self.item}"
        what = {
            "error": "raised ConnectionError",
            "fatal": "raised RuntimeError (and every later attempt too)",
            "timeout": "timed out (TaskTimeout)",
            "slow": f"took {self.seconds:g}s of virtual time",
            "circuit_open": "was refused by its circuit breaker (CircuitOpenError)",
            "rate_limited": "was refused by a rate limiter (RateLimited)",
        }[self.kind]
        return f"{where} attempt {self.attempt} {what}"


@attrs.frozen
class Crash:
    """Where the process dies. ``where``:

    - ``"row"``: right after checkpoint row number ``row`` (0-based, counted from the
      start of the segment: the orchestrate call or one resume) is committed;
    - ``"attempt"``: inside attempt ``attempt`` of ``state``'s task, ``when="before"``
      its body runs or ``"after"`` it returned (its effect done, the engine not told);
    - ``"compensation"``: during a rollback, ``before`` or ``after`` the compensation of
      ``state`` runs.

    A crash point that the segment never reaches does nothing."""

    where: Literal["row", "attempt", "compensation"] = "row"
    row: int = 0
    state: str = attrs.field(default="", converter=_label)
    attempt: int = 1
    when: Literal["before", "after"] = "before"

    def describe(self) -> str:
        """One readable line: ``crash after checkpoint row 3``."""
        if self.where == "row":
            return f"crash after checkpoint row {self.row} of the segment"
        if self.where == "attempt":
            return f"crash {self.when} the body of {self.state}'s attempt {self.attempt}"
        return f"crash {self.when} the compensation of {self.state}"


@attrs.frozen
class Delay:
    """Branch ``index`` of split state ``state`` (or item ``index`` of batch state
    ``state``) takes ``seconds`` of virtual time before its body runs: drawn delays
    decide completion orders."""

    state: str = attrs.field(converter=_label)
    index: int
    seconds: float


@attrs.frozen
class Cancel:
    """The run is cancelled from outside (its `CancellationToken` fires) as attempt
    ``attempt`` of ``state`` starts, before its body runs, in segment ``segment`` (0:
    the first run, 1: the first resume, ...). A compensatable step is never cut: it
    finishes and the run stops at the next state."""

    state: str = attrs.field(converter=_label)
    attempt: int = 1
    segment: int = 0

    def describe(self) -> str:
        """One readable line: ``cancelled as SHIP's attempt 1 started``."""
        where = "" if self.segment == 0 else f" (resume {self.segment})"
        return f"cancelled as {self.state}'s attempt {self.attempt} started{where}"


def _checked(kind: type[T], values: Iterable[T]) -> tuple[T, ...]:
    out = tuple(values)
    for v in out:
        if not isinstance(v, kind):
            from .._errors import ConfigurationError

            raise ConfigurationError(f"a Plan takes {kind.__name__} objects, got {v!r}")
    return out


def _faults(values: Iterable[Fault]) -> tuple[Fault, ...]:
    return _checked(Fault, values)


def _crashes(values: Iterable[Crash]) -> tuple[Crash, ...]:
    return _checked(Crash, values)


def _delays(values: Iterable[Delay]) -> tuple[Delay, ...]:
    return _checked(Delay, values)


def _cancels(values: Iterable[Cancel]) -> tuple[Cancel, ...]:
    return _checked(Cancel, values)


@attrs.frozen
class Plan:
    """Faults, crash points (crash ``i`` applies to segment ``i``: the first run, then
    each resume), delays and outside cancellations, applied together by `run_plan`."""

    faults: tuple[Fault, ...] = attrs.field(default=(), converter=_faults)
    crashes: tuple[Crash, ...] = attrs.field(default=(), converter=_crashes)
    delays: tuple[Delay, ...] = attrs.field(default=(), converter=_delays)
    cancels: tuple[Cancel, ...] = attrs.field(default=(), converter=_cancels)

    def describe(self) -> str:
        """The plan as readable lines (``"no faults, no crash"`` when empty)."""
        lines = [f.describe() for f in self.faults]
        lines += [c.describe() for c in self.cancels]
        for i, c in enumerate(self.crashes):
            lines.append(f"{'run' if i == 0 else f'resume {i}'}: {c.describe()}")
        lines += [
            f"state {d.state} {'item/branch'} {d.index} waits {d.seconds:g}s"
            for d in self.delays
            if d.seconds
        ]
        return "; ".join(lines) if lines else "no faults, no crash"

    def fault_for(
        self, state: str, attempt: int, branch: int | None = None, item: int | None = None
    ) -> Fault | None:
        """The first fault matching that attempt, if any."""
        for f in self.faults:
            if f.matches(state, attempt, branch, item):
                return f
        return None

    def delay_for(self, state: str, index: int) -> float:
        """The drawn delay of branch/item ``index`` of ``state`` (0 when none)."""
        for d in self.delays:
            if d.state == state and d.index == index:
                return d.seconds
        return 0.0


# -- effects ----------------------------------------------------------------------------


_RECORDER: contextvars.ContextVar[_Ctx | None] = contextvars.ContextVar(
    "cano_dsl_strategies_recorder", default=None
)


def effect(name: str, key: Any = None) -> None:
    """Mark a side effect (``"charge"``, keyed e.g. by order id) in the running
    `run_plan`'s history; a no-op outside one, so production code may call it. Call it
    where the effect really happens (after the payment call returned).

    The runner also records two effects of its own for every compensatable step, so a
    workflow that never calls `effect` can still be checked: ``"run:<name>"`` each time
    its forward ``run`` returned and ``"compensate:<name>"`` each time its
    ``compensate`` returned (``<name>`` is the task's ``name()``)."""
    ctx = _RECORDER.get()
    if ctx is not None:
        ctx.history.effects.append(
            EffectRecord(name, key, ctx.segment_index, ctx.current_state, ctx.history.clock_now())
        )


# -- history ----------------------------------------------------------------------------


@attrs.frozen
class EffectRecord:
    """One `effect` call: name, key, segment, the state running it, virtual time."""

    name: str
    key: Any
    segment: int
    state: str
    at: float


@attrs.frozen
class AttemptRecord:
    """One attempt of a task (a branch, an item): its outcome ``"ok"``, ``"error"``
    (with the error's class name), ``"refused"`` (by a planned open breaker, before the
    body), ``"crash-before"`` (died before the body) or ``"crash-after"`` (died after it
    returned)."""

    segment: int
    state: str
    visit: int
    attempt: int
    outcome: str
    branch: int | None = None
    item: int | None = None
    error: str = ""


@attrs.frozen
class StepRecord:
    """A compensatable step's forward body returned (``kind="forward"``) or its
    compensation ran (``kind="compensate"``), in ``segment``."""

    segment: int
    kind: str
    state: str
    task_id: str


@attrs.define
class BatchRecord:
    """One batch visit: the loaded items, the index of each finished item in completion
    order, what each ``process_item`` returned, and the outputs ``finish`` received."""

    segment: int
    state: str
    items: list[Any] = attrs.field(factory=list)
    completed: list[int] = attrs.field(factory=list)
    produced: dict[int, Any] = attrs.field(factory=dict)
    outputs: list[Any] | None = None
    busy: set[int] = attrs.field(factory=set, repr=False)


@attrs.define
class SplitRecord:
    """One split visit: the join strategy, each branch's outcome (``True`` succeeded,
    ``False`` failed, missing: cancelled or never finished) and the completion order."""

    segment: int
    state: str
    strategy: JoinStrategy
    join_state: str
    total: int
    outcomes: dict[int, bool] = attrs.field(factory=dict)
    completed: list[int] = attrs.field(factory=list)
    visit: int = 0


@attrs.define
class Segment:
    """One process lifetime: the first ``orchestrate`` or one ``resume_from``.

    ``outcome``: ``"exit"`` (``result`` is the exit state's label), ``"error"``
    (``error`` is what the call raised), ``"crash"`` (``crash`` is the point) or
    ``"hang"`` (stopped at the virtual-time limit). ``rows_before``: the store's rows
    when the segment started; ``rows_after``: when it ended."""

    index: int
    events: list[Any] = attrs.field(factory=list)
    outcome: str = ""
    result: str = ""
    error: BaseException | None = None
    crash: Crash | None = None
    rows_before: list[CheckpointRow] = attrs.field(factory=list)
    rows_after: list[CheckpointRow] = attrs.field(factory=list)
    started_at: float = 0.0
    ended_at: float = 0.0

    def states_entered(self) -> list[str]:
        """Labels of the states entered in this segment, in order."""
        return [e.state for e in self.events if isinstance(e, StateEntered)]


@attrs.define
class History:
    """Everything `run_plan` recorded: the plan, the segments, attempts, effects,
    compensatable steps, batch and split visits, and the workflow's retry budgets."""

    plan: Plan
    workflow_id: str
    segments: list[Segment] = attrs.field(factory=list)
    attempts: list[AttemptRecord] = attrs.field(factory=list)
    effects: list[EffectRecord] = attrs.field(factory=list)
    steps: list[StepRecord] = attrs.field(factory=list)
    batches: list[BatchRecord] = attrs.field(factory=list)
    splits: list[SplitRecord] = attrs.field(factory=list)
    budgets: dict[tuple[str, int | None], int] = attrs.field(factory=dict)
    virtual_limit: float = math.inf
    clock: MockClock | None = attrs.field(default=None, repr=False)
    _start: float = 0.0

    def clock_now(self) -> float:
        """Virtual seconds since the run started."""
        return self.clock.now() - self._start if self.clock is not None else 0.0

    @property
    def final(self) -> Segment:
        """The last segment (the one that did not crash, unless resumes ran out)."""
        return self.segments[-1]

    @property
    def completed(self) -> bool:
        """Whether the run ended in an exit state."""
        return bool(self.segments) and self.final.outcome == "exit"

    def effect_count(self, name: str, key: Any = None) -> int:
        """How many times effect ``name`` (with ``key``, or any key when None) happened."""
        return sum(1 for e in self.effects if e.name == name and (key is None or e.key == key))

    def describe(self) -> str:
        """The plan and what each segment did, for failure messages."""
        lines = [f"plan: {self.plan.describe()}"]
        for seg in self.segments:
            what = {
                "exit": f"reached {seg.result}",
                "error": f"failed: {type(seg.error).__name__}: {seg.error}",
                "crash": f"died ({seg.crash.describe() if seg.crash else '?'})",
                "hang": f"did not end within {self.virtual_limit:g} virtual seconds",
            }.get(seg.outcome, seg.outcome)
            kind = "run" if seg.index == 0 else f"resume {seg.index}"
            lines.append(f"  {kind}: states {seg.states_entered()} -> {what}")
        return "\n".join(lines)


def _fail(history: History, message: str) -> None:
    raise AssertionError(f"{message}\n{history.describe()}")


# -- the runner -------------------------------------------------------------------------


class _Crash(BaseException):
    """The emulated process death: never caught by the engine."""


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, _Crash):
        return True
    inner = getattr(exc, "exceptions", None)  # a (Base)ExceptionGroup
    return isinstance(inner, tuple) and any(_is_crash(e) for e in inner)


class _Ctx:
    """The runner's per-run bookkeeping, shared by the wrappers and the store."""

    def __init__(self, plan: Plan, history: History) -> None:
        self.plan = plan
        self.history = history
        self.segment_index = 0
        self.crash: Crash | None = None
        self.dead = False
        self.rows = 0
        self.current_state = ""
        self.visits: dict[str, int] = {}
        self.attempts: dict[tuple[str, int | None, int | None], int] = {}
        self.open_batches: dict[str, BatchRecord] = {}
        self.open_splits: dict[str, SplitRecord] = {}
        self.breakers: set[tuple[str, int | None]] = set()
        self.token = CancellationToken()

    def new_segment(self, index: int) -> None:
        self.segment_index = index
        crashes = self.plan.crashes
        self.crash = crashes[index] if index < len(crashes) else None
        self.dead = False
        self.rows = 0
        self.attempts.clear()
        self.token = CancellationToken()

    def enter(self, state: str) -> None:
        self.current_state = state
        self.visits[state] = self.visits.get(state, 0) + 1
        for key in [k for k in self.attempts if k[0] == state]:
            del self.attempts[key]

    def die(self, where: Crash) -> None:
        self.dead = True
        raise _Crash(where.describe())

    def check_alive(self) -> None:
        if self.dead:
            raise _Crash("after the crash")

    def next_attempt(self, state: str, branch: int | None, item: int | None) -> int:
        key = (state, branch, item)
        k = self.attempts.get(key, 0) + 1
        self.attempts[key] = k
        return k


class _Recorder(RecordingObserver):
    """Records the events of the current segment and tracks state visits."""

    def __init__(self, ctx: _Ctx) -> None:
        super().__init__()
        self.ctx = ctx

    def on_state_enter(self, state: str) -> None:
        self.ctx.enter(state)
        super().on_state_enter(state)


class _CrashStore:
    """Wraps the user's checkpoint store: counts committed rows, dies after the planned
    one, and refuses every write once the process is dead."""

    def __init__(self, inner: Any, ctx: _Ctx) -> None:
        self._inner = inner
        self._ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        ctx = self._ctx
        ctx.check_alive()
        await self._inner.append(workflow_id, row)
        n = ctx.rows
        ctx.rows += 1
        crash = ctx.crash
        if crash is not None and crash.where == "row" and crash.row == n:
            ctx.die(crash)

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        self._ctx.check_alive()
        return list(await self._inner.load_run(workflow_id))

    async def clear(self, workflow_id: str) -> None:
        self._ctx.check_alive()
        await self._inner.clear(workflow_id)


class _PlannedBreaker:
    """Wraps a state's circuit breaker: refuses the attempts the plan says it refuses
    (before the attempt, as an open breaker does), otherwise asks the real one."""

    def __init__(self, inner: Any, ctx: _Ctx, state: str, branch: int | None) -> None:
        self._inner = inner
        self._ctx = ctx
        self._state = state
        self._branch = branch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def try_acquire(self) -> Any:
        ctx = self._ctx
        state, branch = self._state, self._branch
        k = ctx.attempts.get((state, branch, None), 0) + 1
        fault = ctx.plan.fault_for(state, k, branch)
        if fault is not None and fault.kind == "circuit_open":
            ctx.history.attempts.append(
                AttemptRecord(
                    ctx.segment_index,
                    state,
                    ctx.visits.get(state, 0),
                    k,
                    "refused",
                    branch,
                    None,
                    "CircuitOpenError",
                )
            )
            raise CircuitOpenError(f"planned refusal of {state} attempt {k}")
        return self._inner.try_acquire()


def _planned_config(config: Any, ctx: _Ctx, state: str, branch: int | None) -> Any:
    breaker = config.circuit_breaker
    if breaker is None:
        return config
    ctx.breakers.add((state, branch))
    return attrs.evolve(config, circuit_breaker=_PlannedBreaker(breaker, ctx, state, branch))


def _fault_error(fault: Fault) -> Exception:
    kind = fault.kind
    if kind == "timeout":
        return TaskTimeout("task attempt exceeded attempt_timeout (planned fault)")
    if kind == "rate_limited":
        return RateLimited("planned", 1.0)
    if kind == "fatal":
        return RuntimeError(f"planned fatal fault in {fault.state}")
    return ConnectionError(f"planned fault in {fault.state} attempt {fault.attempt}")


async def _attempt(
    ctx: _Ctx,
    state: str,
    call: Callable[[], Awaitable[Any]],
    *,
    branch: int | None = None,
    item: int | None = None,
) -> Any:
    """One attempt under the plan: crash points, faults, delays, then the body."""
    ctx.check_alive()
    hist = ctx.history
    seg = ctx.segment_index
    visit = ctx.visits.get(state, 0)
    k = ctx.next_attempt(state, branch, item)
    crash = ctx.crash
    at_crash = (
        crash is not None
        and crash.where == "attempt"
        and crash.state == state
        and crash.attempt == k
        and branch is None
        and item is None
    )
    if branch is None and item is None:
        for c in ctx.plan.cancels:
            if c.segment == seg and c.state == state and c.attempt == k:
                ctx.token.cancel()
                await anyio.lowlevel.checkpoint()  # a raced attempt is cut here
    if at_crash and crash is not None and crash.when == "before":
        hist.attempts.append(AttemptRecord(seg, state, visit, k, "crash-before", branch, item))
        ctx.die(crash)
    index = branch if branch is not None else item
    if index is not None and k == 1:
        wait = ctx.plan.delay_for(state, index)
        if wait > 0:
            await _clock.sleep(wait)
            ctx.check_alive()
    fault = ctx.plan.fault_for(state, k, branch, item)
    if fault is not None and fault.kind != "circuit_open":  # the breaker refuses those
        if fault.kind == "slow":
            await _clock.sleep(fault.seconds)
            ctx.check_alive()
        else:
            err = _fault_error(fault)
            hist.attempts.append(
                AttemptRecord(seg, state, visit, k, "error", branch, item, type(err).__name__)
            )
            raise err
    token = _RECORDER.set(ctx)
    try:
        value = await call()
    except Exception as exc:
        hist.attempts.append(
            AttemptRecord(seg, state, visit, k, "error", branch, item, type(exc).__name__)
        )
        raise
    finally:
        _RECORDER.reset(token)
    if at_crash and crash is not None:
        hist.attempts.append(AttemptRecord(seg, state, visit, k, "crash-after", branch, item))
        ctx.die(crash)
    ctx.check_alive()
    hist.attempts.append(AttemptRecord(seg, state, visit, k, "ok", branch, item))
    return value


def _proxy(task: Any) -> Any:
    """A shallow copy of ``task`` whose hooks can be overridden per instance."""
    try:
        clone = copy.copy(task)
        clone.__dict__  # noqa: B018 - instance attributes are needed to override hooks
    except (TypeError, AttributeError) as exc:
        from .._errors import ConfigurationError

        raise ConfigurationError(
            f"run_plan cannot wrap {type(task).__qualname__}: its instances must be "
            "copyable and have a __dict__ (no __slots__-only classes)"
        ) from exc
    return clone


def _wrap_batch(ctx: _Ctx, state: str, task: Any) -> Any:
    proxy = _proxy(task)
    load, process, finish = task.load, task.process_item, task.finish

    async def w_load(res: Any) -> Any:
        items = list(await load(res))
        record = BatchRecord(ctx.segment_index, state, items)
        ctx.history.batches.append(record)
        ctx.open_batches[state] = record
        return items

    async def w_process(item: Any) -> Any:
        record = ctx.open_batches[state]
        index = next(
            (
                i
                for i, x in enumerate(record.items)
                if x is item and i not in record.produced and i not in record.busy
            ),
            None,
        )
        if index is None:  # an item that is not the loaded object: match by equality
            index = next(
                (i for i, x in enumerate(record.items) if x == item and i not in record.produced),
                -1,
            )
        record.busy.add(index)
        try:
            value = await _attempt(ctx, state, lambda: process(item), item=index)
        finally:
            record.busy.discard(index)
        record.produced[index] = value
        record.completed.append(index)
        return value

    async def w_finish(res: Any, outputs: list[Any]) -> Any:
        ctx.check_alive()
        ctx.open_batches[state].outputs = list(outputs)
        return await finish(res, outputs)

    proxy.load, proxy.process_item, proxy.finish = w_load, w_process, w_finish
    return proxy


def _wrap_compensatable(ctx: _Ctx, state: str, task: Any, task_id: str) -> Any:
    proxy = _proxy(task)
    run, compensate = task.run, task.compensate

    async def w_run(res: Any) -> Any:
        value = await _attempt(ctx, state, lambda: run(res))
        hist = ctx.history
        hist.steps.append(StepRecord(ctx.segment_index, "forward", state, task_id))
        hist.effects.append(
            EffectRecord(f"run:{task_id}", None, ctx.segment_index, state, hist.clock_now())
        )
        return value

    async def w_compensate(res: Any, output: Any) -> None:
        ctx.check_alive()
        crash = ctx.crash
        here = crash is not None and crash.where == "compensation" and crash.state == state
        if here and crash is not None and crash.when == "before":
            ctx.die(crash)
        token = _RECORDER.set(ctx)
        try:
            await compensate(res, output)
        finally:
            _RECORDER.reset(token)
        hist = ctx.history
        hist.steps.append(StepRecord(ctx.segment_index, "compensate", state, task_id))
        hist.effects.append(
            EffectRecord(
                f"compensate:{task_id}",
                None,
                ctx.segment_index,
                ctx.current_state,
                hist.clock_now(),
            )
        )
        if here and crash is not None:
            ctx.die(crash)

    proxy.run, proxy.compensate = w_run, w_compensate
    return proxy


def _instrument(workflow: Workflow[Any], ctx: _Ctx) -> Workflow[Any]:
    """A new workflow whose registered tasks go through the plan; the user's is untouched."""
    entries: dict[Any, Entry] = {}
    proxies: dict[int, Any] = {}
    budgets = ctx.history.budgets
    for state, entry in workflow._entries.items():
        label = state.name
        kind = entry.kind
        if kind in (SINGLE, ROUTER):
            budgets[(label, None)] = entry.config.retry_mode.max_attempts
            task = entry.task
            spec = model_of(task)
            if spec is not None and spec.decorator == "batch":
                proxy = _wrap_batch(ctx, label, task)
                assert spec.invoker is not None
                inv, pass_res = spec.invoker(proxy)
                task = proxy
                entry = Entry(kind, proxy, entry.config, entry.task_id, inv, pass_res)
            invoke = entry.invoke
            assert invoke is not None

            def wrapped(*args: Any, _invoke: Any = invoke, _label: str = label) -> Any:
                return _attempt(ctx, _label, lambda: _invoke(*args))

            config = _planned_config(entry.config, ctx, label, None)
            entries[state] = Entry(kind, task, config, entry.task_id, wrapped, entry.pass_res)
        elif kind == SPLIT:
            configs = tuple(_planned_config(c, ctx, label, i) for i, c in enumerate(entry.configs))
            new = Entry(SPLIT, None, None, "", tasks=entry.tasks, configs=configs,
                        join=entry.join)  # fmt: skip
            invokers = []
            for i, (inv, pass_res) in enumerate(entry.invokers):
                budgets[(label, i)] = entry.configs[i].retry_mode.max_attempts

                def branch(*args: Any, _inv: Any = inv, _i: int = i, _label: str = label) -> Any:
                    return _split_attempt(ctx, _label, _i, lambda: _inv(*args))

                invokers.append((branch, pass_res))
            new.invokers = invokers
            entries[state] = _track_split(new, ctx, label)
        elif kind == COMPENSATABLE:
            budgets[(label, None)] = entry.config.retry_mode.max_attempts
            proxy = _wrap_compensatable(ctx, label, entry.task, entry.task_id)
            proxies[id(entry.task)] = proxy
            spec = model_of(entry.task)
            assert spec is not None and spec.invoker is not None
            inv, pass_res = spec.invoker(proxy)
            config = _planned_config(entry.config, ctx, label, None)
            entries[state] = Entry(kind, proxy, config, entry.task_id, inv, pass_res)
        else:  # stepped and stream states: crash points at their rows only
            entries[state] = entry
    compensators = {}
    for name, task in workflow._compensators.items():
        proxy = proxies.get(id(task))
        if proxy is None:
            label = next((s.name for s, e in workflow._entries.items() if e.task is task), name)
            proxy = _wrap_compensatable(ctx, label, task, name)
        compensators[name] = proxy
    new_wf: Workflow[Any] = workflow._evolve(_entries=entries, _compensators=compensators)
    return new_wf


def _track_split(entry: Entry, ctx: _Ctx, label: str) -> Entry:
    """Open a `SplitRecord` when the split's first branch starts."""
    join = entry.join
    ctx.history.budgets.setdefault((label, -1), len(entry.tasks))
    ctx_splits = ctx.open_splits
    entry_strategy = join.strategy
    entry_join = join.join_state.name
    total = len(entry.tasks)
    original = list(entry.invokers)

    def opener(i: int, inv: Any) -> Any:
        def call(*args: Any) -> Any:
            rec = ctx_splits.get(label)
            visit_key = (ctx.segment_index, ctx.visits.get(label, 0))
            if rec is None or (rec.segment, rec.visit) != visit_key:
                rec = SplitRecord(
                    ctx.segment_index, label, entry_strategy, entry_join, total, visit=visit_key[1]
                )
                ctx_splits[label] = rec
                ctx.history.splits.append(rec)
            return inv(*args)

        return call

    entry.invokers = [(opener(i, inv), p) for i, (inv, p) in enumerate(original)]
    return entry


async def _split_attempt(
    ctx: _Ctx, state: str, index: int, call: Callable[[], Awaitable[Any]]
) -> Any:
    rec = ctx.open_splits[state]
    try:
        value = await _attempt(ctx, state, call, branch=index)
    except Exception:
        rec.outcomes[index] = False
        raise
    rec.outcomes[index] = True
    rec.completed.append(index)
    return value


async def run_plan(
    workflow: Workflow[Any],
    initial: Any,
    plan: Plan | None = None,
    *,
    store: Any = None,
    workflow_id: str = "property-run",
    virtual_limit: float = 24 * 3600.0,
    max_resumes: int = 10,
    resume: Callable[[Workflow[Any], str], Awaitable[Any]] | None = None,
) -> History:
    """Run ``workflow`` from ``initial`` under ``plan`` and return its `History`.

    The user's workflow is not changed: the runner builds a new one with its tasks
    wrapped, an observer, and a checkpoint store (``store``, or the workflow's own, or
    a fresh `InMemoryCheckpointStore`) under ``workflow_id``, whose old rows it clears
    first. It installs a `MockClock`
    for the whole run. After each crash it resumes (``resume(wf, workflow_id)``,
    default ``wf.resume_from(workflow_id)``), at most ``max_resumes`` times. A segment
    still running after ``virtual_limit`` virtual seconds is stopped and recorded as a
    ``"hang"``. Errors of the run are recorded, not raised."""
    plan = plan if plan is not None else Plan()
    history = History(plan, workflow_id, virtual_limit=virtual_limit)
    ctx = _Ctx(plan, history)
    inner = store if store is not None else workflow._store
    if inner is None:
        inner = InMemoryCheckpointStore()
    recorder = _Recorder(ctx)
    instrumented = _instrument(workflow, ctx)
    for f in plan.faults:
        if f.kind == "circuit_open" and (f.state, f.branch) not in ctx.breakers:
            from .._errors import ConfigurationError

            raise ConfigurationError(
                f"{f.describe()}: {f.state} has no circuit breaker to refuse it (give its "
                "TaskConfig one with with_circuit_breaker)"
            )
    wf = instrumented.with_observer(recorder).with_checkpoint_store(_CrashStore(inner, ctx))
    wf = wf.with_workflow_id(workflow_id)
    await inner.clear(workflow_id)
    resume_fn: Callable[[Workflow[Any], str], Awaitable[Any]] = (
        resume if resume is not None else (lambda w, wid: w.resume_from(wid, ctx.token))
    )
    with MockClock(start=0.0) as clock:
        history.clock = clock
        history._start = clock.now()
        for index in range(max_resumes + 1):
            ctx.new_segment(index)
            seg = Segment(index, rows_before=list(await inner.load_run(workflow_id)))
            seg.started_at = history.clock_now()
            history.segments.append(seg)
            recorder.clear()
            if index == 0:
                call = functools.partial(wf.orchestrate, initial, ctx.token)
            else:
                call = functools.partial(_resume_call, resume_fn, wf, workflow_id)
            await _run_segment(ctx, clock, seg, call, virtual_limit)
            seg.events = recorder.take()
            seg.ended_at = history.clock_now()
            seg.rows_after = list(await inner.load_run(workflow_id))
            if seg.outcome != "crash":
                break
    return history


async def _resume_call(
    fn: Callable[[Workflow[Any], str], Awaitable[Any]], wf: Workflow[Any], workflow_id: str
) -> Any:
    return await fn(wf, workflow_id)


async def _run_segment(
    ctx: _Ctx, clock: MockClock, seg: Segment, call: Callable[[], Awaitable[Any]], limit: float
) -> None:
    hung = False
    start = clock.now()
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def watchdog() -> None:
            # polls on the real clock: a sleeper on the mock clock would let autojump
            # skip to its deadline whenever the run waits on something real
            nonlocal hung
            while clock.now() - start <= limit:  # noqa: ASYNC110 - two clocks
                await anyio.sleep(0.05)
            hung = True
            scope.cancel()

        if math.isfinite(limit):
            tg.start_soon(watchdog)
        try:
            with scope:
                result = await call()
                seg.outcome, seg.result = "exit", _label(result)
        except BaseException as exc:
            if _is_crash(exc):
                ctx.dead = True
                seg.outcome, seg.crash = "crash", ctx.crash
            elif isinstance(exc, Exception):
                seg.outcome, seg.error = "error", exc
            else:
                raise
        finally:
            tg.cancel_scope.cancel()
        if hung and seg.outcome in ("", "error"):
            seg.outcome = "hang"


def run_plan_sync(
    workflow: Workflow[Any],
    initial: Any,
    plan: Plan | None = None,
    *,
    backend: Literal["asyncio", "trio"] | str = "asyncio",
    **options: Any,
) -> History:
    """`run_plan` on a fresh event loop of ``backend`` (for synchronous hypothesis
    tests: ``@given`` on a plain function, the backend as a parameter)."""
    result: History = anyio.run(
        functools.partial(run_plan, workflow, initial, plan, **options), backend=backend
    )
    return result


# -- strategies -------------------------------------------------------------------------


def _typed(strategy: Any) -> SearchStrategy[Any]:
    """Hypothesis is imported lazily, so its strategies are `Any` to mypy."""
    out: SearchStrategy[Any] = strategy
    return out


def _labels(workflow: Workflow[Any], kinds: Iterable[str]) -> list[str]:
    wanted = set(kinds)
    return [s.name for s, e in workflow._entries.items() if e.kind in wanted]


def _batch_states(workflow: Workflow[Any]) -> list[str]:
    out = []
    for s, e in workflow._entries.items():
        spec = model_of(e.task) if e.kind in (SINGLE, ROUTER) else None
        if spec is not None and spec.decorator == "batch":
            out.append(s.name)
    return out


def fault_plans(
    workflow: Workflow[Any],
    *,
    max_faults: int = 3,
    kinds: Sequence[str] = FAULT_KINDS,
    max_attempt: int = 3,
    max_items: int = 8,
    slow_seconds: float = 30.0,
) -> SearchStrategy[tuple[Fault, ...]]:
    """Up to ``max_faults`` faults on ``workflow``'s states: attempts 1..``max_attempt``
    of single, router and compensatable states, of split branches and of batch items
    (indices below ``max_items``), each of one of ``kinds``. Shrinks towards fewer
    faults, earlier states and attempts, and ``error``."""
    st = _hypothesis().strategies
    kinds = [k for k in FAULT_KINDS if k in kinds]
    plain = [k for k in kinds if k != "circuit_open"] or ["error"]
    options = []

    def one(label: str, config: Any, **where: Any) -> Any:
        # an open breaker is drawn only for a state whose config has a breaker
        allowed = kinds if config.circuit_breaker is not None and kinds else plain
        where = {k: st.just(v) if isinstance(v, int) else v for k, v in where.items()}
        return st.builds(
            Fault,
            st.just(label),
            st.integers(1, max_attempt),
            st.sampled_from(allowed),
            seconds=st.floats(0.0, slow_seconds),
            **where,
        )

    for s, e in workflow._entries.items():
        if e.kind in (SINGLE, ROUTER, COMPENSATABLE):
            options.append(one(s.name, e.config))
        elif e.kind == SPLIT:
            for i, config in enumerate(e.configs):
                options.append(one(s.name, config, branch=i))
    batches = _batch_states(workflow)
    item_kinds = [k for k in kinds if k in ("error", "fatal", "slow")] or ["error"]
    for label in batches:
        options.append(
            st.builds(
                Fault,
                st.just(label),
                st.integers(1, max_attempt),
                st.sampled_from(item_kinds),
                item=st.integers(0, max_items - 1),
                seconds=st.floats(0.0, slow_seconds),
            )
        )
    if not options:
        return _typed(st.just(()))
    return _typed(st.lists(st.one_of(options), max_size=max_faults).map(tuple))


def crash_points(
    workflow: Workflow[Any],
    *,
    max_crashes: int = 2,
    max_row: int = 12,
    max_attempt: int = 3,
    where: Sequence[str] = ("row", "attempt", "compensation"),
) -> SearchStrategy[tuple[Crash, ...]]:
    """Up to ``max_crashes`` crash points (one per segment: the run, then each resume):
    after any checkpoint row below ``max_row``, before or after the body of any
    attempt of a single, router or compensatable state, or around any compensation."""
    st = _hypothesis().strategies
    states = _labels(workflow, (SINGLE, ROUTER, COMPENSATABLE))
    comp = _labels(workflow, (COMPENSATABLE,))
    options = []
    if "row" in where:
        options.append(st.builds(Crash, st.just("row"), row=st.integers(0, max_row - 1)))
    if "attempt" in where and states:
        options.append(
            st.builds(
                Crash,
                st.just("attempt"),
                state=st.sampled_from(states),
                attempt=st.integers(1, max_attempt),
                when=st.sampled_from(["before", "after"]),
            )
        )
    if "compensation" in where and comp:
        options.append(
            st.builds(
                Crash,
                st.just("compensation"),
                state=st.sampled_from(comp),
                when=st.sampled_from(["before", "after"]),
            )
        )
    if not options or max_crashes <= 0:
        return _typed(st.just(()))
    return _typed(st.lists(st.one_of(options), max_size=max_crashes).map(tuple))


def cancel_points(
    workflow: Workflow[Any], *, max_attempt: int = 2, segments: int = 1
) -> SearchStrategy[tuple[Cancel, ...]]:
    """No cancellation, or one: the run's token fires as attempt 1..``max_attempt`` of
    a single, router or compensatable state starts, in one of the first ``segments``
    segments."""
    st = _hypothesis().strategies
    states = _labels(workflow, (SINGLE, ROUTER, COMPENSATABLE))
    if not states:
        return _typed(st.just(()))
    one = st.builds(
        Cancel,
        st.sampled_from(states),
        st.integers(1, max_attempt),
        st.integers(0, max(segments, 1) - 1),
    )
    return _typed(st.lists(one, max_size=1).map(tuple))


def timings(
    workflow: Workflow[Any], *, max_items: int = 8, max_seconds: float = 10.0
) -> SearchStrategy[tuple[Delay, ...]]:
    """A virtual delay for every split branch and every batch item (indices below
    ``max_items``): the completion order hypothesis explores. Shrinks towards no delay
    (the order the event loop would pick)."""
    st = _hypothesis().strategies
    slots: list[tuple[str, int]] = []
    for s, e in workflow._entries.items():
        if e.kind == SPLIT:
            slots += [(s.name, i) for i in range(len(e.tasks))]
    for label in _batch_states(workflow):
        slots += [(label, i) for i in range(max_items)]
    if not slots:
        return _typed(st.just(()))
    seconds = st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, max_seconds])
    return _typed(
        st.tuples(*[seconds for _ in slots]).map(
            lambda ds: tuple(Delay(lb, i, d) for (lb, i), d in zip(slots, ds, strict=True) if d)
        )
    )


def plans(
    workflow: Workflow[Any],
    *,
    faults: bool = True,
    crashes: int = 0,
    timing: bool = True,
    max_faults: int = 3,
    fault_kinds: Sequence[str] = FAULT_KINDS,
    crash_where: Sequence[str] = ("row", "attempt", "compensation"),
    max_items: int = 8,
    cancels: bool = False,
) -> SearchStrategy[Plan]:
    """Whole plans for ``workflow``: `fault_plans` (when ``faults``), up to ``crashes``
    `crash_points`, `timings` (when ``timing``) and `cancel_points` (when
    ``cancels``)."""
    st = _hypothesis().strategies
    f = (
        fault_plans(workflow, max_faults=max_faults, kinds=fault_kinds, max_items=max_items)
        if faults
        else st.just(())
    )
    c = crash_points(workflow, max_crashes=crashes, where=crash_where) if crashes else st.just(())
    t = timings(workflow, max_items=max_items) if timing else st.just(())
    k = cancel_points(workflow, segments=crashes + 1) if cancels else st.just(())
    return _typed(st.builds(Plan, f, c, t, k))


def workflow_settings(
    max_examples: int | None = None, *, profile: str | None = None, **overrides: Any
) -> Callable[[_Fn], _Fn]:
    """Hypothesis ``settings`` for workflow properties: no deadline (the runner's
    virtual time makes wall time meaningless), no too-slow health check, and
    ``max_examples`` (default: 25, or the ``CANO_DSL_MAX_EXAMPLES`` environment
    variable). ``profile="ci"`` derandomises (the default when the ``CI`` environment
    variable is set, so a CI run never depends on a lucky draw); ``profile="explore"``
    draws at least 500 examples (or set ``CANO_DSL_MAX_EXAMPLES``). Extra keyword
    arguments go to ``hypothesis.settings``. Use as a decorator above ``@given``."""
    import os

    hyp = _hypothesis()
    if profile is None and os.environ.get("CI"):
        profile = "ci"
    HealthCheck = hyp.HealthCheck
    env = os.environ.get("CANO_DSL_MAX_EXAMPLES")
    n = max_examples if max_examples is not None else int(env) if env else 25
    options: dict[str, Any] = {
        "deadline": None,
        "max_examples": n,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    if profile == "ci":
        options["derandomize"] = True
        options["print_blob"] = True
    elif profile == "explore":
        options["max_examples"] = max(500, n)
    elif profile is not None:
        from .._errors import ConfigurationError

        raise ConfigurationError(f"workflow_settings profile is 'ci' or 'explore', got {profile!r}")
    options.update(overrides)
    applied: Callable[[_Fn], _Fn] = hyp.settings(**options)
    return applied


def workflow_property(
    workflow: Workflow[Any] | Callable[[], Workflow[Any]],
    initial: Any,
    *,
    backends: Sequence[str] = ("asyncio", "trio"),
    max_examples: int | None = None,
    run_options: Mapping[str, Any] | None = None,
    **plan_options: Any,
) -> Callable[[Callable[[History], None]], Callable[[], None]]:
    """Turn a check of one `History` into a property test: every drawn plan
    (`plans(workflow, **plan_options)`) runs from ``initial`` on each of ``backends``
    and the decorated function checks each history. ``workflow`` is a `Workflow` or a
    zero-argument function building one (called afresh for every run, for tasks that
    keep state). ``run_options`` go to `run_plan`; the settings are
    `workflow_settings(max_examples)`. The result is a plain function pytest collects:

    ```python
    @workflow_property(build, Order.RESERVE, crashes=2)
    def test_refund_at_most_once(history):
        assert_effects_once(history, "refund", required=False)
    ```
    """
    hyp = _hypothesis()

    def fresh() -> Workflow[Any]:
        if callable(workflow) and not hasattr(workflow, "_entries"):
            return workflow()
        return workflow  # type: ignore[return-value]

    strategy = plans(fresh(), **plan_options)
    options = dict(run_options or {})

    def decorate(check: Callable[[History], None]) -> Callable[[], None]:
        @workflow_settings(max_examples)
        @hyp.given(plan=strategy)  # type: ignore[untyped-decorator]
        def prop(plan: Plan) -> None:
            for backend in backends:
                check(run_plan_sync(fresh(), initial, plan, backend=backend, **options))

        # not functools.wraps: pytest would follow __wrapped__ to ``check``'s signature
        # and take ``history`` for a fixture
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(prop, attr, getattr(check, attr))
        out: Callable[[], None] = prop
        return out

    return decorate


# -- checkers ---------------------------------------------------------------------------


def assert_effects_once(history: History, name: str, *, required: bool = True) -> None:
    """Effect ``name`` happened at most once per key across every crash and retry, and
    (``required``, the default) exactly once per key when the run reached an exit
    state (at least one key then)."""
    counts: dict[Any, int] = {}
    for e in history.effects:
        if e.name == name:
            counts[e.key] = counts.get(e.key, 0) + 1
    for key, n in counts.items():
        if n > 1:
            where = [
                f"{'run' if e.segment == 0 else f'resume {e.segment}'} in {e.state}"
                for e in history.effects
                if e.name == name and e.key == key
            ]
            _fail(history, f"effect {name!r} (key {key!r}) happened {n} times: {where}")
    if required and history.completed and not counts:
        _fail(history, f"the run reached {history.final.result} but effect {name!r} never happened")


def _last_rows(seg: Segment) -> list[CheckpointRow]:
    return seg.rows_before


def assert_prefix_never_rerun(history: History) -> None:
    """After each crash, the resumed segment starts at the state of the last committed
    row, and no compensatable step whose completion row was committed before it (and
    is not that last row) runs its forward body again."""
    for seg in history.segments[1:]:
        rows = seg.rows_before
        if not rows:
            continue
        last = rows[-1]
        entered = seg.states_entered()
        if entered and entered[0] != last.state:
            _fail(
                history,
                f"resume {seg.index} started at {entered[0]} but the log's last row is "
                f"{last.state}: the states before it ran again",
            )
        committed = {r.state for r in rows[:-1] if r.kind == RowKind.COMPENSATION_COMPLETION} - {
            last.state
        }
        rerun = [
            s.state
            for s in history.steps
            if s.segment == seg.index and s.kind == "forward" and s.state in committed
        ]
        if rerun:
            _fail(
                history,
                f"resume {seg.index} ran the forward body of {rerun} again although "
                "its completion row was committed",
            )


def assert_batch_order(history: History, state: Any = None, *, effect: str | None = None) -> None:
    """Each batch visit (of ``state``, or every batch state) keeps input order.

    Without ``effect``: the outputs ``finish`` received are, position by position, what
    ``process_item`` returned for the item at that position, whatever the completion
    order. With ``effect``: the keys of that effect recorded during the visit follow
    the order of the items (keys are the items, or their indices)."""
    label = _label(state) if state is not None else None
    for rec in history.batches:
        if label is not None and rec.state != label:
            continue
        if effect is None:
            if rec.outputs is None:
                continue
            for i, out in enumerate(rec.outputs):
                if i not in rec.produced:
                    continue
                got = out.value if isinstance(out, Ok) else out
                if isinstance(out, Err) or (got is not rec.produced[i] and got != rec.produced[i]):
                    _fail(
                        history,
                        f"batch {rec.state}: output {i} is {out!r}, but item {i} "
                        f"({rec.items[i]!r}) produced {rec.produced[i]!r}",
                    )
            continue
        keys = [
            e.key
            for e in history.effects
            if e.name == effect and e.segment == rec.segment and e.state == rec.state
        ]
        positions = []
        for key in keys:
            if key in rec.items:
                positions.append(rec.items.index(key))
            elif isinstance(key, int):
                positions.append(key)
        if positions != sorted(positions):
            _fail(
                history,
                f"batch {rec.state}: effect {effect!r} happened in the order {keys}, not in "
                f"input order (completion order {rec.completed})",
            )


def assert_compensation_lifo(history: History) -> None:
    """Every rollback compensates the completed steps of the run (those restored from
    the log after a crash included) in reverse completion order, each once."""
    for seg in history.segments:
        done = [s for s in history.steps if s.segment == seg.index]
        comps = [s.state for s in done if s.kind == "compensate"]
        if not comps:
            continue
        rows = seg.rows_before
        stack = [
            r.state
            for r in rows
            if r.kind == RowKind.COMPENSATION_COMPLETION and r.sequence != rows[-1].sequence
        ]
        for s in done:
            if s.kind == "forward":
                stack.append(s.state)
        expected = list(reversed(stack))
        if seg.outcome == "crash":
            expected = expected[: len(comps)]
        if comps != expected:
            _fail(
                history,
                f"{'run' if seg.index == 0 else f'resume {seg.index}'}: compensations ran "
                f"as {comps}, expected the reverse completion order {expected}",
            )


def assert_retries_within_policy(
    history: History,
    policy: Mapping[Any, int] | None = None,
    *,
    across_crashes: bool = False,
) -> None:
    """No visit of a state (branch, item) made more attempts than its budget: its
    registered config's ``retry_mode.max_attempts``, or ``policy[state]`` (what the
    user means the budget to be). ``across_crashes`` counts the attempts of a visit cut
    by a crash and re-run on resume together (a provider that counts every call)."""
    limits = {_label(k): v for k, v in (policy or {}).items()}
    counts: dict[tuple[int, str, int | None, int | None, int], int] = {}
    carry: dict[tuple[str, int | None, int | None], int] = {}
    for seg in history.segments:
        groups: dict[tuple[str, int | None, int | None], dict[int, int]] = {}
        for a in history.attempts:
            if a.segment == seg.index and a.outcome not in ("crash-before", "refused"):
                visits = groups.setdefault((a.state, a.branch, a.item), {})
                visits[a.visit] = visits.get(a.visit, 0) + 1
        resumed_at = seg.rows_before[-1].state if seg.index and seg.rows_before else None
        next_carry: dict[tuple[str, int | None, int | None], int] = {}
        for short, visits in groups.items():
            first, last = min(visits), max(visits)
            for visit, n in visits.items():
                if across_crashes and visit == first and short[0] == resumed_at:
                    n += carry.get(short, 0)
                counts[(seg.index, short[0], short[1], short[2], visit)] = n
                if visit == last:
                    next_carry[short] = n
        carry = next_carry if seg.outcome == "crash" else {}
    for (seg_index, state, branch, item, _visit), n in counts.items():
        if state in limits and item is None:
            limit = limits[state]
        elif item is not None:
            continue  # batch items follow item_retry, not the task config
        else:
            limit = history.budgets.get((state, branch), 1)
        if n > limit:
            what = f"{state}" + (f" branch {branch}" if branch is not None else "")
            _fail(
                history,
                f"{what} made {n} attempts in one visit "
                f"({'run' if seg_index == 0 else f'resume {seg_index}'}); its budget is {limit}",
            )


def assert_join_consistent(history: History, state: Any = None, *, strategy: Any = None) -> None:
    """Each split visit (of ``state``, or every split) went on to its join state
    exactly when its strategy (``strategy``: what the user means; default the
    registered one) accepts the drawn branch outcomes."""
    label = _label(state) if state is not None else None
    for rec in history.splits:
        if label is not None and rec.state != label:
            continue
        seg = history.segments[rec.segment]
        if seg.outcome in ("crash", "hang"):
            continue
        strat: JoinStrategy = strategy if strategy is not None else rec.strategy
        successes = sum(1 for ok in rec.outcomes.values() if ok)
        if strat.kind == "partial_timeout":
            successes = len(rec.outcomes)
        expected = strat.is_satisfied(successes, rec.total)
        entered = seg.states_entered()
        positions = [i for i, s in enumerate(entered) if s == rec.state]
        visit = [r for r in history.splits if r.segment == rec.segment and r.state == rec.state]
        pos = positions[visit.index(rec)] if visit.index(rec) < len(positions) else None
        went_on = pos is not None and pos + 1 < len(entered) and entered[pos + 1] == rec.join_state
        if went_on != expected:
            outcomes = {i: "ok" if ok else "failed" for i, ok in sorted(rec.outcomes.items())}
            _fail(
                history,
                f"split {rec.state} with {strat!r}: branches {outcomes} of {rec.total}, so the "
                f"join should {'' if expected else 'not '}go on to {rec.join_state}, but it "
                f"{'did' if went_on else 'did not'}",
            )


def assert_terminates(history: History, within: float | None = None) -> None:
    """The run ended in an exit state or a cano error (never another exception, never
    a hang), within ``within`` virtual seconds when given."""
    seg = history.final
    if seg.outcome == "hang":
        _fail(history, f"the run did not end within {history.virtual_limit:g} virtual seconds")
    if seg.outcome == "crash":
        _fail(history, "the run was still crashing when the resumes ran out")
    if seg.outcome == "error" and not isinstance(seg.error, CanoError):
        _fail(history, f"the run ended with a non-cano error {type(seg.error).__name__}")
    elapsed = seg.ended_at
    if within is not None and elapsed > within:
        _fail(history, f"the run took {elapsed:g} virtual seconds, more than {within:g}")


# -- the state-machine base -------------------------------------------------------------


def _make_machine() -> type:
    _hypothesis()
    import hypothesis.stateful as stateful
    import hypothesis.strategies as st

    class WorkflowMachine(stateful.RuleBasedStateMachine):
        """A `hypothesis.stateful.RuleBasedStateMachine` over one workflow: each step
        changes the world the run meets (one more failing attempt, one more process
        death, a cancellation from outside, new delays of branches and items; virtual
        time moves on its own) and replays the run from the start
        under everything drawn so far; `check` then judges the new `History`.
        Hypothesis shrinks a failing sequence of steps to the shortest one.

        Subclass it, set ``workflow`` (a `Workflow`), ``initial`` and optionally
        ``backend`` (``"asyncio"`` or ``"trio"``) and ``start_plan`` (the world every
        run starts from, e.g. a step that always fails), override `check`, and expose
        ``MyMachine.TestCase`` to pytest. Add rules of your own with
        ``hypothesis.stateful.rule`` and `replay`."""

        workflow: Any = None
        initial: Any = None
        backend: str = "asyncio"
        start_plan: Plan = Plan()

        def __init__(self) -> None:
            super().__init__()
            self.plan = self.start_plan
            self.history: History | None = None

        def _strategy(self, which: str) -> Any:
            # built once per machine class: building a strategy costs far more than a run
            cache: dict[str, Any] = type(self).__dict__.get("_cano_strategies") or {}
            if not cache:
                cache["faults"] = fault_plans(self.workflow, max_faults=1)
                cache["crashes"] = crash_points(self.workflow, max_crashes=1)
                cache["timings"] = timings(self.workflow)
                cache["cancels"] = cancel_points(self.workflow, segments=3)
                type(self)._cano_strategies = cache
            return cache[which]

        def replay(self) -> History:
            """Run the workflow from the start under ``self.plan``; keep the history."""
            self.history = run_plan_sync(
                self.workflow,
                self.initial,
                self.plan,
                backend=self.backend,
                max_resumes=len(self.plan.crashes),
            )
            return self.history

        @stateful.rule(data=st.data())
        def fail_an_attempt(self, data: Any) -> None:
            """One more fault (an attempt raising, timing out, slow, refused)."""
            drawn = data.draw(self._strategy("faults"))
            p = self.plan
            self.plan = Plan(p.faults + tuple(drawn), p.crashes, p.delays, p.cancels)
            self.replay()

        @stateful.rule(data=st.data())
        def kill_the_process(self, data: Any) -> None:
            """One more process death (the run resumes after each one)."""
            drawn = data.draw(self._strategy("crashes"))
            p = self.plan
            self.plan = Plan(p.faults, p.crashes + tuple(drawn), p.delays, p.cancels)
            self.replay()

        @stateful.rule(data=st.data())
        def cancel_the_run(self, data: Any) -> None:
            """Cancel the run from outside (its token fires) at a drawn attempt."""
            drawn = data.draw(self._strategy("cancels"))
            p = self.plan
            self.plan = Plan(p.faults, p.crashes, p.delays, drawn)
            self.replay()

        @stateful.rule(data=st.data())
        def reorder_completions(self, data: Any) -> None:
            """New virtual delays for the split branches and batch items."""
            p = self.plan
            self.plan = Plan(p.faults, p.crashes, data.draw(self._strategy("timings")), p.cancels)
            self.replay()

        @stateful.invariant()
        def history_holds(self) -> None:
            """Calls `check` on the newest history (once the first step ran)."""
            if self.history is not None:
                self.check(self.history)

        def check(self, history: History) -> None:
            """Override with your invariants. The default: the run terminates and no
            state before a resume point runs again."""
            assert_terminates(history)
            assert_prefix_never_rerun(history)

    return WorkflowMachine


_MACHINE: type | None = None


def __getattr__(name: str) -> Any:
    global _MACHINE
    if name == "WorkflowMachine":
        if _MACHINE is None:
            _MACHINE = _make_machine()
        return _MACHINE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
