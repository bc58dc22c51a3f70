"""Inline commits: a SQLite append commits on the event loop's thread when it can.

With ``durability="normal"`` and no batch in flight, `SqliteCheckpointStore.append`
runs its ``INSERT`` on the loop thread with a zero lock wait instead of hopping to a
worker thread (issue 9, "the durable step, close to one commit"). These tests watch
which thread runs each statement (sqlite3's trace callback runs in the thread that
executes the statement) and pin what must not change: a lock held elsewhere sends the
append to the worker thread without blocking the loop; a cancelled caller writes
nothing; conflicts and the corruption latch behave as on the thread path;
``durability="full"`` (an fsync per commit) never commits on the loop; WAL checkpoints
run in the worker thread; a row committed inline survives SIGKILL of the process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import CheckpointStoreError, Workflow, task
from cano_dsl.stores import CheckpointRow, SqliteCheckpointStore
from cano_dsl.stores import sqlite as sqlite_module

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


class _Trace:
    """(thread id, statement) of every statement the store's connection runs."""

    def __init__(self, store: SqliteCheckpointStore) -> None:
        conn = store._conn
        assert conn is not None, "open the store first"
        self.seen: list[tuple[int, str]] = []
        conn.set_trace_callback(self._record)

    def _record(self, statement: str) -> None:
        self.seen.append((threading.get_ident(), statement))

    def threads_of(self, word: str) -> list[int]:
        return [t for t, s in self.seen if word in s.upper()]

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self.seen)


async def _rows(store: SqliteCheckpointStore, wid: str) -> list[int]:
    return [r.sequence for r in await store.load_run(wid)]


async def test_an_append_commits_on_the_loop_thread_when_the_store_is_idle(
    tmp_path: Path,
) -> None:
    async with SqliteCheckpointStore(tmp_path / "c.db") as store:
        trace = _Trace(store)
        loop_thread = threading.get_ident()
        for seq in range(20):
            await store.append("run", CheckpointRow(seq, "S", "t"))
        inserts = trace.threads_of("INSERT")
        assert len(inserts) == 20 and set(inserts) == {loop_thread}
        assert await _rows(store, "run") == list(range(20))
        # a load is not inline: it goes to a worker thread
        assert set(trace.threads_of("SELECT")) - {loop_thread}


async def test_a_workflow_run_checkpoints_inline(tmp_path: Path) -> None:
    import enum

    class S(enum.Enum):
        A = enum.auto()
        DONE = enum.auto()

    left = [30]

    @task
    async def a() -> S:
        left[0] -= 1
        return S.A if left[0] else S.DONE

    async with SqliteCheckpointStore(tmp_path / "c.db") as store:
        trace = _Trace(store)
        wf = (
            Workflow.bare()
            .register(S.A, a)
            .add_exit_state(S.DONE)
            .with_checkpoint_store(store)
            .with_workflow_id("wf")
            .with_total_timeout(60)  # a deadline: the append runs in the engine's race scope
        )
        assert await wf.orchestrate(S.A) is S.DONE
        assert set(trace.threads_of("INSERT")) == {threading.get_ident()}
        assert len(trace.threads_of("INSERT")) == 31  # 30 entries of A and the exit row
        assert await _rows(store, "wf") == []  # cleared at the exit (worker thread)


