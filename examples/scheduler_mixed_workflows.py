"""A manual flow and two interval flows under one scheduler, with status snapshots.

    python examples/scheduler_mixed_workflows.py

Port of cano's ``scheduler_mixed_workflows`` example (which waits 5 s for flows on 2 s
and 3 s intervals; the intervals here are 0.4 s and 0.6 s so it finishes in about
1.5 s). Each flow is a one-state workflow whose task counts its own executions and
writes its last one to a shared `MemoryStore`. The script prints the scheduler's
view before and after: ``running.list()`` gives each flow's `FlowInfo` (status, run
count, last run time), and the run counts agree with the tasks' own counters.
"""

from __future__ import annotations

import enum
import time

import anyio

from cano_dsl import FlowInfo, MemoryStore, Resources, Scheduler, Workflow, task


class Job(enum.Enum):
    START = enum.auto()
    COMPLETE = enum.auto()


@task(state=Job)
class CountingTask:
    def __init__(self, label: str) -> None:
        self.label = label
        self.executions = 0

    def name(self) -> str:
        return self.label

    async def run(self, res: Resources) -> Job:
        self.executions += 1
        await anyio.sleep(0.01)  # a little work
        res.get("store", MemoryStore).put("last_execution", f"{self.label} #{self.executions}")
        return Job.COMPLETE


def show(infos: list[FlowInfo]) -> None:
    for info in infos:
        last = "never" if info.last_run is None else info.last_run.strftime("%H:%M:%S.%f")[:-3]
        print(f"  {info.id:18} {info.status.name:10} runs={info.run_count}  last run: {last}")


async def main() -> None:
    store = MemoryStore()
    res = Resources().insert("store", store)
    manual = CountingTask("manual-task-1")
    fast = CountingTask("scheduled-task-2")
    slow = CountingTask("scheduled-task-3")

    def one_step(t: CountingTask) -> Workflow[Job]:
        return Workflow(res).register(Job.START, t).add_exit_state(Job.COMPLETE)

    sched = (
        Scheduler()
        .manual("manual_task_1", one_step(manual), Job.START)
        .every_seconds("scheduled_task_2", one_step(fast), Job.START, 0.4)
        .every_seconds("scheduled_task_3", one_step(slow), Job.START, 0.6)
    )
    print(f"registered {len(sched)} flows: {sched.ids()}")
    started = time.perf_counter()
    async with sched.start() as running:
        print("\nright after start:")
        show(running.list())
        await anyio.sleep(0.2)
        print("\ntriggering manual_task_1")
        await running.trigger("manual_task_1")
        await anyio.sleep(1.3)
        print(f"\nafter {time.perf_counter() - started:.1f} s:")
        snapshot = running.list()
        show(snapshot)
    print("\nscheduler stopped; the tasks' own counters:")
    runs = {info.id: info.run_count for info in snapshot}
    for flow_id, t in [
        ("manual_task_1", manual),
        ("scheduled_task_2", fast),
        ("scheduled_task_3", slow),
    ]:
        print(f"  {t.label} executed {t.executions} time(s); scheduler saw {runs[flow_id]}")
    print(f"last execution written to the store: {store.get('last_execution', str)}")


if __name__ == "__main__":
    anyio.run(main)
