"""Writing your own checkpoint store: three async methods (append, load_run, clear).

    python examples/custom_checkpoint_store.py

This one keeps each workflow's log as a JSON-lines file in a directory. The contract:
``append`` must refuse a second row at an existing ``(workflow_id, sequence)``,
``load_run`` returns rows in ascending sequence order (``[]`` for an unknown id), and
``clear`` removes one id's rows only. `cano_dsl.testing.conformance` has a test suite
that checks all of it.
"""

from __future__ import annotations

import base64
import enum
import json
import tempfile
from pathlib import Path

import anyio

from cano_dsl import (
    CheckpointRow,
    CheckpointStore,
    CheckpointStoreError,
    Resources,
    RowKind,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)


class JsonLinesStore:
    """One ``<workflow_id>.jsonl`` file per run; file I/O kept off the event loop."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.lock = anyio.Lock()

    def _file(self, workflow_id: str) -> Path:
        return self.dir / f"{workflow_id}.jsonl"

    def _read(self, workflow_id: str) -> list[CheckpointRow]:
        path = self._file(workflow_id)
        if not path.exists():
            return []
        rows: list[CheckpointRow] = []
        for line in path.read_text().splitlines():
            d = json.loads(line)
            blob = base64.b64decode(d["blob"]) if d["blob"] is not None else None
            patch = base64.b64decode(d["data"]) if d.get("data") is not None else None
            rows.append(
                CheckpointRow(
                    d["seq"], d["state"], d["task_id"], blob, RowKind(d["kind"]), d["v"], patch
                )
            )
        return sorted(rows, key=lambda r: r.sequence)

    def _append(self, workflow_id: str, row: CheckpointRow) -> None:
        if any(r.sequence == row.sequence for r in self._read(workflow_id)):
            raise CheckpointStoreError(
                f"checkpoint conflict: workflow {workflow_id} already has a row at "
                f"sequence {row.sequence}"
            )
        blob = base64.b64encode(row.output_blob).decode() if row.output_blob is not None else None
        # the run data change this row commits (docs/run-data.md): keep it as given
        patch = row.data_patch
        line = {
            "seq": row.sequence,
            "state": row.state,
            "task_id": row.task_id,
            "blob": blob,
            "kind": int(row.kind),
            "v": row.workflow_version,
            "data": base64.b64encode(patch).decode() if patch is not None else None,
        }
        with self._file(workflow_id).open("a") as f:
            f.write(json.dumps(line) + "\n")

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        async with self.lock:
            await anyio.to_thread.run_sync(self._append, workflow_id, row)

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        async with self.lock:
            return await anyio.to_thread.run_sync(self._read, workflow_id)

    async def clear(self, workflow_id: str) -> None:
        async with self.lock:
            await anyio.to_thread.run_sync(lambda: self._file(workflow_id).unlink(missing_ok=True))


class Job(enum.Enum):
    EXTRACT = enum.auto()
    PUBLISH = enum.auto()
    DONE = enum.auto()


attempts = {"publish": 0}


@task(config=TaskConfig.minimal(), name="extract")
async def extract(res: Resources) -> Job:
    print("  extract: done")
    return Job.PUBLISH


@task(config=TaskConfig.minimal(), name="publish")
async def publish(res: Resources) -> Job:
    attempts["publish"] += 1
    if attempts["publish"] == 1:
        raise RuntimeError("CDN returned 503")
    print("  publish: done")
    return Job.DONE


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = JsonLinesStore(Path(tmp))
        print(f"is a CheckpointStore: {isinstance(store, CheckpointStore)}")  # pyright: ignore[reportUnnecessaryIsInstance]
        wf = (
            Workflow.bare()
            .register(Job.EXTRACT, extract)
            .register(Job.PUBLISH, publish)
            .add_exit_state(Job.DONE)
            .with_checkpoint_store(store)
        )
        try:
            await wf.with_workflow_id("job-1").orchestrate(Job.EXTRACT)
        except StateFailure as err:
            print(f"  -> failed in {err.state.name}: {err.message}")
        print("  job-1.jsonl:")
        for line in (Path(tmp) / "job-1.jsonl").read_text().splitlines():
            print(f"    {line}")
        print(f"resumed: {(await wf.resume_from('job-1')).name}")
        print(f"  files left: {sorted(p.name for p in Path(tmp).iterdir())}")


if __name__ == "__main__":
    anyio.run(main)