class _LockHolder:
    """Another connection holding the file's write lock (BEGIN IMMEDIATE)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


async def test_a_held_lock_sends_the_append_to_the_worker_thread_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    async with SqliteCheckpointStore(tmp_path / "c.db") as store:
        await store.append("run", CheckpointRow(0, "S", "t"))  # inline, lock free
        trace = _Trace(store)
        holder = _LockHolder(store.path)
        ticks = 0
        done = anyio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await anyio.sleep(0.01)

        async def release_later() -> None:
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(holder.release)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(release_later)
            await store.append("run", CheckpointRow(1, "S", "t"))
            done.set()
        # the loop went on while the append waited (the old inline attempt returned at
        # once with SQLITE_BUSY; the wait was in a worker thread)
        assert ticks >= 10, ticks
        loop_thread = threading.get_ident()
        committed = [t for t, s in trace if "INSERT" in s.upper()]
        assert committed and committed[-1] != loop_thread
        assert await _rows(store, "run") == [0, 1]
        # the lock is free again: the next append is inline again
        await store.append("run", CheckpointRow(2, "S", "t"))
        assert trace.threads_of("INSERT")[-1] == loop_thread


async def test_a_cancelled_caller_writes_nothing(tmp_path: Path) -> None:
    async with SqliteCheckpointStore(tmp_path / "c.db") as store:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.append("run", CheckpointRow(0, "S", "t"))
        assert scope.cancelled_caught
        assert await _rows(store, "run") == []


async def test_a_conflict_inline_fails_that_append_only_and_keeps_the_first_row(
    tmp_path: Path,
) -> None:
    async with SqliteCheckpointStore(tmp_path / "c.db") as store:
        trace = _Trace(store)
        await store.append("run", CheckpointRow(0, "FIRST", "t"))
        with pytest.raises(CheckpointStoreError, match="sequence 0|already"):
            await store.append("run", CheckpointRow(0, "SECOND", "t"))
        await store.append("run", CheckpointRow(1, "NEXT", "t"))
        assert set(trace.threads_of("INSERT")) == {threading.get_ident()}
        assert [r.state for r in await store.load_run("run")] == ["FIRST", "NEXT"]


async def test_corruption_found_by_an_inline_append_latches_the_store(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with SqliteCheckpointStore(path) as store:
        for i in range(40):
            for seq in range(10):
                await store.append(f"run-{i:03d}", CheckpointRow(seq, "S" * 50, "t", b"x" * 200))
    conn = sqlite3.connect(path)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (root,) = conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'cano_checkpoints' AND path = '/'"
    ).fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size  # the table's root page: every insert walks through it
    data[start : start + page_size] = bytes(page_size)
    path.write_bytes(bytes(data))

    store = SqliteCheckpointStore(path)
    await store.open()
    trace = _Trace(store)
    with pytest.raises(CheckpointStoreError, match="damaged") as info:
        await store.append("run-new", CheckpointRow(0, "S", "t"))
    assert ".recover" in str(info.value)
    assert trace.threads_of("INSERT") == [threading.get_ident()]  # it was the inline path
    before = path.read_bytes()
    for call in (
        lambda: store.append("other", CheckpointRow(0, "S", "t")),
        lambda: store.load_run("run-001"),
    ):
        with pytest.raises(CheckpointStoreError, match=r"\.recover"):
            await call()
    await store.aclose()
    assert path.read_bytes() == before


async def test_full_durability_never_commits_on_the_loop(tmp_path: Path) -> None:
    async with SqliteCheckpointStore(tmp_path / "c.db", durability="full") as store:
        trace = _Trace(store)
        for seq in range(5):
            await store.append("run", CheckpointRow(seq, "S", "t"))
        inserts = trace.threads_of("INSERT")
        assert len(inserts) == 5 and threading.get_ident() not in inserts
        assert await _rows(store, "run") == list(range(5))


async def test_wal_checkpoints_never_run_on_the_loop_and_the_wal_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints run in a background thread (own connection) while appends go on,
    and now and then in the worker thread with no append in between, so that the WAL
    is copied whole and starts over instead of growing with the run."""
    monkeypatch.setattr(sqlite_module, "_CHECKPOINT_PAGES", 40)
    background: list[int] = []
    run = sqlite_module._Checkpointer._run

    def recording_run(self: Any) -> None:
        background.append(threading.get_ident())
        run(self)

    monkeypatch.setattr(sqlite_module._Checkpointer, "_run", recording_run)
    path = tmp_path / "c.db"
    async with SqliteCheckpointStore(path) as store:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        trace = _Trace(store)
        loop_thread = threading.get_ident()
        wal_sizes = []
        for seq in range(1500):  # ~2 pages each: thousands of WAL pages in all
            await store.append("run", CheckpointRow(seq, "S", "t", b"x" * 300))
            if seq % 100 == 99:
                await anyio.sleep(0.01)  # let a background checkpoint finish now and then
                wal_sizes.append(os.path.getsize(f"{path}-wal"))
        assert background and loop_thread not in background
        assert loop_thread not in trace.threads_of("WAL_CHECKPOINT")
        inserts = trace.threads_of("INSERT")
        assert inserts.count(loop_thread) >= 1400  # all but the few that paid for one
        assert await _rows(store, "run") == list(range(1500))
    # the WAL started over: its file stayed far below 1,500 appends' worth of pages
    assert max(wal_sizes) < 1500 * 2 * 4096 / 3, wal_sizes
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM cano_checkpoints").fetchone() == (1500,)
    conn.close()


