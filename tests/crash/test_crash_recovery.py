"""Crash recovery with real processes: a child runs a checkpointed workflow, is killed
with SIGKILL inside a chosen state, and another process resumes it (REFERENCE §9).

The child is ``tests/crash/driver.py``; its module docstring describes the workflow and
the effects journal these tests read.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().with_name("driver.py")
PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"
TIMEOUT = 30.0

# What an uninterrupted run does, in order.
EVENTS = [
    "run START",
    "run ROUTE",
    "run ITEMS",
    "run RESERVE",
    "step PAGES 0",
    "step PAGES 1",
    "step PAGES 2",
    "step PAGES 3",
    "run CHARGE",
    "item FEED 0",
    "item FEED 1",
    "flush FEED [0, 1]",
    "item FEED 2",
    "item FEED 3",
    "flush FEED [2, 3]",
    "item FEED 4",
    "item FEED 5",
    "flush FEED [4, 5]",
    "run SHIP",
]

# crash point -> (the effect recorded when the child blocks, where the resumed run restarts)
CRASH_POINTS = {
    "START": ("run START", "run START"),
    "ITEMS": ("run ITEMS", "run ITEMS"),  # the router before it never re-runs
    "RESERVE": ("run RESERVE", "run RESERVE"),
    "PAGES:2": ("step PAGES 2", "step PAGES 2"),  # the committed cursor is 2
    "CHARGE": ("run CHARGE", "run CHARGE"),
    "FEED:3": ("item FEED 3", "item FEED 2"),  # window [0, 1] committed; [2, 3] replays
    "SHIP": ("run SHIP", "run SHIP"),
}


class Harness:
    """Starts driver processes against one store and one workflow id."""

    def __init__(self, store: str, workflow_id: str, effects: Path) -> None:
        self.store = store
        self.workflow_id = workflow_id
        self.effects = effects
        self.effects.touch()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def spawn(
        self, mode: str, tag: str, *extra: str, wid: str | None = None
    ) -> subprocess.Popen[str]:
        cmd = [
            sys.executable,
            str(DRIVER),
            mode,
            "--store",
            self.store,
            "--id",
            wid or self.workflow_id,
            "--effects",
            str(self.effects),
            "--tag",
            tag,
            *extra,
        ]
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def start_blocked(self, mode: str, tag: str, at: str, *extra: str) -> subprocess.Popen[str]:
        """A child that has reached ``at`` and is blocked there (still alive)."""
        proc = self.spawn(mode, tag, "--crash-at", at, *extra)
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
            if not ready:
                proc.kill()
                pytest.fail(f"child never reached {at}")
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                pytest.fail(f"child exited before reaching {at}: {err}")
            if line.strip() == f"ready {at}":
                return proc

    def crash(self, mode: str, tag: str, at: str, *extra: str) -> int:
        """Run until ``at``, then SIGKILL the child; its pid."""
        proc = self.start_blocked(mode, tag, at, *extra)
        kill(proc)
        return proc.pid

    def finish(
        self, mode: str, tag: str, *extra: str, wid: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run a child to its end; its pid and its JSON report."""
        proc = self.spawn(mode, tag, *extra, wid=wid)
        out, err = proc.communicate(timeout=TIMEOUT)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        assert proc.returncode == 0 and lines, f"child failed (rc={proc.returncode}): {err}"
        report: dict[str, Any] = json.loads(lines[-1])
        return proc.pid, report

    def events(self, tag: str) -> list[str]:
        out = []
        for line in self.effects.read_text().splitlines():
            t, _, event = line.partition(" ")
            if t == tag:
                out.append(event)
        return out


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def sqlite_rows(path: Path, wid: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT sequence, state, task_id, kind, workflow_version FROM cano_checkpoints "
            "WHERE workflow_id = ? ORDER BY sequence",
            (wid,),
        ).fetchall()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield Harness(f"sqlite:{tmp_path / 'orders.db'}", wid, tmp_path / "effects.log")
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    import psycopg

    table = f"cano_crash_{uuid.uuid4().hex[:10]}"
    yield Harness(f"postgres:{table}", wid, tmp_path / "effects.log")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
def sqlite_harness(tmp_path: Path) -> Harness:
    return Harness(f"sqlite:{tmp_path / 'orders.db'}", "order-1", tmp_path / "effects.log")


def db_path(h: Harness) -> Path:
    return Path(h.store.partition(":")[2])


# -- kill inside each state, resume in a second process ----------------------------------


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_killed_run_resumes_where_it_crashed(harness: Harness, point: str) -> None:
    if harness.store.startswith("postgres") and point not in ("ITEMS", "PAGES:2", "FEED:3"):
        pytest.skip("PostgreSQL covers a representative subset of crash points")
    crashed_at, restart_at = CRASH_POINTS[point]
    backend = "trio" if len(point) % 2 else "asyncio"
    harness.crash("run", "p1", point)
    _, report = harness.finish("resume", "p2", "--backend", backend)
    assert report == {"result": "DONE"}
    # before the crash: exactly the prefix up to the crashed effect
    assert harness.events("p1") == EVENTS[: EVENTS.index(crashed_at) + 1]
    # after: everything from the re-run point, nothing earlier
    assert harness.events("p2") == EVENTS[EVENTS.index(restart_at) :]


