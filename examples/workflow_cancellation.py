"""Cancelling a run with a `CancellationToken`.

    python examples/workflow_cancellation.py

- a token fired mid-task interrupts the task at its next await, rolls back completed
  saga steps and ends the run with a `StateFailure` of category ``"cancelled"``;
- a compensatable step is never interrupted: it finishes, its output is recorded, and
  the cancel is seen at the next state;
- a token fired before the run starts means no task runs at all.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import (
    CancellationToken,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)


class Job(enum.Enum):
    BOOK = enum.auto()
    CRUNCH = enum.auto()
    DONE = enum.auto()


@compensatable(state=Job, config=TaskConfig.minimal(), name="book")
class Book:
    async def run(self, res: Resources) -> tuple[Job, str]:
        await anyio.sleep(0.2)  # a cancel fired now waits for this to finish
        print("  book: slot reserved")
        return Job.CRUNCH, "slot-3"

    async def compensate(self, res: Resources, output: str) -> None:
        print(f"  undo book: released {output}")


@task(config=TaskConfig.minimal(), name="crunch")
async def crunch(res: Resources) -> Job:
    print("  crunch: working...")
    await anyio.sleep(10)
    return Job.DONE


WF = (
    Workflow.bare()
    .register_with_compensation(Job.BOOK, Book())
    .register(Job.CRUNCH, crunch)
    .add_exit_state(Job.DONE)
)


async def run_and_cancel_after(delay: float) -> None:
    token = CancellationToken()

    async def fire() -> None:
        await anyio.sleep(delay)
        print(f"  (token fired at {delay:.2f} s)")
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire)
        try:
            await WF.orchestrate(Job.BOOK, cancel=token)
        except StateFailure as err:
            print(f"  -> {err.category} in {err.state.name}, path {[s.name for s in err.path]}")


async def main() -> None:
    print("cancel while crunching:")
    await run_and_cancel_after(0.3)
    print("cancel while booking (the booking completes first):")
    await run_and_cancel_after(0.05)
    print("token fired before the run:")
    token = CancellationToken()
    token.cancel()
    try:
        await WF.orchestrate(Job.BOOK, cancel=token)
    except StateFailure as err:
        print(f"  -> {err.category}; no task ran, path {err.path}")


if __name__ == "__main__":
    anyio.run(main)
