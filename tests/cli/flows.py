"""Workflows the CLI tests drive through ``python -m cano_dsl`` (this folder is put on
PYTHONPATH). Behaviour is steered by environment variables so one module serves every
test: CANO_CLI_SLOW picks the router's slow branch, CANO_CLI_FAIL makes CHARGE fail,
CANO_CLI_HANG makes CHARGE wait (for Ctrl-C)."""

from __future__ import annotations

import enum
import os

import anyio

from cano_dsl import MemoryStore, Resources, RetryMode, TaskConfig, Workflow, router, task
from cano_dsl.workflow import JoinConfig, JoinStrategy


class Step(enum.Enum):
    START = enum.auto()
    CHECK = enum.auto()
    FAST = enum.auto()
    SLOW = enum.auto()
    FAN = enum.auto()
    MERGE = enum.auto()
    CHARGE = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


@task(config=TaskConfig.minimal(), name="start")
async def start() -> Step:
    return Step.CHECK


@router(state=Step)
class Check:
    async def route(self, res: Resources) -> Step:
        return Step.SLOW if os.environ.get("CANO_CLI_SLOW") else Step.FAST

    def name(self) -> str:
        return "check"


@task(state=Step)
class Forward:
    """Goes to the state it was built with (an edge the graph reads from attributes)."""

    def __init__(self, target: Step, label: str) -> None:
        self.target = target
        self.label = label

    async def run_bare(self) -> Step:
        return self.target

    def name(self) -> str:
        return self.label

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()


@task(config=TaskConfig.minimal(), name="branch")
async def branch() -> Step:
    return Step.MERGE  # ignored: a split's branches do not route


@task(state=Step)
class Merge:
    async def run(self, res: Resources) -> Step:
        if self._bad(res):
            return Step.FAILED
        return Step.DONE

    def _bad(self, res: Resources) -> bool:
        return False

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()


def build_pipeline() -> Workflow[Step]:
    return (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Step.START, start)
        .register_router(Step.CHECK, Check())
        .register(Step.FAST, Forward(Step.FAN, "fast"))
        .register(Step.SLOW, Forward(Step.FAN, "slow"))
        .register_split(Step.FAN, [branch, branch], JoinConfig(JoinStrategy.all(), Step.MERGE))
        .register(Step.MERGE, Merge())
        .add_exit_states([Step.DONE, Step.FAILED])
    )


pipeline = build_pipeline()


@task(config=TaskConfig.minimal(), name="charge")
async def charge() -> Step:
    if os.environ.get("CANO_CLI_HANG"):
        await anyio.sleep(600)
    if os.environ.get("CANO_CLI_FAIL"):
        raise ConnectionError("payment gateway down")
    return Step.DONE


payments = (
    Workflow.bare()
    .register(Step.START, Forward(Step.CHARGE, "reserve"))
    .register(Step.CHARGE, charge)
    .add_exit_state(Step.DONE)
)

no_exit = Workflow.bare().register(Step.START, start)

not_a_workflow = 42


def needs_argument(x: int) -> Workflow[Step]:
    return pipeline


def returns_other() -> int:
    return 7


ATTEMPTS = {"flaky": 0}


@task(config=TaskConfig().with_retry(RetryMode.fixed(3, 0.01)), name="flaky")
async def flaky() -> Step:
    ATTEMPTS["flaky"] += 1
    if ATTEMPTS["flaky"] < 3:
        raise ConnectionError(f"flaky attempt {ATTEMPTS['flaky']}")
    return Step.DONE


retrying = (
    Workflow.bare()
    .register(Step.START, Forward(Step.CHARGE, "reserve"))
    .register(Step.CHARGE, flaky)
    .add_exit_state(Step.DONE)
)

twice = payments.register(Step.CHARGE, Forward(Step.DONE, "done")).register(Step.DONE, start)


@task(config=TaskConfig.minimal(), name="wait")
async def wait_branch() -> None:
    await anyio.sleep(600)


hanging_split = (
    Workflow.bare()
    .register(Step.START, Forward(Step.FAN, "fan out"))
    .register_split(Step.FAN, [wait_branch, wait_branch], JoinConfig(JoinStrategy.all(), Step.DONE))
    .add_exit_state(Step.DONE)
)
