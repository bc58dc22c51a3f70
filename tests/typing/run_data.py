"""What run data gives a type checker (checked by test_typing.py, not run): tasks whose
hooks take the data register like the others, and `Workflow.run` types the result's
data from the ``data`` argument."""

from __future__ import annotations

import enum
from typing import Any

import attrs
from typing_extensions import assert_type

from cano_dsl import (
    Ok,
    Outcome,
    Resources,
    RunResult,
    StepOutcome,
    Workflow,
    batch,
    compensatable,
    router,
    stepped,
    task,
)


class Step(enum.Enum):
    LOAD = enum.auto()
    ROUTE = enum.auto()
    SUM = enum.auto()
    PAY = enum.auto()
    PAGES = enum.auto()
    DONE = enum.auto()


@attrs.define
class Order:
    total: int = 0
    pages: list[int] = attrs.Factory(list[int])


@task
async def load(res: Resources, data: Order) -> Step:
    data.total = 1
    return Step.ROUTE


@router
class Route:
    async def route(self, res: Resources, data: Order) -> Step:
        return Step.SUM if data.total else Step.DONE


@batch
class Sum:
    async def load(self, res: Resources, data: Order) -> list[int]:
        return data.pages

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Outcome[int]], data: Order) -> Step:
        data.total = sum(o.value for o in outputs if isinstance(o, Ok))
        return Step.PAY


@compensatable
class Pay:
    async def run(self, res: Resources, data: Order) -> tuple[Step, int]:
        return Step.PAGES, data.total

    async def compensate(self, res: Resources, output: int, data: Order) -> None:
        return None


@stepped
class Pages:
    async def step(self, res: Resources, cursor: int | None, data: Order) -> StepOutcome[int, Step]:
        data.pages.append(cursor or 0)
        return StepOutcome.done(Step.DONE)


wf = (
    Workflow(Resources())
    .with_run_data(Order)
    .register(Step.LOAD, load)
    .register_router(Step.ROUTE, Route())
    .register(Step.SUM, Sum())
    .register_with_compensation(Step.PAY, Pay())
    .register_stepped(Step.PAGES, Pages())
    .add_exit_state(Step.DONE)
)
assert_type(wf, Workflow[Step])


async def use() -> None:
    typed = await wf.run(Step.LOAD, data=Order())
    assert_type(typed, RunResult[Step, Order])
    assert_type(typed.data.total, int)
    untyped = await wf.run(Step.LOAD)
    assert_type(untyped, RunResult[Step, Any])
    resumed = await wf.resume("id")
    assert_type(resumed.state, Step)