def test_later_failure_compensates_work_of_both_processes_lifo(harness: Harness) -> None:
    p1 = harness.crash("run", "p1", "CHARGE")  # RESERVE committed by p1
    p2, report = harness.finish("resume", "p2", "--fail-at", "SHIP")
    assert report["error"] == "StateFailure"
    assert report["state"] == "SHIP"
    # the path is rebuilt from state-entry rows: routers write none
    assert report["path"][:4] == ["START", "ITEMS", "RESERVE", "PAGES"]
    undo = [e for e in harness.events("p2") if e.startswith("undo")]
    assert undo == [f"undo CHARGE {p2}", f"undo RESERVE {p1}"]
    # clean rollback cleared the log: nothing left to resume
    _, again = harness.finish("resume", "p3")
    assert again["error"] == "CheckpointStoreError"
    assert "no checkpoint rows" in again["message"]


def test_crash_during_resume_then_resume_again(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    p1 = h.crash("run", "p1", "PAGES:1")
    p2 = h.crash("resume", "p2", "FEED:4", "--backend", "trio")
    p3, report = h.finish("resume", "p3", "--fail-at", "SHIP")
    assert report["category"] == "task_execution"
    assert h.events("p2")[0] == "step PAGES 1"
    assert h.events("p3")[:3] == ["item FEED 4", "item FEED 5", "flush FEED [4, 5]"]
    undo = [e for e in h.events("p3") if e.startswith("undo")]
    assert undo == [f"undo CHARGE {p2}", f"undo RESERVE {p1}"]
    assert p3 not in (p1, p2)


def test_checkpoint_rows_survive_the_kill(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.crash("run", "p1", "PAGES:2")
    rows = sqlite_rows(db_path(h), h.workflow_id)
    # START, ITEMS, RESERVE + completion, PAGES, cursors 1 and 2; the router wrote nothing
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (0, "START", 0),
        (1, "ITEMS", 0),
        (2, "RESERVE", 0),
        (3, "RESERVE", 1),
        (4, "PAGES", 0),
        (5, "PAGES", 2),
        (6, "PAGES", 2),
    ]
    assert {r[4] for r in rows} == {1}


# -- bad input: each a clear error, no row lost -------------------------------------------


def test_corrupt_database_file_is_a_clear_error(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    junk = b"definitely not a database " * 200
    db_path(h).write_bytes(junk)
    _, report = h.finish("run", "p1")
    assert report["category"] == "checkpoint_store"
    assert h.events("p1") == []  # the first row is written before the first task
    _, resumed = h.finish("resume", "p2")
    assert resumed["error"] == "CheckpointStoreError"
    assert db_path(h).read_bytes() == junk


def test_foreign_database_file_is_a_clear_error(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    with sqlite3.connect(db_path(h)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    _, report = h.finish("resume", "p1")
    assert report["error"] == "CheckpointStoreError"
    _, run = h.finish("run", "p2")
    assert run["category"] == "checkpoint_store"
    with sqlite3.connect(db_path(h)) as conn:
        assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"users"}


def test_undecodable_row_is_a_clear_error_and_nothing_is_lost(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    h.crash("run", "p1", "RESERVE")
    with sqlite3.connect(db_path(h)) as conn:
        conn.execute(
            "UPDATE cano_checkpoints SET kind = 9 WHERE workflow_id = ? AND sequence = 1",
            (h.workflow_id,),
        )
    before = sqlite_rows(db_path(h), h.workflow_id)
    _, report = h.finish("resume", "p2")
    assert report["error"] == "CheckpointStoreError"
    assert f"workflow_id={h.workflow_id}" in report["message"]
    assert "sequence=1" in report["message"]
    assert h.events("p2") == []
    assert sqlite_rows(db_path(h), h.workflow_id) == before


def test_resume_of_an_unknown_id_is_a_clear_error(harness: Harness) -> None:
    _, report = harness.finish("resume", "p1", wid="never-ran")
    assert report == {
        "error": "CheckpointStoreError",
        "category": "checkpoint_store",
        "message": "no checkpoint rows for workflow id never-ran",
    }


def test_two_live_runs_with_one_id_the_second_is_refused(harness: Harness) -> None:
    first = harness.start_blocked("run", "p1", "ITEMS")
    try:
        _, report = harness.finish("run", "p2")
        assert report["error"] == "RunClaimedError"  # claimed by p1: refused at once
        assert report["category"] == "checkpoint_store"
        assert "is being run elsewhere" in report["message"]
        assert harness.events("p2") == []
    finally:
        kill(first)
    _, resumed = harness.finish("resume", "p3")
    assert resumed == {"result": "DONE"}
    assert harness.events("p1") == EVENTS[:3]
    assert harness.events("p3") == EVENTS[2:]
