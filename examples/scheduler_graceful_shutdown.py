"""Graceful shutdown on SIGINT / SIGTERM, as cano's example does it.

Run with: python examples/scheduler_graceful_shutdown.py [--backend trio] [--no-demo-signal]

Two flows own a resource each (a "database" and a "queue") with async setup and
teardown. The scheduler sets them up once at start, in registration order. A task
listens for SIGINT (Ctrl-C) and SIGTERM with ``anyio.open_signal_receiver`` and calls
``running.stop()``; the block's last line, ``await running.wait()``, returns once the
scheduler has stopped (cano's ``RunningScheduler::wait``). The stop:

1. stops the interval and cron loops,
2. fires the cancellation token of every in-flight run (a saga would drain here),
3. waits for the runs to settle (at most 30 s),

and leaving the block then tears the resources down in reverse registration order.

Like cano's demo, it sends itself SIGINT once the long queue job is in flight (pass
``--no-demo-signal`` to press Ctrl-C or ``kill -TERM <pid>`` yourself).
"""

from __future__ import annotations

import argparse
import enum
import os
import signal

import anyio

from cano_dsl import Resources, Scheduler, TaskConfig, Workflow, WorkflowError, task
from cano_dsl.scheduler import RunningScheduler

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


async def stop_on_signal(running: RunningScheduler) -> None:
    """The Ctrl-C handler: the first SIGINT or SIGTERM stops the scheduler."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            print(f"\nreceived {name}: stopping the scheduler, cancelling in-flight runs")
            EVENTS.append(f"-- {name} --")
            try:
                await running.stop()
                print("all runs settled")
            except WorkflowError as exc:  # runs still in flight after 30 s
                print(f"shutdown error: {exc}")
            return


async def announce_and_maybe_signal(running: RunningScheduler, demo_signal: bool) -> None:
    """Say when the long queue job is in flight; in the demo, interrupt ourselves."""
    while True:
        info = running.status("queue")
        if running.has_running_flows() and info is not None and info.run_count > 0:
            break
        await anyio.sleep(0.05)
    await anyio.sleep(0.1)
    print("queue job in flight", flush=True)
    if demo_signal:
        print("demo: sending SIGINT to ourselves")
        os.kill(os.getpid(), signal.SIGINT)


async def main(demo_signal: bool) -> None:
    sched = (
        Scheduler()
        .every("database", flow("database", 0.2), Step.START, 0.3)
        .cron("queue", flow("queue", 30), Step.START, "* * * * * *")
    )
    print("=== Scheduler graceful shutdown ===")
    print(f"pid {os.getpid()}: press Ctrl-C (or send SIGTERM) to shut down gracefully", flush=True)
    async with sched.start() as running, anyio.create_task_group() as tg:
        tg.start_soon(stop_on_signal, running)
        tg.start_soon(announce_and_maybe_signal, running, demo_signal)
        await running.wait()  # until the signal handler's stop() has settled the runs
        tg.cancel_scope.cancel()
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--no-demo-signal", dest="demo_signal", action="store_false")
    args = parser.parse_args()
    anyio.run(main, args.demo_signal, backend=args.backend)
