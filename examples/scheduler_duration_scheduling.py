"""Interval scheduling with durations: floats, `timedelta`s and the helpers.

Run with: python examples/scheduler_duration_scheduling.py

`every(id, wf, initial, interval)` takes float seconds or a `datetime.timedelta`;
`every_seconds` / `every_minutes` / `every_hours` spell the unit out. An interval
flow runs at once, then ``interval`` after each run *ends*, so a run taking 0.1 s on
a 0.25 s interval starts about every 0.35 s.
"""

from __future__ import annotations

import datetime
import enum
import time

import anyio

from cano_dsl import Scheduler, TaskConfig, Workflow, task

START = time.perf_counter()


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class Tick:
    def __init__(self, label: str, work: float = 0.0) -> None:
        self.label = label
        self.work = work
        self.starts: list[float] = []

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        self.starts.append(time.perf_counter() - START)
        await anyio.sleep(self.work)
        return Step.DONE


def flow(t: Tick) -> Workflow[Step]:
    return Workflow.bare().register(Step.START, t).add_exit_state(Step.DONE)


async def main() -> None:
    fast = Tick("fast (0.2 s float)")
    slow = Tick("td (timedelta 500 ms, runs 0.1 s)", work=0.1)
    helper = Tick("every_seconds(0.75)")
    hourly = Tick("every_hours(1)")
    sched = (
        Scheduler()
        .every("fast", flow(fast), Step.START, 0.2)
        .every("td", flow(slow), Step.START, datetime.timedelta(milliseconds=500))
        .every_seconds("helper", flow(helper), Step.START, 0.75)
        .every_hours("hourly", flow(hourly), Step.START, 1)
    )
    print("=== Interval scheduling with durations ===\n")
    async with sched.start():
        await anyio.sleep(1.2)
    for t in (fast, slow, helper, hourly):
        print(f"  {t.label:36} runs={len(t.starts)}  starts={[round(s, 2) for s in t.starts]}")
    assert len(fast.starts) >= len(slow.starts) >= 2 and len(helper.starts) >= 1
    assert len(hourly.starts) == 1  # the immediate first run only
    print("\nDone")


if __name__ == "__main__":
    anyio.run(main)
