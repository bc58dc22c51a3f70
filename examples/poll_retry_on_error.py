"""PollErrorPolicy.retry_on_error(3): three errors in a row are survived, a pending
outcome resets the count, and the fourth consecutive error fails the run.

Run: python examples/poll_retry_on_error.py
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import PollErrorPolicy, PollOutcome, Resources, StateFailure, Workflow, poll


class Step(enum.Enum):
    WAIT = enum.auto()
    DONE = enum.auto()


@poll(state=Step)
class FlakyProbe:
    """Plays a script: "E" raises, "P" is pending, "R" is ready."""

    on_poll_error = PollErrorPolicy.retry_on_error(3)

    def __init__(self, script: str) -> None:
        self.script = script
        self.calls = 0

    async def poll(self, res: Resources) -> PollOutcome[Step]:
        move = self.script[self.calls]
        self.calls += 1
        print(f"  poll {self.calls}: {move}")
        if move == "E":
            raise ConnectionError(f"probe {self.calls} failed")
        if move == "P":
            return PollOutcome.pending(0)
        return PollOutcome.ready(Step.DONE)


async def run(title: str, script: str) -> None:
    print(title)
    probe = FlakyProbe(script)
    wf = Workflow().register(Step.WAIT, probe).add_exit_state(Step.DONE)
    try:
        final = await wf.orchestrate(Step.WAIT)
        print(f"  -> reached {final.name} after {probe.calls} polls")
    except StateFailure as failure:
        print(f"  -> failed after {probe.calls} polls: {failure.error}")


async def main() -> None:
    await run("three consecutive errors are tolerated:", "EEER")
    await run("a pending outcome resets the count:", "EEEPEEER")
    await run("the fourth consecutive error fails the run:", "EEEER")


if __name__ == "__main__":
    anyio.run(main)
