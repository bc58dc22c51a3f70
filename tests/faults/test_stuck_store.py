"""A stuck store never outlives the run's deadline (issue 8, item 3).

- SQLite: another *process* holds the write lock. A run with a total timeout, a token
  or an enclosing cancel scope ends at its deadline (not after ``busy_timeout``); once
  the lock is released the same store works and ``resume_from`` re-runs the state
  whose append was cut.
- PostgreSQL: the store connection's backend is frozen (SIGSTOP) mid-run; the same
  three ways end the run in time; after SIGCONT the store works again and resume works.
  A server restart mid-run fails the run with `CheckpointStoreError` and the same store
  reconnects when the server is back. These use a PRIVATE server (initdb into a temp
  directory), never the shared one.
- Group commit: a caller cancelled while its op shares a batch with another run's op
  does not fail that neighbour.

Timing bounds are generous (a loaded 2-core machine): a run whose deadline is 1 s must
end within `_PROMPT` s, against the 30 s (SQLite) or forever (PostgreSQL) it took before.
"""

from __future__ import annotations

import enum
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    CheckpointStoreError,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowCancelled,
    WorkflowObserver,
    WorkflowTimeout,
    compensatable,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.stores._batch import BatchRunner, Op, OpKind

pytestmark = pytest.mark.anyio

_DEADLINE = 1.0  # the run's total timeout / token delay / enclosing scope
_PROMPT = _DEADLINE + 4.0  # ends by then (the old code: 30 s or never)
_HOWS = ["timeout", "token", "scope"]


# -- a workflow A -> B -> C -> DONE whose A can do something to the store ------------


