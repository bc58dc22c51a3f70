"""Graceful shutdown: leaving the ``start()`` block stops everything in order.

Run with: python examples/scheduler_graceful_shutdown.py

Two flows own a resource each (a "database" and a "queue") with async setup and
teardown. The scheduler sets them up once at start, in registration order. When the
block is left (here after 1 s; with `serve()` it happens when the task is cancelled,
e.g. on Ctrl-C), the scheduler:

1. stops the interval and cron loops,
2. fires the cancellation token of every in-flight run (a saga would drain here),
3. waits for the runs to settle (at most 30 s),
4. tears the resources down in reverse registration order.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import Resources, Scheduler, TaskConfig, Workflow, task

EVENTS: list[str] = []


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()


class Connection:
    def __init__(self, name: str) -> None:
        self.name = name

    async def setup(self) -> None:
        EVENTS.append(f"setup {self.name}")

    async def teardown(self) -> None:
        EVENTS.append(f"teardown {self.name}")


@task(state=Step)
class Job:
    def __init__(self, name: str, seconds: float) -> None:
        self._name = name
        self.seconds = seconds

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        EVENTS.append(f"{self._name} started")
        try:
            await anyio.sleep(self.seconds)
        except anyio.get_cancelled_exc_class():
            EVENTS.append(f"{self._name} cancelled")
            raise
        EVENTS.append(f"{self._name} finished")
        return Step.DONE


def flow(name: str, seconds: float) -> Workflow[Step]:
    res = Resources().insert(name, Connection(name))
    return Workflow(res).register(Step.START, Job(f"{name}-job", seconds)).add_exit_state(Step.DONE)


async def main() -> None:
    sched = (
        Scheduler()
        .every("database", flow("database", 0.2), Step.START, 0.3)
        .cron("queue", flow("queue", 30), Step.START, "* * * * * *")
    )
    print("=== Scheduler graceful shutdown ===\n")
    async with sched.start() as running:
        while not running.has_running_flows() or running.status("queue").run_count == 0:
            await anyio.sleep(0.05)
        await anyio.sleep(0.1)
        EVENTS.append("-- leaving the block --")
    for line in EVENTS:
        print("  ", line)
    statuses = {i.id: i.status.name for i in running.list()}
    print("\nstatuses after shutdown:", statuses)
    assert EVENTS[:2] == ["setup database", "setup queue"]
    assert EVENTS[-2:] == ["teardown queue", "teardown database"]
    assert "queue-job cancelled" in EVENTS
    assert not running.has_running_flows()
    print("Done")


if __name__ == "__main__":
    anyio.run(main)
