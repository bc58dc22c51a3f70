"""Scheduler: an interval flow, a cron flow and a manual flow side by side.

Run with: python examples/scheduler_scheduling.py

- "cleanup" runs at once, then 0.4 s after each run ends (`every`);
- "report" runs on the cron expression ``* * * * * *`` (every second, UTC);
- "export" runs only when triggered (`manual`).

All three share one `MemoryStore` through their workflows' `Resources`; the block
lasts about 1.3 s, then leaving it stops the scheduler gracefully.
"""

from __future__ import annotations

import enum
import time

import anyio

from cano_dsl import MemoryStore, Resources, Scheduler, TaskConfig, Workflow, task

START = time.perf_counter()


def stamp() -> str:
    return f"[{time.perf_counter() - START:4.1f}s]"


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class Count:
    """Counts its runs in the shared store."""

    def __init__(self, key: str, work: float) -> None:
        self.key = key
        self.work = work

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Step:
        store = res.get("store", MemoryStore)
        await anyio.sleep(self.work)  # pretend to work
        store.put(self.key, store.get(self.key, int) + 1 if self.key in store else 1)
        print(f"{stamp()} {self.key} run #{store.get(self.key)} done")
        return Step.DONE


async def main() -> None:
    store = MemoryStore()
    res = Resources().insert("store", store)

    def flow(key: str, work: float) -> Workflow[Step]:
        return Workflow(res).register(Step.START, Count(key, work)).add_exit_state(Step.DONE)

    sched = (
        Scheduler()
        .every("cleanup", flow("cleanup", 0.1), Step.START, 0.4)
        .cron("report", flow("report", 0.05), Step.START, "* * * * * *")
        .manual("export", flow("export", 0.05), Step.START)
    )
    print("=== Scheduler: interval, cron and manual flows ===\n")
    async with sched.start() as running:
        await anyio.sleep(0.5)
        print(f"{stamp()} triggering export by hand")
        await running.trigger("export")
        await anyio.sleep(0.8)
        print()
        for info in running.list():
            print(f"  {info.id:8} {info.status.name:9} runs={info.run_count}")

    assert store.get("cleanup", int) >= 2
    assert store.get("report", int) >= 1
    assert store.get("export", int) == 1
    print("\nDone")


if __name__ == "__main__":
    anyio.run(main)
