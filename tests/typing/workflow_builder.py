"""What the `Workflow` builder and run methods give a type checker (checked by
test_typing.py, not run)."""

from __future__ import annotations

import enum

from typing_extensions import assert_type

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    Resources,
    RouterTask,
    Unbound,
    Workflow,
    router,
    task,
)


class Step(enum.Enum):
    FETCH = enum.auto()
    ROUTE = enum.auto()
    FAN = enum.auto()
    DONE = enum.auto()


class Other(enum.Enum):
    X = enum.auto()
    Y = enum.auto()


@task
async def fetch(res: Resources) -> Step:
    return Step.ROUTE


@task
async def elsewhere(res: Resources) -> Other:
    return Other.Y


@task
async def branch(res: Resources) -> int:
    return 1


@router
class Route:
    async def route(self, res: Resources) -> Step:
        return Step.FAN


class Pick(RouterTask[Step]):
    async def route(self, res: Resources) -> Step:
        return Step.FAN


# -- the state type is inferred: no annotation, no `state=` ---------------------------

assert_type(Workflow(Resources()), Workflow[Unbound])
assert_type(Workflow.bare(), Workflow[Unbound])
assert_type(Workflow(Resources(), state=Step), Workflow[Step])
assert_type(Workflow(state=Step), Workflow[Step])

wf = (
    Workflow(Resources())
    .register(Step.FETCH, fetch)
    .register_router(Step.ROUTE, Route())
    .register_split(Step.FAN, [branch, branch], JoinConfig(JoinStrategy.all(), Step.DONE))
    .add_exit_state(Step.DONE)
)
assert_type(wf, Workflow[Step])

# any first call binds it: an exit state, a router, a list of exit states
assert_type(Workflow(Resources()).add_exit_state(Step.DONE), Workflow[Step])
assert_type(Workflow(Resources()).add_exit_states([Step.DONE]), Workflow[Step])
assert_type(Workflow(Resources()).register_router(Step.ROUTE, Pick()), Workflow[Step])
assert_type(Workflow(Resources()).with_total_timeout(5).register(Step.FETCH, fetch), Workflow[Step])


def build() -> Workflow[Step]:
    return Workflow(Resources()).register(Step.FETCH, fetch).add_exit_state(Step.DONE)


# -- the run methods return the state type ---------------------------------------------

assert_type(wf.run_sync(Step.FETCH), Step)
assert_type(wf.run_sync(Step.FETCH, backend="trio"), Step)


async def run() -> None:
    assert_type(await wf.orchestrate(Step.FETCH), Step)
    assert_type(await wf.resume_from("order-1"), Step)
    assert_type(await wf.execute_flow(Step.FETCH), Step)
    assert_type(wf.registered_states(), list[Step])
    assert_type(wf.exit_states, tuple[Step, ...])


# -- mistakes are type errors ----------------------------------------------------------

wf.register(Step.FETCH, elsewhere)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register(Other.X, fetch)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.add_exit_state(Other.Y)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register_router(Step.ROUTE, fetch)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register_split(Step.FAN, [branch], JoinConfig(JoinStrategy.all(), Other.Y))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.run_sync(Other.X)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
build().register(Step.FETCH, elsewhere)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Workflow(Resources(), state=Step).register(Step.FETCH, elsewhere)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Workflow(Resources(), state=Other).add_exit_state(Step.DONE)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
wf.register(Step.FETCH, Route)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]  # the class, not an instance
