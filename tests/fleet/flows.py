"""Workflow definitions the fleet tests' workers serve (imported in child processes).

``steps`` (A → B → C → DONE): each state appends ``run_id state pid`` to the file named
by ``CANO_FLEET_TEST_LOG`` (when set) and sleeps ``CANO_FLEET_TEST_SLEEP`` seconds (or
the run data's ``"sleep"``), so a test can see which states ran, where and how often.
``fails`` fails in B. ``mixed``: a task, a stepped state and a split. ``saga``: A is compensatable (its compensation is logged as
``run_id undo-A pid``), then B sleeps (the run data's ``"sleep"``) so it can be
cancelled.
"""

from __future__ import annotations

import enum
import os
from typing import Any

import anyio

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    StepOutcome,
    TaskConfig,
    Workflow,
    compensatable,
    stepped,
    task,
)
from cano_dsl.fleet import Registry, RunRecord


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


def note(line: str) -> None:
    """Append ``line`` to the test's log file (one ``write``: lines never interleave)."""
    path = os.environ.get("CANO_FLEET_TEST_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def _sleep_of(run: RunRecord) -> float:
    if isinstance(run.data, dict) and "sleep" in run.data:
        return float(run.data["sleep"])
    return float(os.environ.get("CANO_FLEET_TEST_SLEEP", "0"))


def _steps(run: RunRecord, fail_in: Step | None = None) -> Workflow[Step]:
    def make(state: Step, nxt: Step) -> Any:
        @task(config=TaskConfig.minimal(), name=state.name)
        async def body(res: Any) -> Step:
            note(f"{run.run_id} {state.name} {os.getpid()}")
            await anyio.sleep(_sleep_of(run))
            if state is fail_in:
                raise RuntimeError(f"boom in {state.name}")
            return nxt

        return body

    return (
        Workflow.bare()
        .register(Step.A, make(Step.A, Step.B))
        .register(Step.B, make(Step.B, Step.C))
        .register(Step.C, make(Step.C, Step.DONE))
        .add_exit_state(Step.DONE)
    )


def _saga(run: RunRecord) -> Workflow[Step]:
    @compensatable(state=Step, config=TaskConfig.minimal(), name="A")
    class Reserve:
        async def run(self, res: Any) -> tuple[Step, int]:
            note(f"{run.run_id} A {os.getpid()}")
            return Step.B, 1

        async def compensate(self, res: Any, output: int) -> None:
            note(f"{run.run_id} undo-A {os.getpid()}")

    @task(config=TaskConfig.minimal(), name="B")
    async def wait(res: Any) -> Step:
        note(f"{run.run_id} B {os.getpid()}")
        await anyio.sleep(_sleep_of(run))
        return Step.DONE

    return (
        Workflow.bare()
        .register_with_compensation(Step.A, Reserve())
        .register(Step.B, wait)
        .add_exit_state(Step.DONE)
    )


def _mixed(run: RunRecord) -> Workflow[Step]:
    """A (task) → B (stepped: B0, B1, B2, each checkpointed) → C (a split of two
    branches joining to DONE)."""

    @task(config=TaskConfig.minimal(), name="A")
    async def first(res: Any) -> Step:
        note(f"{run.run_id} A {os.getpid()}")
        await anyio.sleep(_sleep_of(run))
        return Step.B

    @stepped(state=Step, config=TaskConfig.minimal(), name="B")
    class Pages:
        async def step(self, res: Any, cursor: int | None) -> StepOutcome[int, Step]:
            page = cursor or 0
            if page == 3:
                return StepOutcome.done(Step.C)
            note(f"{run.run_id} B{page} {os.getpid()}")
            await anyio.sleep(_sleep_of(run))
            return StepOutcome.more(page + 1)

    def branch(i: int) -> Any:
        @task(config=TaskConfig.minimal(), name=f"C{i}")
        async def body(res: Any) -> Step:
            note(f"{run.run_id} C {os.getpid()}")
            await anyio.sleep(_sleep_of(run))
            return Step.DONE

        return body

    return (
        Workflow.bare()
        .register(Step.A, first)
        .register_stepped(Step.B, Pages())
        .register_split(Step.C, [branch(0), branch(1)], JoinConfig(JoinStrategy.all(), Step.DONE))
        .add_exit_state(Step.DONE)
    )


def _data(run: RunRecord) -> Workflow[Step]:
    """A → B → C → DONE with run data (a dict): each state appends its name to
    ``data["trail"]`` (and logs it), so the final data shows which states' changes
    were kept across resumes."""

    def make(state: Step, nxt: Step) -> Any:
        @task(config=TaskConfig.minimal(), name=state.name)
        async def body(res: Any, data: dict[str, Any]) -> Step:
            note(f"{run.run_id} {state.name} {os.getpid()}")
            data.setdefault("trail", []).append(state.name)
            await anyio.sleep(_sleep_of(run))
            return nxt

        return body

    return (
        Workflow.bare()
        .register(Step.A, make(Step.A, Step.B))
        .register(Step.B, make(Step.B, Step.C))
        .register(Step.C, make(Step.C, Step.DONE))
        .add_exit_state(Step.DONE)
        .with_run_data(dict)
    )


registry = Registry()
registry.register("steps", _steps)
registry.register("fails", lambda run: _steps(run, Step.B))
registry.register("saga", _saga)
registry.register("mixed", _mixed)
registry.register("data", _data)