class S(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


def _flow(store: Any, wid: str, ran: list[str], in_a: Callable[[], Any] | None) -> Workflow[S]:
    @task(config=TaskConfig.minimal(), name="a")
    async def a() -> S:
        ran.append("A")
        if in_a is not None and len(ran) == 1:  # only in the first run
            await anyio.to_thread.run_sync(in_a)
        return S.B

    @task(config=TaskConfig.minimal(), name="b")
    async def b() -> S:
        ran.append("B")
        return S.C

    @task(config=TaskConfig.minimal(), name="c")
    async def c() -> S:
        ran.append("C")
        return S.DONE

    return (
        Workflow.bare()
        .register(S.A, a)
        .register(S.B, b)
        .register(S.C, c)
        .add_exit_state(S.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id(wid)
    )


async def _run_cut(wf: Workflow[S], how: str) -> float:
    """Run ``wf`` from A; it must be cut at its deadline the way ``how`` says.
    Returns the elapsed seconds."""
    started = time.monotonic()
    if how == "timeout":
        with pytest.raises(StateFailure) as info:
            await wf.with_total_timeout(_DEADLINE).orchestrate(S.A)
        assert isinstance(info.value.error, WorkflowTimeout), info.value
    elif how == "token":
        token = CancellationToken()
        async with anyio.create_task_group() as tg:

            async def cancel_later() -> None:
                await anyio.sleep(_DEADLINE)
                token.cancel()

            tg.start_soon(cancel_later)
            with pytest.raises(StateFailure) as info:
                await wf.orchestrate(S.A, cancel=token)
        assert isinstance(info.value.error, WorkflowCancelled), info.value
    else:
        with anyio.move_on_after(_DEADLINE) as scope:
            await wf.orchestrate(S.A)
        assert scope.cancelled_caught
    elapsed = time.monotonic() - started
    assert elapsed < _PROMPT, f"the run outlived its {_DEADLINE}s deadline: {elapsed:.1f}s"
    return elapsed


async def _states(store: Any, wid: str) -> list[str]:
    return [row.state for row in await store.load_run(wid)]


# -- SQLite: another process holds the write lock ----------------------------------

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print("ready", flush=True)
sys.stdin.readline()
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


class _LockHolder:
    """A child process that takes the file's write lock on `lock()` and gives it back
    on `release()` (killed with SIGKILL at `close()` whatever happened)."""

    def __init__(self, path: Path) -> None:
        root = str(Path(__file__).resolve().parents[2])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": root},
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == word, f"lock holder said {line!r}, expected {word!r}"

    def _say(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def lock(self) -> None:
        self._say()
        self._expect("locked")

    def release(self) -> None:
        self._say()
        self._expect("released")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


async def _sqlite_store(tmp_path: Path, **kwargs: Any) -> SqliteCheckpointStore:
    store = SqliteCheckpointStore(tmp_path / f"cp-{uuid.uuid4().hex[:6]}.db", **kwargs)
    await store.open()
    return store


@pytest.mark.parametrize("how", _HOWS)
async def test_sqlite_lock_held_by_another_process_ends_the_run_at_its_deadline(
    tmp_path: Path, how: str
) -> None:
    store = await _sqlite_store(tmp_path)  # busy_timeout: the default 30 s
    holder = await anyio.to_thread.run_sync(_LockHolder, store.path)
    wid = f"locked-{how}"
    ran: list[str] = []
    try:
        wf = _flow(store, wid, ran, holder.lock)
        await _run_cut(wf, how)  # A ran, then the append of B waited for the lock
        assert ran == ["A"]
        assert await _states(store, wid) == ["A"]  # B's row was not written
        await anyio.to_thread.run_sync(holder.release)
        # the same store object works, and resume re-runs from the last row
        assert await wf.resume_from(wid) is S.DONE
        assert ran == ["A", "A", "B", "C"]
        assert await _states(store, wid) == []
    finally:
        await anyio.to_thread.run_sync(holder.close)
        await store.aclose()


async def test_sqlite_busy_timeout_still_ends_a_wait_with_nobody_leaving(tmp_path: Path) -> None:
    """The lock wait is sliced, but ``busy_timeout`` keeps its meaning: a caller that
    does not leave gets the store error once it is spent."""
    store = await _sqlite_store(tmp_path, busy_timeout=0.3)
    holder = await anyio.to_thread.run_sync(_LockHolder, store.path)
    try:
        await anyio.to_thread.run_sync(holder.lock)
        started = time.monotonic()
        with pytest.raises(CheckpointStoreError, match="locked"):
            await store.append("w", CheckpointRow(0, "A", "a"))
        assert 0.25 <= time.monotonic() - started < _PROMPT
        await anyio.to_thread.run_sync(holder.release)
        await store.append("w", CheckpointRow(0, "A", "a"))
        assert await _states(store, "w") == ["A"]
    finally:
        await anyio.to_thread.run_sync(holder.close)
        await store.aclose()


async def test_a_cancelled_neighbour_in_a_grouped_commit_does_not_fail_the_other(
    tmp_path: Path,
) -> None:
    """Two runs' first appends share one batch, stuck on another process's lock; one
    run is cancelled: it ends at once, its row is not written, and the other run's
    append still commits when the lock comes free (and that run completes)."""
    store = await _sqlite_store(tmp_path)
    holder = await anyio.to_thread.run_sync(_LockHolder, store.path)
    runner = store._runner
    ran1: list[str] = []
    ran2: list[str] = []
    token = CancellationToken()
    outcome: dict[str, Any] = {}
    try:
        await anyio.to_thread.run_sync(holder.lock)
        async with anyio.create_task_group() as tg:
            # a first batch, stuck on the lock, so that both runs' appends queue up
            # behind it and then go together into the next one
            async def blocker() -> None:
                with anyio.move_on_after(0.5):
                    await store.append("blocker", CheckpointRow(0, "X", "x"))

            tg.start_soon(blocker)
            await _until(lambda: runner._batch is not None)

            async def run(name: str, ran: list[str], cancel: CancellationToken | None) -> None:
                try:
                    outcome[name] = await _flow(store, name, ran, None).orchestrate(
                        S.A, cancel=cancel
                    )
                except StateFailure as failure:
                    outcome[name] = failure

            tg.start_soon(run, "one", ran1, token)
            await _until(lambda: len(runner._queue) == 1)
            tg.start_soon(run, "two", ran2, None)
            # the blocker gives up; the two appends now share the stuck batch
            await _until(lambda: runner._batch is not None and len(runner._batch.ops) == 2)
            cancelled_at = time.monotonic()
            token.cancel()
            await _until(lambda: "one" in outcome)
            assert time.monotonic() - cancelled_at < _PROMPT
            assert "two" not in outcome  # still waiting for the lock, not failed
            await anyio.to_thread.run_sync(holder.release)
        failure = outcome["one"]
        assert isinstance(failure, StateFailure)
        assert isinstance(failure.error, WorkflowCancelled)
        assert outcome["two"] is S.DONE and ran2 == ["A", "B", "C"]
        assert ran1 == [] and await _states(store, "one") == []  # skipped, not written
        assert await _states(store, "blocker") == []
    finally:
        await anyio.to_thread.run_sync(holder.close)
        await store.aclose()


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)


# -- the group-commit runner: a caller leaves, the batch goes on ---------------------


class _Gates:
    """An executor whose every batch waits for its own `release(i)`."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gates = [threading.Event() for _ in range(8)]
        self.started = [threading.Event() for _ in range(8)]

    def __call__(self, batch: Sequence[Op]) -> None:
        i = len(self.batches)
        self.batches.append([op.args[0] for op in batch])
        self.started[i].set()
        self.gates[i].wait(10)
        for op in batch:
            op.succeed(op.args[0])


async def test_a_leader_cancelled_mid_batch_leaves_its_neighbour_served() -> None:
    ex = _Gates()
    abandoned: list[list[str]] = []
    runner = BatchRunner(ex, lambda ops: abandoned.append([op.args[0] for op in ops]))
    results: dict[str, Any] = {}
    leader = anyio.CancelScope()

    async def call(name: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            results[name] = await runner.submit(Op(OpKind.APPEND, name))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await anyio.to_thread.run_sync(ex.started[0].wait, 10)
        tg.start_soon(call, "leader", leader)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(call, "neighbour")
        await anyio.wait_all_tasks_blocked()
        ex.gates[0].set()
        await anyio.to_thread.run_sync(ex.started[1].wait, 10)
        assert ex.batches[1] == ["leader", "neighbour"]
        leader.cancel()
        await anyio.wait_all_tasks_blocked()
        assert "leader" not in results and "neighbour" not in results
        assert abandoned == []  # the neighbour still waits: nothing is cut short
        ex.gates[1].set()
    assert results == {"first": "first", "neighbour": "neighbour"}
    ex.gates[2].set()
    assert await runner.submit(Op(OpKind.APPEND, "after")) == "after"


async def test_the_store_is_told_once_every_caller_of_a_stuck_batch_has_left() -> None:
    ex = _Gates()
    abandoned: list[list[str]] = []
    runner = BatchRunner(ex, lambda ops: abandoned.append([op.args[0] for op in ops]))
    with anyio.move_on_after(0.2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.submit, Op(OpKind.APPEND, "x"))
            await anyio.to_thread.run_sync(ex.started[0].wait, 10)
            tg.start_soon(runner.submit, Op(OpKind.APPEND, "y"))
    assert abandoned == [["x"]]  # y was still queued: withdrawn, never ran
    ex.gates[0].set()
    ex.gates[1].set()
    assert await runner.submit(Op(OpKind.APPEND, "later")) == "later"
    assert ex.batches == [["x"], ["later"]]


async def test_a_call_cancelled_before_its_batch_reached_the_thread_never_runs() -> None:
    ex = _Gates()
    for gate in ex.gates:
        gate.set()
    runner = BatchRunner(ex)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await runner.submit(Op(OpKind.APPEND, "never"))
    assert scope.cancelled_caught
    assert await runner.submit(Op(OpKind.APPEND, "next")) == "next"
    assert ex.batches == [["next"]]


# -- PostgreSQL: a private server to freeze and restart ------------------------------


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in candidates:
        if all((d / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


class _PrivateServer:
    """A throw-away PostgreSQL server in a temp directory (as user postgres when root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="cano_pg_faults_"))
        self.data = self.base / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self._as("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def _as(self, exe: str, *args: str) -> None:
        cmd = [str(self.bindir / exe), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        self._as("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-o", opts,
                 "start")  # fmt: skip

    def stop(self) -> None:
        self._as("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self._as("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def backend_of(self, store: Any) -> int:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (store.application_name,),
            ).fetchall()
        assert len(rows) == 1, rows
        return int(rows[0][0])


@pytest.fixture(scope="module")
def pg_server() -> Iterator[_PrivateServer]:
    pytest.importorskip("psycopg")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, postgres)")
    try:
        server = _PrivateServer(bindir)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, LookupError, OSError) as exc:
        pytest.skip(f"cannot start a private PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.destroy()


def _pg_store(server: _PrivateServer) -> Any:
    from cano_dsl.stores import PostgresCheckpointStore

    return PostgresCheckpointStore(server.dsn, table=f"stuck_{uuid.uuid4().hex[:10]}")


@pytest.mark.postgres
@pytest.mark.parametrize("how", _HOWS)
async def test_postgres_frozen_backend_ends_the_run_at_its_deadline(
    pg_server: _PrivateServer, how: str
) -> None:
    store = _pg_store(pg_server)
    await store.open()
    frozen: list[int] = []

    def freeze() -> None:
        pid = pg_server.backend_of(store)
        os.kill(pid, signal.SIGSTOP)
        frozen.append(pid)

    wid = f"frozen-{how}"
    ran: list[str] = []
    try:
        wf = _flow(store, wid, ran, freeze)
        await _run_cut(wf, how)  # A froze the backend; the append of B never answered
        assert ran == ["A"] and len(frozen) == 1
        # the store works again at once (on a fresh connection), the frozen backend
        # still stopped; and after SIGCONT as well
        assert await _states(store, wid) == ["A"]
        os.kill(frozen.pop(), signal.SIGCONT)
        assert await wf.resume_from(wid) is S.DONE
        assert ran == ["A", "A", "B", "C"]
        assert await _states(store, wid) == []
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        await store.aclose()


@pytest.mark.postgres
async def test_postgres_server_restart_mid_run_fails_the_run_and_the_store_reconnects(
    pg_server: _PrivateServer,
) -> None:
    store = _pg_store(pg_server)
    await store.open()
    wid = "restart-mid-run"
    ran: list[str] = []
    try:
        wf = _flow(store, wid, ran, pg_server.stop)
        with pytest.raises(StateFailure) as info:
            await wf.orchestrate(S.A)
        assert isinstance(info.value.error, CheckpointStoreError), info.value
        assert ran == ["A"]
        await anyio.to_thread.run_sync(pg_server.start)
        assert await wf.resume_from(wid) is S.DONE  # the same store, reconnected
        assert ran == ["A", "A", "B", "C"]
        assert await _states(store, wid) == []
    finally:
        if subprocess.run(
            [str(pg_server.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(pg_server.port)],
            capture_output=True,
        ).returncode:
            await anyio.to_thread.run_sync(pg_server.start)
        await store.aclose()


@pytest.mark.postgres
async def test_postgres_idle_connection_closed_by_a_restart_is_replaced_unnoticed(
    pg_server: _PrivateServer,
) -> None:
    store = _pg_store(pg_server)
    try:
        await store.append("idle", CheckpointRow(0, "A", "a"))
        await anyio.to_thread.run_sync(pg_server.stop)
        await anyio.to_thread.run_sync(pg_server.start)
        await store.append("idle", CheckpointRow(1, "B", "b"))  # no error on the stale one
        assert await _states(store, "idle") == ["A", "B"]
    finally:
        await store.aclose()


# -- a saga step's completion row: the dispatch is not raced, its store wait is ------


class _Hooks(WorkflowObserver):
    def __init__(self) -> None:
        self.timeouts = 0
        self.clear_failed: list[str] = []

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self.timeouts += 1

    def on_checkpoint_clear_failed(self, workflow_id: str, error: BaseException) -> None:
        self.clear_failed.append(str(error))


async def test_a_saga_completion_row_stuck_on_the_lock_is_cut_and_compensated(
    tmp_path: Path,
) -> None:
    store = await _sqlite_store(tmp_path)
    holder = await anyio.to_thread.run_sync(_LockHolder, store.path)
    undone: list[int] = []

    @compensatable(state=S, config=TaskConfig.minimal(), name="reserve")
    class Reserve:
        async def run(self, res: Any) -> tuple[S, dict[str, int]]:
            await anyio.to_thread.run_sync(holder.lock)  # then its completion row waits
            return S.DONE, {"hold": 17}

        async def compensate(self, res: Any, output: dict[str, int]) -> None:
            undone.append(output["hold"])

    hooks = _Hooks()
    wf = (
        Workflow.bare()
        .register_with_compensation(S.A, Reserve())
        .add_exit_state(S.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("saga")
        .with_observer(hooks)
    )
    try:
        await _run_cut(wf, "timeout")
        assert undone == [17]  # the committed step was rolled back
        assert hooks.timeouts == 1
        # the clear after the drain is bounded too: the lock is still held
        assert len(hooks.clear_failed) == 1 and "did not answer" in hooks.clear_failed[0]
    finally:
        await anyio.to_thread.run_sync(holder.close)
        await store.aclose()


# -- PostgreSQL connection defaults: added, never overriding the DSN ------------------


def test_postgres_connection_defaults_never_override_the_dsn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    psycopg = pytest.importorskip("psycopg")
    from cano_dsl.stores import PostgresCheckpointStore
    from cano_dsl.stores.postgres import DEFAULT_CONNECTION

    monkeypatch.delenv("PGAPPNAME", raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)

    def params(store: Any) -> dict[str, Any]:
        return dict(psycopg.conninfo.conninfo_to_dict(store._dsn))

    plain = PostgresCheckpointStore("postgresql://u@db.internal/app", table="t")
    got = params(plain)
    for key, value in DEFAULT_CONNECTION.items():
        assert got[key] == value
    assert got["application_name"] == plain.application_name
    assert plain.application_name.startswith("cano_dsl t ")
    other = PostgresCheckpointStore("postgresql://u@db.internal/app", table="t")
    assert other.application_name != plain.application_name  # one per store object

    mine = PostgresCheckpointStore(
        "host=db user=u keepalives_idle=5 tcp_user_timeout=0 application_name=billing",
        table="t",
    )
    got = params(mine)
    assert got["keepalives_idle"] == "5" and got["tcp_user_timeout"] == "0"
    assert got["keepalives_count"] == "3"  # the ones the DSN leaves out are added
    assert mine.application_name == "billing"

    monkeypatch.setenv("PGAPPNAME", "from-env")
    assert "application_name" not in params(PostgresCheckpointStore("host=db", table="t"))
    service = PostgresCheckpointStore("service=prod", table="t")
    assert params(service) == {"service": "prod"}  # the service file decides
    assert service.application_name == "from-env"
