"""Run data in a batch and a stepped task: ``load`` and ``finish`` (batch) and ``step``
(stepped) take the run data; ``process_item`` gets only its item.

    python examples/run_data_batch.py

The stepped state checkpoints a cursor per step, and each cursor row also carries the
run data changes of its step: a crash mid-import resumes at the last cursor with the
data as of that cursor (here, after a crash at page 2, the counts of pages 0 and 1).
"""

from __future__ import annotations

import enum

import anyio
import attrs

from cano_dsl import (
    Ok,
    Outcome,
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    Workflow,
    batch,
    stepped,
)
from cano_dsl.testing import InMemoryCheckpointStore


class Job(enum.Enum):
    IMPORT = enum.auto()
    SCORE = enum.auto()
    DONE = enum.auto()


@attrs.define
class JobData:
    imported: list[int] = attrs.Factory(list[int])
    pages_done: int = 0
    score: int = 0


CRASH_AT = {"page": 2}


@stepped(name="import", config=TaskConfig.minimal())
class ImportPages:
    async def step(
        self, res: Resources, cursor: int | None, data: JobData
    ) -> StepOutcome[int, Job]:
        page = cursor or 0
        if page == CRASH_AT["page"]:
            CRASH_AT["page"] = -1  # crash once
            raise RuntimeError(f"lost the connection on page {page}")
        data.imported.extend(range(page * 3, page * 3 + 3))
        data.pages_done = page + 1
        return StepOutcome.done(Job.SCORE) if page == 3 else StepOutcome.more(page + 1)


@batch(name="score")
class Score:
    concurrency = 4

    async def load(self, res: Resources, data: JobData) -> list[int]:
        return data.imported

    async def process_item(self, item: int) -> int:
        return item * item

    async def finish(self, res: Resources, outputs: list[Outcome[int]], data: JobData) -> Job:
        data.score = sum(o.value for o in outputs if isinstance(o, Ok))
        return Job.DONE


async def main() -> None:
    wf = (
        Workflow(Resources())
        .with_run_data(JobData)
        .register_stepped(Job.IMPORT, ImportPages())
        .register(Job.SCORE, Score())
        .add_exit_state(Job.DONE)
        .with_checkpoint_store(InMemoryCheckpointStore())
    )
    try:
        await wf.with_workflow_id("job-7").run(Job.IMPORT)
    except StateFailure as failure:
        print(f"run 1 failed: {failure.error}")
    result = await wf.resume("job-7")
    print(f"resumed and finished in {result.state.name}")
    print(f"pages {result.data.pages_done}, items {result.data.imported}")
    print(f"score {result.data.score}")


if __name__ == "__main__":
    anyio.run(main)
