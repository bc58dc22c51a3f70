"""Crash recovery: a run that fails keeps its checkpoint log; `resume_from` continues
from the failed state without re-running the states before it.

    python examples/workflow_recovery.py

The log lives in a SQLite file (the embedded default store). The importer's `@stepped`
state commits a cursor after every page, so a resumed run skips the pages already done.
"""

from __future__ import annotations

import enum
import tempfile
from pathlib import Path
from typing import Any

import anyio

from cano_dsl import (
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    Workflow,
    stepped,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore


class Import(enum.Enum):
    FETCH = enum.auto()
    PAGES = enum.auto()
    LOAD = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="fetch")
async def fetch(res: Resources) -> Import:
    print("  fetch: downloaded export.csv")
    return Import.PAGES


@stepped(state=Import, config=TaskConfig.minimal(), name="pages")
class Pages:
    async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Import]:
        page = cursor or 0
        if page == 3:
            return StepOutcome.done(Import.LOAD)
        print(f"  pages: parsed page {page}")
        return StepOutcome.more(page + 1)


def loader(database_up: bool) -> Any:
    @task(config=TaskConfig.minimal(), name="load")
    async def load(res: Resources) -> Import:
        if not database_up:
            raise ConnectionError("database offline")
        print("  load: rows written")
        return Import.DONE

    return load


def workflow(store: SqliteCheckpointStore, database_up: bool) -> Workflow[Import]:
    return (
        Workflow.bare()
        .register(Import.FETCH, fetch)
        .register_stepped(Import.PAGES, Pages())
        .register(Import.LOAD, loader(database_up))
        .add_exit_state(Import.DONE)
        .with_checkpoint_store(store)
        .with_workflow_version(1)
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "checkpoints.db"
        print("first attempt:")
        async with SqliteCheckpointStore(db) as store:
            try:
                await workflow(store, False).with_workflow_id("import-42").orchestrate(Import.FETCH)
            except StateFailure as err:
                print(f"  -> failed in {err.state.name}: {err.message}")
            rows = await store.load_run("import-42")
            print(f"  log kept: {[(r.sequence, r.state, r.kind.name) for r in rows]}")

        print("later, in a fresh store handle (as a new process would):")
        async with SqliteCheckpointStore(db) as store:
            final = await workflow(store, True).resume_from("import-42")
            print(f"  -> {final.name}; fetch and the pages were not run again")
            print(f"  log after success: {await store.load_run('import-42')}")


if __name__ == "__main__":
    anyio.run(main)
