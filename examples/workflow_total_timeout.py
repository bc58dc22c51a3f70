"""Bounding a whole run with `with_total_timeout`.

    python examples/workflow_total_timeout.py

- a run that overruns its budget ends with a `StateFailure` of category
  ``"workflow_timeout"`` after its saga steps are rolled back;
- the rollback itself has a budget (``with_compensation_timeout``, default
  ``min(total / 2, 30 s)``); entries it cannot reach become `OrphanedCompensation`
  errors that keep their output for manual recovery;
- a compensatable step is never cut by the total timeout; if the state after it is an
  exit state the run still succeeds.
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import (
    CompensationFailed,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)


class Etl(enum.Enum):
    LOCK = enum.auto()
    EXPORT = enum.auto()
    DONE = enum.auto()


def lock(forward: float = 0.0, undo: float = 0.0) -> Any:
    @compensatable(state=Etl, config=TaskConfig.minimal(), name="lock")
    class Lock:
        async def run(self, res: Resources) -> tuple[Etl, str]:
            await anyio.sleep(forward)
            print("  lock: table locked")
            return Etl.EXPORT, "orders"

        async def compensate(self, res: Resources, output: str) -> None:
            await anyio.sleep(undo)
            print(f"  undo lock: {output} unlocked")

    return Lock()


@task(config=TaskConfig.minimal(), name="export")
async def slow_export(res: Resources) -> Etl:
    print("  export: running (takes 5 s)...")
    await anyio.sleep(5)
    return Etl.DONE


def workflow(step: Any, total: float) -> Workflow[Etl]:
    return (
        Workflow.bare()
        .register_with_compensation(Etl.LOCK, step)
        .register(Etl.EXPORT, slow_export)
        .add_exit_state(Etl.DONE)
        .with_total_timeout(total)
    )


async def main() -> None:
    print("export overruns a 0.2 s budget:")
    try:
        await workflow(lock(), 0.2).orchestrate(Etl.LOCK)
    except StateFailure as err:
        print(f"  -> {err.category} in {err.state.name}: {err}")
    print("same, but the unlock is slower than the rollback budget (0.05 s):")
    try:
        await workflow(lock(undo=1.0), 0.2).with_compensation_timeout(0.05).orchestrate(Etl.LOCK)
    except CompensationFailed as err:
        for e in err.errors[1:]:
            print(f"  -> {type(e).__name__}: {e}")
    print("the lock itself overruns, and the next state is the exit:")
    quick = (
        Workflow.bare()
        .register_with_compensation(Etl.LOCK, lock(forward=0.3))
        .add_exit_state(Etl.EXPORT)
        .with_total_timeout(0.1)
    )
    print(f"  -> {(await quick.orchestrate(Etl.LOCK)).name} (not cut, not timed out)")


if __name__ == "__main__":
    anyio.run(main)
