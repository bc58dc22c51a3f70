"""Failure isolation: what happens when user code blows up in unexpected places.

    python examples/panic_safety.py

- a task raising an unexpected exception ends the run with a `StateFailure` naming the
  state, the attempt and the path (a `ZeroDivisionError` is just a task failure);
- an observer hook that raises is logged and ignored — the run is unaffected;
- a compensator that raises does not stop the rollback: the others still run and the
  errors are collected in `CompensationFailed`;
- ``KeyboardInterrupt`` / ``SystemExit`` and the backend's cancellation are never
  caught, retried or wrapped.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import anyio

from cano_dsl import (
    CompensationFailed,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    compensatable,
    task,
)

logging.basicConfig(level=logging.CRITICAL)  # keep the isolated observer error quiet


class Calc(enum.Enum):
    OPEN = enum.auto()
    LOCK = enum.auto()
    DIVIDE = enum.auto()
    DONE = enum.auto()


class BrokenObserver(WorkflowObserver):
    def on_state_enter(self, state: str) -> None:
        raise RuntimeError("observer bug")


def step(name: str, nxt: Calc, undo_fails: bool) -> Any:
    @compensatable(state=Calc, config=TaskConfig.minimal(), name=name)
    class Step:
        async def run(self, res: Resources) -> tuple[Calc, str]:
            print(f"  {name}: done")
            return nxt, name

        async def compensate(self, res: Resources, output: str) -> None:
            if undo_fails:
                raise KeyError(f"undo of {output} hit a bug")
            print(f"  undo {output}: done")

    return Step()


@task(config=TaskConfig().with_fixed_retry(2, 0.01), name="divide")
async def divide(res: Resources) -> Calc:
    ratio = res.get("numerator") / res.get("denominator")
    print(f"  divide: {ratio}")
    return Calc.DONE


def workflow(undo_fails: bool) -> Workflow[Calc]:
    return (
        Workflow(Resources().insert("numerator", 1).insert("denominator", 0))
        .register_with_compensation(Calc.OPEN, step("open", Calc.LOCK, False))
        .register_with_compensation(Calc.LOCK, step("lock", Calc.DIVIDE, undo_fails))
        .register(Calc.DIVIDE, divide)
        .add_exit_state(Calc.DONE)
        .with_observer(BrokenObserver())
    )


async def main() -> None:
    print("a task bug, clean rollback (the broken observer changes nothing):")
    try:
        await workflow(False).orchestrate(Calc.OPEN)
    except StateFailure as err:
        print(f"  -> {err}")
        print(f"     category={err.category}, cause={type(err.error).__name__}")
    print("a task bug and a compensator bug:")
    try:
        await workflow(True).orchestrate(Calc.OPEN)
    except CompensationFailed as err:
        print(f"  -> CompensationFailed with {len(err.errors)} errors:")
        for e in err.errors:
            print(f"     {type(e).__name__}: {e}")


if __name__ == "__main__":
    anyio.run(main)
