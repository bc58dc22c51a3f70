"""`@stepped` / `SteppedTask`: resumable iteration with a cursor (REFERENCE §3.5).

``step(res, cursor)`` does one bounded piece of work and returns
`StepOutcome.more(next_cursor)` or `StepOutcome.done(next_state)`. The first step gets
``cursor=None``.

Two ways to run it:

- `Workflow.register_stepped` (the engine's step loop, ``cano_dsl.workflow._stepped``):
  every ``step`` call goes through the retry loop on its own (a transient error retries
  the *same* cursor), each `more` cursor is appended to the checkpoint log as a
  ``STEP_CURSOR`` row when the workflow has a store and an id, and a resumed run hands
  the last committed cursor to the first step. Cursors travel as JSON, so the step
  always receives a JSON-decoded value (a tuple comes back as a list).
- `Workflow.register` (the companion task, `run_stepped`): an in-memory loop from
  ``None`` that is one attempt as a whole; a failure restarts from ``None``.
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import attrs

from .. import _metrics
from .._config import TaskConfig
from .._errors import TaskDefinitionError, TaskExecutionError
from .._resources import Resources
from .._state import S, S_co, TaskResult
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec, driver_data_invoker

__all__ = [
    "StepOutcome",
    "SteppedLike",
    "SteppedTask",
    "decode_cursor",
    "encode_cursor",
    "run_stepped",
    "stepped",
]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


@attrs.frozen(repr=False)
class StepOutcome(Generic[C_co, S_co]):
    """What one ``step`` produced: `more` (continue from ``cursor``) or `done` (go to
    ``result``)."""

    kind: Literal["more", "done"]
    cursor: C_co | None = None
    result: S_co | TaskResult[S_co] | None = None

    @classmethod
    def more(cls, cursor: C) -> StepOutcome[C, Any]:
        """Another step is needed, starting from ``cursor`` (JSON-serialisable)."""
        out: StepOutcome[C, Any] = cls("more", cursor, None)  # type: ignore[arg-type,assignment]
        return out

    @classmethod
    def done(cls, result: S | TaskResult[S]) -> StepOutcome[Any, S]:
        """The iteration is over; continue with ``result`` (a state or a TaskResult)."""
        if not isinstance(result, (enum.Enum, TaskResult)):
            raise TaskDefinitionError(
                f"StepOutcome.done takes a state (Enum member) or a TaskResult, got {result!r}"
            )
        out: StepOutcome[Any, S] = cls("done", None, result)  # type: ignore[arg-type,assignment]
        return out

    @property
    def is_more(self) -> bool:
        """Whether this is `more(...)`."""
        return self.kind == "more"

    @property
    def is_done(self) -> bool:
        """Whether this is `done(...)`."""
        return self.kind == "done"

    def __repr__(self) -> str:
        if self.kind == "more":
            return f"StepOutcome.more({self.cursor!r})"
        return f"StepOutcome.done({self.result!r})"


def encode_cursor(cursor: Any, what: str) -> bytes:
    """UTF-8 JSON of ``cursor``; `TaskExecutionError` ``"serialize {what}: ..."``."""
    try:
        return json.dumps(cursor, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TaskExecutionError(f"serialize {what}: {exc}") from exc


def decode_cursor(blob: bytes, what: str) -> Any:
    """The value of a JSON cursor blob; `TaskExecutionError` ``"deserialize {what}: ..."``."""
    try:
        return json.loads(blob)
    except (TypeError, ValueError) as exc:
        raise TaskExecutionError(f"deserialize {what}: {exc}") from exc


def check_step_outcome(task: Any, outcome: Any) -> StepOutcome[Any, Any]:
    if type(outcome) is not StepOutcome:
        raise TaskExecutionError(
            f"{type(task).__qualname__}.step must return a StepOutcome "
            f"(StepOutcome.more(cursor) or StepOutcome.done(state)), got {outcome!r}"
        )
    return outcome


STEP_MORE: _metrics.Labels = (("outcome", "more"),)
STEP_DONE: _metrics.Labels = (("outcome", "done"),)


async def run_stepped(s: Any, res: Resources, data: Any = None, hooks: Any = ()) -> Any:
    """The in-memory step loop from ``None``; returns the ``done`` result. With
    ``"step"`` in ``hooks``, ``step`` also gets the run ``data``."""
    step = s.step if "step" not in hooks else partial(_step_with, s.step, data)
    cursor: Any = None
    sink = _metrics.SINK
    while True:
        outcome = await step(res, cursor)
        if type(outcome) is not StepOutcome:
            check_step_outcome(s, outcome)
        if outcome.kind == "done":
            if sink is not None:
                sink.counter(_metrics.STEP_ITERATIONS_TOTAL, 1, STEP_DONE)
            return outcome.result
        if sink is not None:
            sink.counter(_metrics.STEP_ITERATIONS_TOTAL, 1, STEP_MORE)
        cursor = outcome.cursor


async def _step_with(step_fn: Any, data: Any, res: Resources, cursor: Any) -> Any:
    return await step_fn(res, cursor, data)


def _stepped_invoker(s: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return partial(run_stepped, s), True


STEPPED_SPEC = ModelSpec("stepped", required=("step",))


class SteppedLike(Protocol[S_co]):
    """What a type checker sees of a stepped task (a `SteppedTask` or a `@stepped`
    class)."""

    async def step(self, res: Resources, cursor: Any, /) -> StepOutcome[Any, S_co]:
        """Do one step from ``cursor``: `StepOutcome.more(cursor)` or `StepOutcome.done(state)`."""


class SteppedTask(Task[S], Generic[S, C]):
    """Resumable iteration: ``step(res, cursor)`` → `StepOutcome.more(cursor)` or
    `StepOutcome.done(state)`.

    Subclass it (``class Import(SteppedTask[Step, int])``) or decorate a plain class
    with `@stepped`. The default ``config`` is `TaskConfig.default()`; under
    `Workflow.register_stepped` it applies to each step.
    """

    __cano_model__: ClassVar[ModelSpec] = STEPPED_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    def config(self) -> TaskConfig:
        """Retries per step (register_stepped) or per whole loop (register)."""
        return TaskConfig.default()

    @abc.abstractmethod
    async def step(self, res: Resources, cursor: C | None) -> StepOutcome[C, S]:
        """Do one step from ``cursor`` (``None`` first); say whether more is needed."""

    async def run(self, res: Resources) -> NextState[S]:
        """The in-memory loop from ``None``, as `Workflow.register` runs it."""
        result: NextState[S] = await run_stepped(self, res)
        return result


STEPPED_SPEC = attrs.evolve(
    STEPPED_SPEC.bind(SteppedTask, _stepped_invoker),
    data_hooks={"step": 2},
    data_invoker=driver_data_invoker(run_stepped),
)
SteppedTask.__cano_model__ = STEPPED_SPEC

stepped = ModelDecorator(STEPPED_SPEC)
"""``@stepped`` / ``@stepped(state=Step, name=...)``: make a class a `SteppedTask` with
an async ``step`` returning a `StepOutcome` (its cursor can be checkpointed).
Checked at decoration time."""