async def test_when_background_checkpoints_never_copy_the_whole_wal_the_worker_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_CHECKPOINT_PAGES", 40)
    started: list[int] = []
    # background checkpoints that never get anywhere (as when appends outrun them)
    monkeypatch.setattr(
        sqlite_module._Checkpointer, "_run", lambda self: started.append(threading.get_ident())
    )
    path = tmp_path / "c.db"
    async with SqliteCheckpointStore(path) as store:
        trace = _Trace(store)
        loop_thread = threading.get_ident()
        for seq in range(600):
            await store.append("run", CheckpointRow(seq, "S", "t", b"x" * 300))
        in_thread = trace.threads_of("WAL_CHECKPOINT")
        # after _BACKGROUND_ROUNDS background rounds, one in the worker thread; repeat
        assert len(in_thread) >= 3 and loop_thread not in in_thread
        assert len(started) >= sqlite_module._BACKGROUND_ROUNDS * len(in_thread)
        assert trace.threads_of("INSERT").count(loop_thread) >= 590
    assert (
        os.path.getsize(f"{path}-wal") < 600 * 2 * 4096 / 3
        if os.path.exists(f"{path}-wal")
        else True
    )


_CHILD = """
import os, signal, sys, threading
import anyio
from cano_dsl.stores import CheckpointRow, SqliteCheckpointStore

async def main() -> None:
    store = SqliteCheckpointStore(sys.argv[1])
    await store.open()
    loop_thread = threading.get_ident()
    threads = []
    store._conn.set_trace_callback(lambda s: threads.append(threading.get_ident()))
    for seq in range(int(sys.argv[2])):
        await store.append("run", CheckpointRow(seq, "S", "t"))
    assert set(threads) == {loop_thread}, "not inline"
    print("appended", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no cleanup

anyio.run(main, backend=sys.argv[3])
"""


async def test_rows_committed_inline_survive_sigkill(tmp_path: Path, anyio_backend: Any) -> None:
    path = tmp_path / "c.db"
    backend = anyio_backend if isinstance(anyio_backend, str) else anyio_backend[0]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = await anyio.run_process(
        [sys.executable, "-c", _CHILD, str(path), "25", backend],
        env=env,
        check=False,
        stderr=subprocess.STDOUT,
    )
    assert result.returncode == -signal.SIGKILL, result.stdout.decode()
    assert result.stdout.decode().strip() == "appended"
    async with SqliteCheckpointStore(path) as store:
        assert await _rows(store, "run") == list(range(25))


# -- PostgreSQL: no inline path (a network wait must never block the loop) ----------


@pytest.fixture
async def pg_store(postgres_dsn: str) -> Any:
    import uuid

    import psycopg

    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_test_{uuid.uuid4().hex[:10]}"
    store = PostgresCheckpointStore(postgres_dsn, table=table)
    await store.open()
    try:
        yield store
    finally:
        await store.aclose()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


class _PgTrace:
    """libpq's protocol trace of the store's connection, to a file."""

    def __init__(self, store: Any, path: Path) -> None:
        import psycopg

        self.conn = store._conn
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.conn.pgconn.trace(self.fd)
        self.conn.pgconn.set_trace_flags(
            psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE
        )

    def stop(self) -> list[str]:
        self.conn.pgconn.untrace()  # flushes libpq's buffer
        os.close(self.fd)
        return self.path.read_text().splitlines()


@pytest.mark.postgres
async def test_postgres_a_lone_append_commits_with_an_explicit_commit(
    pg_store: Any, tmp_path: Path
) -> None:
    """Not autocommit: an INSERT sent to a server that then stops answering must not
    commit by itself later, after the caller gave up (and a resume re-ran the state):
    only the COMMIT, sent last, has an unknown outcome (tests/faults/test_stuck_store.py,
    the frozen backend)."""
    trace = _PgTrace(pg_store, tmp_path / "trace.txt")
    await pg_store.append("run", CheckpointRow(0, "S", "t"))
    sent = [line for line in trace.stop() if line.startswith("F")]
    queries = [line.split("\t")[-1].strip() for line in sent if "Query" in line]
    assert queries[0] == '"BEGIN"' and queries[-1] == '"COMMIT"', sent
    assert pg_store._conn.autocommit is False
    assert [r.sequence for r in await pg_store.load_run("run")] == [0]


@pytest.mark.postgres
async def test_postgres_a_lone_conflicting_append_fails_alone_and_batches_still_commit_together(
    pg_store: Any, tmp_path: Path
) -> None:
    await pg_store.append("run", CheckpointRow(0, "FIRST", "t"))
    with pytest.raises(CheckpointStoreError, match="already"):
        await pg_store.append("run", CheckpointRow(0, "SECOND", "t"))
    trace = _PgTrace(pg_store, tmp_path / "trace.txt")
    async with anyio.create_task_group() as tg:  # the first leads; the others share a batch
        for seq in (1, 2, 3):
            tg.start_soon(pg_store.append, "run", CheckpointRow(seq, "S", "t"))
    lines = trace.stop()
    assert any('"BEGIN"' in line for line in lines if line.startswith("F")), lines
    assert [r.state for r in await pg_store.load_run("run")] == ["FIRST", "S", "S", "S"]
