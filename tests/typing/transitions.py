"""What ``to=`` and ``Literal`` return annotations give a type checker (checked by
test_typing.py, not run): the precise task types stay."""

from __future__ import annotations

import enum
from typing import Literal

from typing_extensions import assert_type

from cano_dsl import FunctionTask, Resources, TaskConfig, Workflow, router, task


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


@task(to=(Step.B, Step.C))
async def fetch(res: Resources) -> Step:
    return Step.B


@task(to=Step.DONE, config=TaskConfig.minimal(), name="bare")
async def bare() -> Step:
    return Step.DONE


@task(state=Step, to=[Step.B])
async def stated(res: Resources) -> Step:
    return Step.B


@task
async def literal() -> Literal[Step.B, Step.C]:
    return Step.C


@router(to=(Step.B, Step.C))
class Route:
    async def route(self, res: Resources) -> Step:
        return Step.B


assert_type(fetch, FunctionTask[Step])
assert_type(bare, FunctionTask[Step])
assert_type(stated, FunctionTask[Step])
assert_type(Route(), Route)
# a Literal annotation keeps its precise type, and still registers in a Workflow[Step]
assert_type(literal, FunctionTask[Literal[Step.B, Step.C]])

wf = (
    Workflow()
    .register(Step.A, fetch)
    .register(Step.B, literal)
    .register_router(Step.C, Route())
    .add_exit_state(Step.DONE)
)
assert_type(wf, Workflow[Step])


# `state=` and the return annotation must still agree with `to=` given
class Other(enum.Enum):
    X = enum.auto()


@task(state=Other, to=(Other.X,))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType, reportCallIssue, reportUntypedFunctionDecorator]
async def disagrees(res: Resources) -> Step:
    return Step.DONE
