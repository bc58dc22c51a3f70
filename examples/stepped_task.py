"""A stepped import with a cursor persisted after every step: the first run crashes at
row 6, and resume_from continues from the last committed cursor instead of starting
over. Then a report step reads the result.

Run: python examples/stepped_task.py
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import (
    MemoryStore,
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    Workflow,
    stepped,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore

ROWS = list(range(1, 11))
BATCH = 3


class Step(enum.Enum):
    IMPORT = enum.auto()
    REPORT = enum.auto()
    DONE = enum.auto()


@stepped(state=Step)
class Import:
    """Imports ROWS in batches of three; the cursor is {"offset": ..., "total": ...}."""

    config = TaskConfig.minimal()

    def __init__(self) -> None:
        self.crash_at: int | None = 6

    def name(self) -> str:
        return "import-rows"

    async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
        cursor = cursor or {"offset": 0, "total": 0}
        batch = ROWS[cursor["offset"] : cursor["offset"] + BATCH]
        if not batch:
            res.get("store", MemoryStore).put("total", cursor["total"])
            return StepOutcome.done(Step.REPORT)
        if self.crash_at in batch:
            self.crash_at = None
            raise RuntimeError(f"database went away while importing {batch}")
        print(f"  imported rows {batch}")
        return StepOutcome.more(
            {"offset": cursor["offset"] + len(batch), "total": cursor["total"] + sum(batch)}
        )


@task
async def report(res: Resources) -> Step:
    print(f"  report: sum of imported rows = {res.get('store', MemoryStore).get('total')}")
    return Step.DONE


async def main() -> None:
    checkpoints = InMemoryCheckpointStore()
    wf = (
        Workflow(Resources().insert("store", MemoryStore()))
        .register_stepped(Step.IMPORT, Import())
        .register(Step.REPORT, report)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(checkpoints)
        .with_workflow_id("import-1")
    )
    print("first run:")
    try:
        await wf.orchestrate(Step.IMPORT)
    except StateFailure as failure:
        print(f"  failed in {failure.state.name}: {failure.error}")
    cursors = [r.output_blob.decode() for r in checkpoints.rows("import-1") if r.output_blob]
    print(f"  committed cursors: {cursors}")
    print("resume:")
    final = await wf.resume_from("import-1")
    print(f"reached {final.name}; log cleared: {checkpoints.rows('import-1') == []}")


if __name__ == "__main__":
    anyio.run(main)
