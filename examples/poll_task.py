"""A poller waits for a background job, adapting its delay, then a task processes
the result.

Run: python examples/poll_task.py
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import MemoryStore, PollOutcome, Resources, Workflow, poll, task


class Step(enum.Enum):
    WAIT = enum.auto()
    PROCESS = enum.auto()
    DONE = enum.auto()


@poll(state=Step)
class WaitForJob:
    """Ready once the background job has counted to 5; polls faster as it gets close."""

    def __init__(self) -> None:
        self.polls = 0

    async def poll(self, res: Resources) -> PollOutcome[Step]:
        self.polls += 1
        progress = res.get("store", MemoryStore).get("progress")
        print(f"poll #{self.polls}: progress {progress}/5")
        if progress >= 5:
            return PollOutcome.ready(Step.PROCESS)
        return PollOutcome.pending(0.02 if progress < 3 else 0.005)


@task
async def process(res: Resources) -> Step:
    store = res.get("store", MemoryStore)
    store.put("result", store.get("progress") * 10)
    print(f"processed: result = {store.get('result')}")
    return Step.DONE


async def background_job(store: MemoryStore) -> None:
    for _ in range(5):
        await anyio.sleep(0.015)
        store.put("progress", store.get("progress") + 1)


async def main() -> None:
    store = MemoryStore()
    store.put("progress", 0)
    poller = WaitForJob()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Step.WAIT, poller)
        .register(Step.PROCESS, process)
        .add_exit_state(Step.DONE)
    )
    final = Step.WAIT  # the run below sets it
    async with anyio.create_task_group() as tg:
        tg.start_soon(background_job, store)
        final = await wf.orchestrate(Step.WAIT)
    print(f"finished in {final.name} after {poller.polls} polls")


if __name__ == "__main__":
    anyio.run(main)
