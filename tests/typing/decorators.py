"""What the decorators give a type checker (checked by test_typing.py, not run)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

from typing_extensions import assert_type

from cano_dsl import (
    BatchTask,
    CloseReason,
    FunctionTask,
    Outcome,
    PollOutcome,
    Resources,
    RetryMode,
    StepOutcome,
    TaskConfig,
    TaskResult,
    TimerOutcome,
    WindowSignal,
    Workflow,
    batch,
    compensatable,
    poll,
    router,
    stepped,
    stream,
    task,
    timer,
)


class Step(enum.Enum):
    FETCH = enum.auto()
    DONE = enum.auto()


class Other(enum.Enum):
    X = enum.auto()
    Y = enum.auto()


# -- @task on functions: a FunctionTask typed by the returned Enum --------------------


@task
async def fetch(res: Resources) -> Step:
    return Step.DONE


@task
async def bare() -> Step:
    return Step.DONE


@task(config=TaskConfig.minimal())
async def configured(res: Resources) -> Step:
    return Step.DONE


@task(name="result")
async def returns_result() -> TaskResult[Step]:
    return TaskResult.single(Step.DONE)


@task(state=Step, config=TaskConfig.minimal(), name="declared")
async def declared(res: Resources) -> Step | TaskResult[Step]:
    return Step.DONE


@task
async def branch(res: Resources) -> None:  # a split branch: its value is not a state
    return None


assert_type(fetch, FunctionTask[Step])
assert_type(bare, FunctionTask[Step])
assert_type(configured, FunctionTask[Step])
assert_type(returns_result, FunctionTask[Step])
assert_type(declared, FunctionTask[Step])


async def call_it(res: Resources) -> None:
    assert_type(await fetch(res), Step | TaskResult[Step])


# `state=` and the return annotation must agree
@task(state=Other)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType, reportCallIssue, reportUntypedFunctionDecorator]
async def disagrees(res: Resources) -> Step:
    return Step.DONE


@task(state=Other, name="bare")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType, reportCallIssue, reportUntypedFunctionDecorator]
async def disagrees_bare() -> TaskResult[Step]:
    return TaskResult.single(Step.DONE)


# -- class decorators keep the class's own type ------------------------------------------


@task
class Fetch:
    async def run(self, res: Resources) -> Step:
        return Step.DONE


@task(state=Step, config=TaskConfig.minimal())
class FetchBare:
    async def run_bare(self) -> Step:
        return Step.DONE


@router
class Route:
    async def route(self, res: Resources) -> Step:
        return Step.DONE


@poll(state=Step)
class Ready:
    async def poll(self, res: Resources) -> PollOutcome[Step]:
        return PollOutcome.ready(Step.DONE)


@timer
class Later:
    async def wait(self, res: Resources) -> TimerOutcome:
        return TimerOutcome.duration(0.01)

    async def after_wait(self, res: Resources) -> Step:
        return Step.DONE


@batch(state=Step)
class Squares:
    concurrency = 2  # on a decorated plain class an attribute is fine

    async def load(self, res: Resources) -> list[int]:
        return [1, 2, 3]

    async def process_item(self, item: int) -> int:
        return item * item

    async def finish(self, res: Resources, outputs: list[Outcome[int]]) -> Step:
        return Step.DONE


@stepped
class Pages:
    async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
        if cursor == 3:
            return StepOutcome.done(Step.DONE)
        return StepOutcome.more((cursor or 0) + 1)


@stream
class Readings:
    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[float]:
        yield 1.0

    async def process_item(self, res: Resources, item: float) -> tuple[float, int]:
        return item, 1

    async def flush_window(self, res: Resources, outputs: list[float]) -> WindowSignal[Step]:
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        return Step.DONE


@compensatable
class Reserve:
    async def run(self, res: Resources) -> tuple[Step, list[str]]:
        return Step.DONE, ["seat-1"]

    async def compensate(self, res: Resources, output: list[str]) -> None:
        return None


assert_type(Fetch(), Fetch)
assert_type(FetchBare(), FetchBare)
assert_type(Route(), Route)
assert_type(Ready(), Ready)
assert_type(Later(), Later)
assert_type(Squares(), Squares)
assert_type(Pages(), Pages)
assert_type(Readings(), Readings)
assert_type(Reserve(), Reserve)


# -- subclasses: the generic bases carry the state type -------------------------------


class Sum(BatchTask[Step, int, int]):
    def concurrency(self) -> int:  # an optional member as a method ...
        return 4

    item_retry = RetryMode.fixed(2, 0.01)  # ... or as a plain attribute

    async def load(self, res: Resources) -> list[int]:
        return [1, 2]

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Outcome[int]]) -> Step:
        return Step.DONE


async def run_sum(res: Resources) -> None:
    assert_type(await Sum().run(res), Step | TaskResult[Step])


# -- the outcome helpers carry the state too -------------------------------------------

assert_type(TaskResult.single(Step.DONE), TaskResult[Step])
assert_type(TaskResult.split([Step.FETCH, Step.DONE]), TaskResult[Step])
assert_type(PollOutcome.ready(Step.DONE), PollOutcome[Step])
assert_type(WindowSignal.stop(Step.DONE), WindowSignal[Step])
assert_type(TaskResult.single(Step.DONE).state, Step)


# -- every decorated class registers where its model belongs, typed by its hooks ------

wf = (
    Workflow(Resources())
    .register(Step.FETCH, Fetch())
    .register(Step.FETCH, FetchBare())
    .register(Step.FETCH, Route())
    .register(Step.FETCH, Ready())
    .register(Step.FETCH, Later())
    .register(Step.FETCH, Squares())
    .register(Step.FETCH, Pages())
    .register(Step.FETCH, Readings())
    .register(Step.FETCH, Sum())
    .register_router(Step.FETCH, Route())
    .register_stepped(Step.FETCH, Pages())
    .register_stream(Step.FETCH, Readings())
    .register_with_compensation(Step.FETCH, Reserve())
    .add_exit_state(Step.DONE)
)
assert_type(wf, Workflow[Step])
assert_type(Workflow(Resources()).register_stepped(Step.FETCH, Pages()), Workflow[Step])
assert_type(Workflow(Resources()).register_stream(Step.FETCH, Readings()), Workflow[Step])
assert_type(Workflow(Resources()).register_with_compensation(Step.FETCH, Reserve()), Workflow[Step])

# a model registered where it does not belong, or in a workflow of another Enum
wf.register_with_compensation(Step.FETCH, Squares())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register_stepped(Step.FETCH, Readings())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register_stream(Step.FETCH, Pages())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Workflow(Resources(), state=Other).register(Other.X, Squares())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Workflow(Resources(), state=Other).register(Other.X, Ready())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
