"""Workflow definitions the fleet tests' workers serve (imported in child processes).

``steps`` (A → B → C → DONE): each state appends ``run_id state pid`` to the file named
by ``CANO_FLEET_TEST_LOG`` (when set) and sleeps ``CANO_FLEET_TEST_SLEEP`` seconds, so a
test can see which states ran where and how often. ``fails`` fails in B. ``saga``:
a compensatable step, then a state that waits long enough to be cancelled.
"""

from __future__ import annotations

import enum
import os
from typing import Any

import anyio

from cano_dsl import TaskConfig, Workflow, task
from cano_dsl.fleet import Registry


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


def _note(line: str) -> None:
    path = os.environ.get("CANO_FLEET_TEST_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()


def _steps(fail_in: Step | None = None) -> Workflow[Step]:
    def make(state: Step, nxt: Step) -> Any:
        @task(config=TaskConfig.minimal(), name=state.name)
        async def body(res: Any) -> Step:
            _note(f"{state.name} {os.getpid()}")
            await anyio.sleep(float(os.environ.get("CANO_FLEET_TEST_SLEEP", "0")))
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


registry = Registry()
registry.register("steps", _steps)
registry.register("fails", lambda: _steps(Step.B))
