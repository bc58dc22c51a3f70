"""The emulated crash of `run_plan` leaves the store as a real ``kill -9`` does, and a
resume from either log takes the same path.

A child process runs a saga on a SQLite store and SIGKILLs itself at the crash point;
the same plan run in-process by `run_plan` (emulated crash) on another SQLite file must
leave the same rows, and resuming each log must enter the same states and produce the
same effects."""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cano_dsl import Resources, StateFailure, TaskConfig, Workflow, compensatable, task
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.testing import RecordingObserver
from cano_dsl.testing.strategies import Crash, Plan, effect, run_plan

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


class Pay(enum.Enum):
    RESERVE = 1
    CHARGE = 2
    SHIP = 3
    DONE = 4


def build(log: Path | None) -> Workflow[Pay]:
    """The saga; each effect is also appended to ``log`` (what a real process leaves)."""

    def mark(name: str) -> None:
        effect(name)
        if log is not None:
            with log.open("a") as f:
                f.write(name + "\n")

    @compensatable(state=Pay, config=TaskConfig.minimal(), name="reserve")
    class Reserve:
        async def run(self, res: Resources) -> tuple[Pay, str]:
            mark("reserve")
            return Pay.CHARGE, "h-1"

        async def compensate(self, res: Resources, output: str) -> None:
            mark("release")

    @compensatable(state=Pay, config=TaskConfig.minimal(), name="charge")
    class Charge:
        async def run(self, res: Resources) -> tuple[Pay, str]:
            if os.environ.get("KILL_AT") == "charge":
                os.kill(os.getpid(), signal.SIGKILL)
            mark("charge")
            return Pay.SHIP, "t-1"

        async def compensate(self, res: Resources, output: str) -> None:
            mark("refund")

    @task(config=TaskConfig.minimal(), name="ship")
    async def ship(res: Resources) -> Pay:
        raise RuntimeError("carrier down")

    return (
        Workflow(Resources())
        .register_with_compensation(Pay.RESERVE, Reserve())
        .register_with_compensation(Pay.CHARGE, Charge())
        .register(Pay.SHIP, ship)
        .add_exit_state(Pay.DONE)
    )


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import anyio
    sys.path.insert(0, {tests!r})
    from test_strategies_kill import Pay, build
    from cano_dsl.stores import SqliteCheckpointStore

    class KillingStore(SqliteCheckpointStore):
        async def append(self, workflow_id, row):
            await super().append(workflow_id, row)
            if os.environ.get("KILL_AT") == "row" and row.sequence == int(os.environ["ROW"]):
                os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        async with KillingStore(sys.argv[1]) as store:
            wf = build(Path(sys.argv[2])).with_checkpoint_store(store).with_workflow_id("k-1")
            await wf.orchestrate(Pay.RESERVE)

    anyio.run(main)
    """
)


def rows_of(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [(r.sequence, r.state, r.task_id, int(r.kind), r.output_blob) for r in rows]


@pytest.mark.parametrize(
    ("kill_env", "crash"),
    [
        ({"KILL_AT": "charge"}, Crash("attempt", state="CHARGE", attempt=1, when="before")),
        ({"KILL_AT": "row", "ROW": "3"}, Crash("row", 3)),
    ],
    ids=["inside-charge", "after-row-3"],
)
async def test_emulated_crash_matches_sigkill(
    tmp_path: Path, kill_env: dict[str, str], crash: Crash
) -> None:
    real_db, real_log = tmp_path / "real.db", tmp_path / "real.log"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(real_db), str(real_log)],
        env={**os.environ, "PYTHONPATH": str(ROOT), **kill_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    async with SqliteCheckpointStore(tmp_path / "emulated.db") as store:
        history = await run_plan(
            build(None), Pay.RESERVE, Plan([], [crash]), store=store, workflow_id="k-1"
        )
        emulated_rows = rows_of(history.segments[0].rows_after)
    async with SqliteCheckpointStore(real_db) as real_store:
        killed_rows = rows_of(await real_store.load_run("k-1"))
        assert killed_rows == emulated_rows
        # the same effects happened before the death...
        before = real_log.read_text().split()
        assert before == [e.name for e in history.effects if e.segment == 0 and ":" not in e.name]
        # ...and resuming the real log takes the path the emulated resume took
        obs = RecordingObserver()
        wf = build(real_log).with_checkpoint_store(real_store).with_observer(obs)
        with pytest.raises(StateFailure):
            await wf.resume_from("k-1")
    assert obs.states_entered() == history.segments[1].states_entered()
    after = real_log.read_text().split()[len(before) :]
    assert after == [e.name for e in history.effects if e.segment == 1 and ":" not in e.name]
    # CHARGE runs (again, after row 3: the resumed state re-runs), SHIP fails, rollback
    assert after == ["charge", "refund", "release"]
