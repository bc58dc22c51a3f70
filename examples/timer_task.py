"""A 50 ms cool-down timer, then a processing step.

Run: python examples/timer_task.py
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import Resources, TimerOutcome, TimerTask, Workflow, task


class Step(enum.Enum):
    COOL_DOWN = enum.auto()
    PROCESS = enum.auto()
    DONE = enum.auto()


class CoolDown(TimerTask[Step]):
    async def wait(self, res: Resources) -> TimerOutcome:
        print("cooling down for 50 ms")
        return TimerOutcome.duration(0.05)

    async def after_wait(self, res: Resources) -> Step:
        print("cool-down over")
        return Step.PROCESS


@task
async def process() -> Step:
    print("processing")
    return Step.DONE


async def main() -> None:
    wf = (
        Workflow()
        .register(Step.COOL_DOWN, CoolDown())
        .register(Step.PROCESS, process)
        .add_exit_state(Step.DONE)
    )
    start = anyio.current_time()
    final = await wf.orchestrate(Step.COOL_DOWN)
    print(f"reached {final.name} after {anyio.current_time() - start:.3f} s")


if __name__ == "__main__":
    anyio.run(main)
