"""Limits that docs/guarantees.md states as *not promised*, pinned so that the page
stays true: if one of these starts failing, the behaviour changed and the page (and
the pages it links to) must say so.

- A saga step whose completion row was the last row of the log before a crash (or was
  never written) runs again on resume, and its first execution is never compensated:
  only the re-run's output is on the stack.
- ``execute_flow`` (the scheduler's entry point) does not claim the run.
- A teardown blocked in a synchronous call cannot be cut short by its bound.
- A damaged ``-wal`` file is not an error: SQLite stops replaying the log at the first
  frame whose checksum fails, and the commits from there on are gone, silently (with
  ``integrity_check=True`` too).
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from cano_dsl import (
    CheckpointRow,
    Resources,
    RunClaimedError,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = TaskConfig.minimal()


class Step(enum.Enum):
    A = enum.auto()
    C = enum.auto()
    D = enum.auto()
    DONE = enum.auto()


# -- a saga step re-run on resume: its first execution is not compensated -------------


def _saga(name: str, nxt: Step, runs: dict[str, int], undone: list[tuple[str, Any]]) -> Any:
    @compensatable(state=Step, config=MINIMAL, name=name)
    class Saga:
        async def run(self, res: Resources) -> tuple[Step, dict[str, Any]]:
            runs[name] = runs.get(name, 0) + 1
            return nxt, {"step": name, "run": f"resumed-{runs[name]}"}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            undone.append((output["step"], output["run"]))

    return Saga()


@pytest.mark.parametrize("row", ["completion-row-last", "completion-row-missing"])
async def test_a_saga_step_rerun_on_resume_leaves_its_first_execution_uncompensated(
    store: Any, row: str
) -> None:
    wid = f"saga-{uuid.uuid4().hex[:8]}"
    # the log a process killed after C finished leaves: A committed (its completion row
    # is followed by C's entry row), C's completion row the last row, or never written
    log = [
        CheckpointRow(0, "A", "a"),
        CheckpointRow(1, "A", "a").with_output(b'{"step": "a", "run": "first"}'),
        CheckpointRow(2, "C", "c"),
    ]
    if row == "completion-row-last":
        log.append(CheckpointRow(3, "C", "c").with_output(b'{"step": "c", "run": "first"}'))
    for r in log:
        await store.append(wid, r)
    runs: dict[str, int] = {}
    undone: list[tuple[str, Any]] = []

    @task(config=MINIMAL, name="d")
    async def d(res: Resources) -> Step:
        runs["d"] = runs.get("d", 0) + 1
        raise RuntimeError("carrier down")

    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, _saga("a", Step.C, runs, undone))
        .register_with_compensation(Step.C, _saga("c", Step.D, runs, undone))
        .register(Step.D, d)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
    )
    with pytest.raises(StateFailure) as info:
        await wf.resume_from(wid)
    assert info.value.state is Step.D
    assert runs == {"c": 1, "d": 1}  # C ran again; A did not
    # the re-run of C is undone, then A's committed output; C's first output never is
    assert undone == [("c", "resumed-1"), ("a", "first")]
    assert await store.load_run(wid) == []  # a clean rollback clears the log


# -- execute_flow does not claim ---------------------------------------------------------


async def test_execute_flow_runs_a_run_that_is_claimed_elsewhere(store: Any) -> None:
    wid = f"flow-{uuid.uuid4().hex[:8]}"
    ran: list[str] = []

    @task(config=MINIMAL, name="a")
    async def a(res: Resources) -> Step:
        ran.append("a")
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.A, a)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id(wid)
    )
    held = await store.claim(wid)  # as another process's resume would hold it
    try:
        with pytest.raises(RunClaimedError):
            await wf.orchestrate(Step.A)
        assert ran == []
        assert await wf.execute_flow(Step.A) is Step.DONE  # not refused: no claim taken
        assert ran == ["a"]
    finally:
        await held.release()


# -- a damaged -wal file: the commits after the damage are gone, silently -------------

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import anyio
    from cano_dsl import CheckpointRow
    from cano_dsl.stores import SqliteCheckpointStore

    async def main() -> None:
        store = SqliteCheckpointStore(sys.argv[1])
        for seq in range(int(sys.argv[2])):
            await store.append("run-1", CheckpointRow(seq, f"S{seq}", "t"))
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: the -wal stays

    anyio.run(main)
    """
)


@pytest.mark.parametrize("integrity_check", [False, True])
async def test_a_damaged_wal_file_silently_loses_the_commits_after_the_damage(
    tmp_path: Path, integrity_check: bool
) -> None:
    path = tmp_path / "c.db"
    rows = 8
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "acknowledged"
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    page_size = int.from_bytes(data[8:12], "big")
    frame = 24 + page_size
    frames = (len(data) - 32) // frame
    assert frames >= rows  # every commit is still in the -wal, none checkpointed
    data[32 + (frames - 1) * frame + 24 + page_size // 2] ^= 0xFF  # the last commit's frame
    wal.write_bytes(bytes(data))
    async with SqliteCheckpointStore(path, integrity_check=integrity_check) as store:
        loaded = [r.sequence for r in await store.load_run("run-1")]  # no error
    assert loaded == list(range(rows - 1))  # the last acknowledged commit is gone


# -- a teardown blocked in code that ignores cancellation cannot be cut ----------------


async def test_a_teardown_blocked_in_a_synchronous_call_is_not_cut_short() -> None:
    torn: list[str] = []

    class Blocking:
        async def teardown(self) -> None:
            time.sleep(0.6)  # a synchronous call: no await, so no cancellation reaches it
            torn.append("blocking")

    @task(config=MINIMAL, name="a")
    async def a(res: Resources) -> Step:
        return Step.DONE

    wf = (
        Workflow(Resources().insert("blocking", Blocking()))
        .register(Step.A, a)
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(0.05)
    )
    started = time.monotonic()
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert time.monotonic() - started >= 0.6  # the bound of 0.05 s could not cut it
    assert torn == ["blocking"]  # it ran to its end
