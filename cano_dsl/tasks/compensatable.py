"""`@compensatable` / `CompensatableTask`: a saga step (REFERENCE §3.7, §10).

``run(res)`` does the forward work and returns ``(next_state, output)``; the engine
JSON-encodes ``output``, records it (a completion row when a checkpoint store is
attached) and pushes it on the run's compensation stack. If the run later fails, the
stack is drained last-in first-out and ``compensate(res, output)`` receives the output
decoded back from JSON — also when the rollback happens in another process after a
crash, so ``compensate`` must be idempotent and ``output`` must survive a JSON round
trip (lists, dicts with string keys, strings, numbers, booleans, ``None``).

Register with `Workflow.register_with_compensation`; the compensator is found by
``name()``, which therefore must be unique in the workflow and stable across deploys.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from .._resources import Resources
from .._state import S, S_co
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec

__all__ = ["CompensatableLike", "CompensatableTask", "compensatable"]

O = TypeVar("O")  # noqa: E741


def _compensatable_invoker(t: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return t.run, True


COMPENSATABLE_SPEC = ModelSpec(
    "compensatable", required=("run", "compensate"), returns=("run",), returns_tuple=True
)


class CompensatableLike(Protocol[S_co]):
    """What a type checker sees of a saga step (a `CompensatableTask` or a
    `@compensatable` class): ``run`` gives the next state and an output,
    ``compensate`` takes that output back."""

    async def run(self, res: Resources, /) -> tuple[NextState[S_co], Any]:
        """Do the work; return ``(next_state, output)``, the output JSON-serialisable."""

    async def compensate(self, res: Resources, output: Any, /) -> None:
        """Undo the work ``run`` did, given its (JSON round-tripped) output."""


class CompensatableTask(Task[S], Generic[S, O]):
    """A saga step: ``run`` does something that ``compensate`` can undo.

    Subclass it (``class Reserve(CompensatableTask[Step, dict])``) or decorate a plain
    class with `@compensatable`. ``config()`` defaults to `TaskConfig.default()`; its
    ``attempt_timeout`` bounds each forward ``run`` and each ``compensate`` call.
    Compensators are never retried.

    Saga safety: commit the side effect as the last thing before returning. A run that
    raises after committing leaves nothing on the stack to undo.
    """

    __cano_model__: ClassVar[ModelSpec] = COMPENSATABLE_SPEC
    _cano_model_base: ClassVar[bool] = True

    @abc.abstractmethod
    async def run(self, res: Resources) -> tuple[NextState[S], O]:  # type: ignore[override]
        """Do the forward work; return the next state and what ``compensate`` needs."""

    @abc.abstractmethod
    async def compensate(self, res: Resources, output: O) -> None:
        """Undo the work described by ``output`` (its JSON round trip). Idempotent."""


def _compensatable_data_invoker(t: Any, hooks: Any) -> Callable[..., Awaitable[Any]]:
    return t.run  # type: ignore[no-any-return]


COMPENSATABLE_SPEC = attrs.evolve(
    COMPENSATABLE_SPEC.bind(CompensatableTask, _compensatable_invoker),
    data_hooks={"run": 1, "compensate": 2},
    data_invoker=_compensatable_data_invoker,
)
CompensatableTask.__cano_model__ = COMPENSATABLE_SPEC

compensatable = ModelDecorator(COMPENSATABLE_SPEC)
"""``@compensatable`` / ``@compensatable(state=Step, name=...)``: make a class a
`CompensatableTask` with async ``run`` and ``compensate`` (the saga's undo step).
Checked at decoration time."""
