"""Scheduler backoff and trip: a flaky flow recovers, a broken one trips.

Run with: python examples/scheduler_backoff.py

- "flaky" fails its first three runs. After each failure it waits
  ``BackoffPolicy.compute_delay(streak)`` (0.1 s, 0.2 s, 0.4 s here, no jitter) before
  its interval loop dispatches it again; the fourth run succeeds and clears the streak.
- "broken" always fails and trips after 3 consecutive failures: nothing runs it until
  `reset_flow`, and `trigger` refuses it meanwhile.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import BackoffPolicy, Scheduler, TaskConfig, Workflow, WorkflowError, task
from cano_dsl.scheduler import Backoff, Tripped


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"upstream unavailable (call {self.calls})")
        return Step.DONE


def flow(t: Flaky) -> Workflow[Step]:
    return Workflow.bare().register(Step.START, t).add_exit_state(Step.DONE)


def describe(status: object) -> str:
    if isinstance(status, Backoff):
        return f"backoff (streak {status.streak})"
    if isinstance(status, Tripped):
        return f"TRIPPED after {status.streak}: {status.last_error.split(': ')[-1]}"
    return getattr(status, "name", str(status))


async def main() -> None:
    policy = BackoffPolicy(initial=0.1, multiplier=2, max_delay=1, jitter=0)
    flaky, broken = Flaky(failures=3), Flaky(failures=10**9)
    sched = (
        Scheduler()
        .every("flaky", flow(flaky), Step.START, 0.05)
        .every("broken", flow(broken), Step.START, 0.05)
        .set_backoff("flaky", policy)
        .set_backoff("broken", policy.with_trip(3))
    )
    print("=== Scheduler backoff and trip ===\n")
    print("delays:", [policy.compute_delay(n) for n in (1, 2, 3, 4)])
    async with sched.start() as running:
        seen: dict[str, str] = {}
        with anyio.fail_after(10):  # watch until flaky recovered and broken tripped
            while not (seen.get("flaky") == "completed" and "TRIPPED" in seen.get("broken", "")):
                for info in running.list():
                    text = describe(info.status)
                    if seen.get(info.id) != text:
                        seen[info.id] = text
                        print(f"  {info.id:6} -> {text}")
                await anyio.sleep(0.02)

        try:
            await running.trigger("broken")
        except WorkflowError as err:
            print(f"\ntrigger refused: {err.message}")
        broken.failures = 0  # "fix" the dependency, then reset the flow
        await running.reset_flow("broken")
        print("reset_flow('broken') ->", describe(running.status("broken").status))
        with anyio.fail_after(10):
            while running.status("broken").status.name != "completed":
                await anyio.sleep(0.02)
        final = {i.id: i for i in running.list()}

    assert final["flaky"].failure_streak == 0 and final["flaky"].status.name == "completed"
    assert flaky.calls >= 4
    assert final["broken"].status.name == "completed"
    print("\nflaky recovered after 3 failures; broken runs again after its reset")
    print("Done")


if __name__ == "__main__":
    anyio.run(main)
