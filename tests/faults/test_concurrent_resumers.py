"""One owner per run (issue 8, item 2): a run being extended by someone else is never
compensated or cleared by the one that lost.

A crashed order (START → RESERVE, compensatable and committed → SLOW, crashed) is
resumed by several processes at once: one ships it, the others are refused by the
claim before they set anything up. A claim dies with its holder (SIGKILL), so the next
resume is never refused. A writer that does not claim (a foreign append at the run's
next sequence) stops the run with `CheckpointConflict`, without compensation and
without clearing. The child is ``tests/faults/resumer_driver.py``.
"""

from __future__ import annotations

import enum
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

import anyio
import pytest

from cano_dsl import (
    CheckpointConflict,
    CheckpointRow,
    CheckpointStoreError,
    Resources,
    RunClaimedError,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().with_name("resumer_driver.py")
PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"
TIMEOUT = 60.0
MINIMAL = TaskConfig.minimal()


# -- real processes --------------------------------------------------------------------


class Harness:
    """Driver processes against one store and one workflow id."""

    def __init__(self, store: str, wid: str, tmp: Path) -> None:
        self.store = store
        self.wid = wid
        self.effects = tmp / "effects.log"
        self.effects.touch()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def spawn(self, mode: str, tag: str, *extra: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, str(DRIVER), mode, "--store", self.store, "--id", self.wid]
        cmd += ["--effects", str(self.effects), "--tag", tag, *extra]
        return subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def start_blocked(self, mode: str, tag: str, *extra: str) -> subprocess.Popen[str]:
        """A child blocked in SLOW (so holding the run's claim)."""
        proc = self.spawn(mode, tag, *extra)
        wait_ready(proc)
        return proc

    def finish(self, mode: str, tag: str, *extra: str) -> dict[str, Any]:
        return report(self.spawn(mode, tag, *extra))

    def events(self, tag: str) -> list[str]:
        out = []
        for line in self.effects.read_text().splitlines():
            t, _, event = line.partition(" ")
            if t == tag:
                out.append(event)
        return out

    def all_events(self) -> list[str]:
        return [line.partition(" ")[2] for line in self.effects.read_text().splitlines()]


def wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            proc.kill()
            pytest.fail("child never reached SLOW")
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"child exited before reaching SLOW: {seen} {err}")
        if line.strip() == "ready SLOW":
            return
        seen.append(line)


def report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=TIMEOUT)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"child failed (rc={proc.returncode}): {err}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def stored_sequences(h: Harness) -> list[int]:
    kind, _, where = h.store.partition(":")
    if kind == "sqlite":
        with sqlite3.connect(where) as conn:
            rows = conn.execute(
                "SELECT sequence FROM cano_checkpoints WHERE workflow_id = ? ORDER BY sequence",
                (h.wid,),
            ).fetchall()
    else:
        import psycopg

        with psycopg.connect(os.environ[PG_ENV]) as pg:
            rows = pg.execute(
                f"SELECT sequence FROM {where} WHERE workflow_id = %s ORDER BY sequence", (h.wid,)
            ).fetchall()
    return [int(r[0]) for r in rows]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        yield Harness(f"sqlite:{tmp_path / 'orders.db'}", wid, tmp_path)
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    import psycopg

    table = f"cano_claims_{uuid.uuid4().hex[:10]}"
    yield Harness(f"postgres:{table}", wid, tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def crash_in_slow(h: Harness) -> None:
    """The issue's starting point: RESERVE committed, the process killed inside SLOW."""
    kill(h.start_blocked("run", "p0", "--crash-at", "SLOW"))
    assert h.events("p0") == ["setup", "run START", "run RESERVE", "run SLOW"]
    assert stored_sequences(h) == [0, 1, 2, 3]  # START, RESERVE, its completion, SLOW


@pytest.mark.parametrize("n", [2, 3])
def test_concurrent_resumers_one_ships_the_others_run_nothing(
    harness: Harness, tmp_path: Path, n: int
) -> None:
    crash_in_slow(harness)
    go = tmp_path / "go"
    backends = ["asyncio", "trio"]
    procs = [
        harness.spawn("resume", f"r{i}", "--hold", str(go), "--backend", backends[i % 2])
        for i in range(n)
    ]
    try:
        # the winner holds the run in SLOW until `go` exists: every other resumer must
        # come and go meanwhile
        deadline = time.monotonic() + TIMEOUT
        while sum(p.poll() is not None for p in procs) < n - 1:
            assert time.monotonic() < deadline, "the losing resumers did not finish"
            time.sleep(0.05)
        alive = [p for p in procs if p.poll() is None]
        assert len(alive) == 1, [p.poll() for p in procs]
        winner = alive[0]
        wait_ready(winner)
        losers = [p for p in procs if p is not winner]
        refusals = [report(p) for p in losers]
        go.touch()
        assert report(winner) == {"result": "DONE"}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for refusal in refusals:
        assert refusal["error"] == "RunClaimedError", refusal
        assert refusal["category"] == "checkpoint_store"
        assert f"{harness.wid!r} is being run elsewhere" in refusal["message"]
    w = procs.index(winner)
    for i in range(n):
        if i != w:  # no resource setup, no state, no compensation, no clear
            assert harness.events(f"r{i}") == []
    assert harness.events(f"r{w}") == ["setup", "run SLOW", "run SHIP", "teardown"]
    assert "undo RESERVE" not in harness.all_events()
    assert harness.all_events().count("run SHIP") == 1
    assert stored_sequences(harness) == []  # cleared once, by the winner, at the end


def test_a_killed_holder_never_blocks_the_next_resume(harness: Harness) -> None:
    crash_in_slow(harness)
    for i in range(3):
        holder = harness.start_blocked(
            "resume", f"k{i}", "--crash-at", "SLOW", "--backend", ["trio", "asyncio"][i % 2]
        )
        if i == 0:  # while the holder lives the run is refused...
            refused = harness.finish("resume", "x")
            assert refused["error"] == "RunClaimedError", refused
            assert harness.events("x") == []
        kill(holder)  # ...and once it is killed the next resume (right away) is not
    assert harness.finish("resume", "f") == {"result": "DONE"}
    for i in range(3):
        assert harness.events(f"k{i}") == ["setup", "run SLOW"]
    assert harness.events("f") == ["setup", "run SLOW", "run SHIP", "teardown"]
    assert "undo RESERVE" not in harness.all_events()
    assert stored_sequences(harness) == []


# -- one process -----------------------------------------------------------------------


class Order(enum.Enum):
    START = enum.auto()
    RESERVE = enum.auto()
    SLOW = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


class Shop:
    """The in-process order workflow; ``fx`` records every effect."""

    def __init__(self) -> None:
        self.fx: list[str] = []
        self.in_slow = anyio.Event()
        self.go = anyio.Event()
        self.during_slow: Any = None  # async callable, run inside SLOW
        self.during_reserve: Any = None  # async callable, run inside RESERVE

    def build(self, store: Any) -> Workflow[Order]:
        fx = self.fx
        shop = self

        class Warehouse:
            async def setup(self) -> None:
                fx.append("setup")

            async def teardown(self) -> None:
                fx.append("teardown")

        @task(config=MINIMAL, name="start")
        async def start(res: Resources) -> Order:
            fx.append("run START")
            return Order.RESERVE

        @compensatable(state=Order, config=MINIMAL, name="reserve")
        class Reserve:
            async def run(self, res: Resources) -> tuple[Order, dict[str, Any]]:
                fx.append("run RESERVE")
                if shop.during_reserve is not None:
                    await shop.during_reserve()
                return Order.SLOW, {"sku": "book"}

            async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
                fx.append("undo RESERVE")

        @task(config=MINIMAL, name="slow")
        async def slow(res: Resources) -> Order:
            fx.append("run SLOW")
            if shop.during_slow is not None:
                await shop.during_slow()
            return Order.SHIP

        @task(config=MINIMAL, name="ship")
        async def ship(res: Resources) -> Order:
            fx.append("run SHIP")
            return Order.DONE

        return (
            Workflow(Resources().insert("warehouse", Warehouse()))
            .register(Order.START, start)
            .register_with_compensation(Order.RESERVE, Reserve())
            .register(Order.SLOW, slow)
            .register(Order.SHIP, ship)
            .add_exit_state(Order.DONE)
            .with_workflow_version(1)
            .with_checkpoint_store(store)
        )

    async def hold(self) -> None:
        self.in_slow.set()
        await self.go.wait()


async def crashed_log(store: Any, wid: str) -> None:
    """The log a process killed inside SLOW leaves (RESERVE committed)."""
    for row in (
        CheckpointRow(0, "START", "start", workflow_version=1),
        CheckpointRow(1, "RESERVE", "reserve", workflow_version=1),
        CheckpointRow(2, "RESERVE", "reserve", workflow_version=1).with_output(b'{"sku":"book"}'),
        CheckpointRow(3, "SLOW", "slow", workflow_version=1),
    ):
        await store.append(wid, row)


async def sequences(store: Any, wid: str) -> list[int]:
    return [row.sequence for row in await store.load_run(wid)]


@pytest.mark.anyio
async def test_two_resumes_in_one_process_one_is_refused(store: Any) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    shop = Shop()
    shop.during_slow = shop.hold
    wf = shop.build(store)
    await crashed_log(store, wid)
    results: list[Any] = []

    async def first() -> None:
        results.append(await wf.resume_from(wid))

    with anyio.fail_after(15):  # fail, not hang, if the second one is let in
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await shop.in_slow.wait()
            try:
                with pytest.raises(RunClaimedError) as info:
                    await wf.resume_from(wid)
            finally:
                shop.go.set()
    assert info.value.workflow_id == wid and info.value.category == "checkpoint_store"
    assert results == [Order.DONE]
    # one setup: the refused resume set nothing up and ran nothing
    assert shop.fx == ["setup", "run SLOW", "run SHIP", "teardown"]
    assert await store.load_run(wid) == []


@pytest.mark.anyio
async def test_orchestrate_while_a_resume_holds_the_run_is_refused(store: Any) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    shop = Shop()
    shop.during_slow = shop.hold
    wf = shop.build(store)
    await crashed_log(store, wid)
    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wf.resume_from, wid)
            await shop.in_slow.wait()
            try:
                with pytest.raises(RunClaimedError, match="is being run elsewhere"):
                    await wf.with_workflow_id(wid).orchestrate(Order.START)
                assert shop.fx == ["setup", "run SLOW"]  # no second setup, no START
                assert await sequences(store, wid) == [0, 1, 2, 3, 4]
            finally:
                shop.go.set()
    assert "undo RESERVE" not in shop.fx
    assert await store.load_run(wid) == []


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_second_store_object_on_the_same_database_is_refused(
    kind: str, tmp_path: Path
) -> None:
    from cano_dsl.stores import PostgresCheckpointStore, SqliteCheckpointStore

    stores: list[Any]
    if kind == "sqlite":
        stores = [SqliteCheckpointStore(tmp_path / "cp.db") for _ in range(2)]
    else:
        dsn = os.environ.get(PG_ENV)
        if not dsn:
            pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
        table = f"cano_claims_{uuid.uuid4().hex[:10]}"
        stores = [PostgresCheckpointStore(dsn, table=table) for _ in range(2)]
    try:
        held = await stores[0].claim("run-a")
        with pytest.raises(RunClaimedError) as info:
            await stores[1].claim("run-a")
        assert info.value.workflow_id == "run-a"
        other = await stores[1].claim("run-b")  # another id is independent
        await held.release()
        again = await stores[1].claim("run-a")  # released: free again
        await again.release()
        await other.release()
        await held.release()  # idempotent
    finally:
        for s in stores:
            await s.aclose()
        if kind == "postgres":
            import psycopg

            with psycopg.connect(os.environ[PG_ENV], autocommit=True) as conn:
                conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.anyio
async def test_a_foreign_append_mid_run_stops_it_without_compensating_or_clearing(
    store: Any,
) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    shop = Shop()

    async def foreign_writer() -> None:  # an unclaimed writer takes the next sequence
        await store.append(wid, CheckpointRow(5, "ELSEWHERE", "other", workflow_version=1))

    shop.during_slow = foreign_writer
    wf = shop.build(store)
    await crashed_log(store, wid)
    with pytest.raises(StateFailure) as info:
        await wf.resume_from(wid)
    assert "undo RESERVE" not in shop.fx  # RESERVE belongs to the log's owner now
    assert shop.fx == ["setup", "run SLOW", "teardown"]
    assert await sequences(store, wid) == [0, 1, 2, 3, 4, 5]  # not cleared
    assert [r.state for r in await store.load_run(wid)][-1] == "ELSEWHERE"
    err = info.value
    assert err.state is Order.SHIP and isinstance(err.error, CheckpointConflict)
    assert err.error.workflow_id == wid and err.error.sequence == 5
    assert isinstance(err.error, CheckpointStoreError) and err.category == "checkpoint_store"


@pytest.mark.anyio
async def test_a_foreign_completion_row_stops_the_saga_step_without_compensating(
    store: Any,
) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    shop = Shop()

    async def foreign_writer() -> None:  # takes RESERVE's completion sequence
        await store.append(wid, CheckpointRow(2, "ELSEWHERE", "other", workflow_version=1))

    shop.during_reserve = foreign_writer
    wf = shop.build(store).with_workflow_id(wid)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Order.START)
    assert shop.fx == ["setup", "run START", "run RESERVE", "teardown"]  # no undo
    assert await sequences(store, wid) == [0, 1, 2]  # not cleared
    assert info.value.state is Order.RESERVE
    assert isinstance(info.value.error, CheckpointConflict)


class LegacyStore(InMemoryCheckpointStore):
    """A user's store written before `CheckpointConflict`: it raises the contract's
    ``CheckpointStoreError("checkpoint conflict: ...")`` and cannot claim."""

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        try:
            await super().append(workflow_id, row)
        except CheckpointConflict as exc:
            raise CheckpointStoreError(exc.message) from None

    claim = None  # type: ignore[assignment]


@pytest.mark.anyio
async def test_a_plain_conflict_error_of_a_custom_store_is_a_conflict_too() -> None:
    store = LegacyStore()
    wid = "order-legacy"
    shop = Shop()

    async def foreign_writer() -> None:
        await store.append(wid, CheckpointRow(5, "ELSEWHERE", "other", workflow_version=1))

    shop.during_slow = foreign_writer
    await crashed_log(store, wid)
    with pytest.raises(StateFailure) as info:
        await shop.build(store).resume_from(wid)
    assert "undo RESERVE" not in shop.fx
    assert await sequences(store, wid) == [0, 1, 2, 3, 4, 5]
    assert isinstance(info.value.error, CheckpointConflict)


@pytest.mark.anyio
async def test_the_claim_is_released_when_the_run_fails(store: Any) -> None:
    wid = f"order-{uuid.uuid4().hex[:8]}"
    shop = Shop()
    failures = [RuntimeError("SLOW failed")]

    async def fail_once() -> None:
        if failures:
            raise failures.pop()

    shop.during_slow = fail_once
    wf = shop.build(store)
    await crashed_log(store, wid)
    with pytest.raises(StateFailure):
        await wf.resume_from(wid)  # RESERVE is rolled back, the log cleared
    assert shop.fx.count("undo RESERVE") == 1
    await crashed_log(store, wid)
    assert await wf.resume_from(wid) is Order.DONE  # not refused: the claim was released
    assert await wf.with_workflow_id(wid).orchestrate(Order.START) is Order.DONE


def open_descriptors_of(path: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == str(path):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.anyio
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
async def test_the_claims_file_stays_open_only_while_a_store_uses_it(tmp_path: Path) -> None:
    import gc

    from cano_dsl.stores import SqliteCheckpointStore

    db = tmp_path / "cp.db"
    sidecar = Path(os.path.realpath(db) + "-claims")
    shop = Shop()
    store = SqliteCheckpointStore(db)
    wf = shop.build(store).with_workflow_id("order-1")
    assert await wf.orchestrate(Order.START) is Order.DONE
    assert sidecar.exists() and open_descriptors_of(sidecar) == 1  # kept for the next run
    other = SqliteCheckpointStore(db)
    held = await other.claim("order-2")  # the same descriptor: one per process
    assert open_descriptors_of(sidecar) == 1
    await store.aclose()
    assert open_descriptors_of(sidecar) == 1  # `other` still uses it (and holds a claim)
    await held.release()
    await other.aclose()
    assert open_descriptors_of(sidecar) == 0
    forgotten = SqliteCheckpointStore(db)  # never closed: collected instead
    await (await forgotten.claim("order-3")).release()
    assert open_descriptors_of(sidecar) == 1
    del forgotten
    gc.collect()
    assert open_descriptors_of(sidecar) == 0


class BrokenClaimStore(InMemoryCheckpointStore):
    """A user's store whose claim fails with a foreign exception."""

    async def claim(self, workflow_id: str) -> Any:
        raise OSError("lock service unreachable")


@pytest.mark.anyio
async def test_a_failing_claim_is_a_store_error_before_anything_runs() -> None:
    store = BrokenClaimStore()
    shop = Shop()
    await crashed_log(store, "order-x")
    with pytest.raises(CheckpointStoreError, match="claim workflow run 'order-x'.*unreachable"):
        await shop.build(store).resume_from("order-x")
    with pytest.raises(CheckpointStoreError, match="claim workflow run 'order-x'"):
        await shop.build(store).with_workflow_id("order-x").orchestrate(Order.START)
    assert shop.fx == []  # no setup, no state
    assert await sequences(store, "order-x") == [0, 1, 2, 3]


@pytest.mark.anyio
@pytest.mark.postgres
async def test_closing_a_postgres_store_drops_its_claims(tmp_path: Path) -> None:
    from cano_dsl.stores import PostgresCheckpointStore

    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
    table = f"cano_claims_{uuid.uuid4().hex[:10]}"
    first, second = (PostgresCheckpointStore(dsn, table=table) for _ in range(2))
    try:
        held = await first.claim("run-a")
        with pytest.raises(RunClaimedError):
            await second.claim("run-a")
        await first.aclose()  # its claims connection closes: the server frees the lock
        await (await second.claim("run-a")).release()
        await held.release()  # after the close: a no-op
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_postgres_store_reconnects_its_claims_after_the_server_drops_them() -> None:
    import psycopg

    from cano_dsl.stores import PostgresCheckpointStore

    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
    table = f"cano_claims_{uuid.uuid4().hex[:10]}"
    store, other = (PostgresCheckpointStore(dsn, table=table) for _ in range(2))
    try:
        held = await store.claim("run-a")
        pid = store._claims._conn.info.backend_pid  # the claims session
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # the documented limit: the claim died with its session, so another may take it
        with anyio.fail_after(20):
            while True:
                try:
                    await (await other.claim("run-a")).release()
                    break
                except RunClaimedError:
                    await anyio.sleep(0.05)  # the backend is still exiting
        # and the store claims again at once, on a fresh connection
        await (await store.claim("run-b")).release()
        await held.release()
    finally:
        await store.aclose()
        await other.aclose()


@pytest.mark.anyio
async def test_an_unusable_claims_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    from cano_dsl.stores import SqliteCheckpointStore

    db = tmp_path / "cp.db"
    sidecar = Path(os.path.realpath(db) + "-claims")
    sidecar.mkdir()  # not a file: cannot be opened for the locks
    shop = Shop()
    async with SqliteCheckpointStore(db) as store:
        await crashed_log(store, "order-1")
        with pytest.raises(CheckpointStoreError, match="cannot open the claims file") as info:
            await shop.build(store).resume_from("order-1")
        assert str(sidecar) in str(info.value)
        assert shop.fx == []
        assert await sequences(store, "order-1") == [0, 1, 2, 3]


# -- a frozen server (a private one: its backend is stopped with SIGSTOP) --------------


def _pg_bindir() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


@pytest.fixture(scope="module")
def private_pg() -> Iterator[str]:
    """A throw-away PostgreSQL server of this module's own (trust auth), as a DSN."""
    import shutil
    import socket
    import tempfile

    bindir = _pg_bindir()
    if bindir is None or not os.environ.get(PG_ENV):
        pytest.skip("no PostgreSQL server binaries")
    base = Path(tempfile.mkdtemp(prefix="cano_claims_pg_"))
    as_server: list[str] = []
    if os.getuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"

    def run(*cmd: str) -> None:
        subprocess.run([*as_server, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-N")
        run(
            str(bindir / "pg_ctl"),
            *("-D", str(data), "-l", str(base / "log"), "-w", "-t", "60"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off",
            "start",
        )
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL server: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_server, str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "immediate"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.anyio
@pytest.mark.postgres
async def test_a_frozen_server_holds_neither_a_release_nor_a_claim(private_pg: str) -> None:
    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_claims_{uuid.uuid4().hex[:10]}"
    # connect_timeout=1: a claim waits at most 1 + 5 s for the server
    store = PostgresCheckpointStore(private_pg, table=table, connect_timeout=1)
    other = PostgresCheckpointStore(private_pg, table=table)
    held = await store.claim("run-a")
    backend = store._claims._conn.info.backend_pid
    os.kill(backend, signal.SIGSTOP)
    try:
        with anyio.fail_after(30):  # without the bounds both calls below hang forever
            await held.release()  # gives up waiting after ~2 s; the unlock is pending
            with pytest.raises(CheckpointStoreError, match="no answer from the server"):
                await store.claim("run-b")
        with pytest.raises(RunClaimedError):  # still held: its unlock has not run
            await other.claim("run-a")
    finally:
        os.kill(backend, signal.SIGCONT)
    with anyio.fail_after(30):  # the server answers again: the pending unlock runs
        while True:
            try:
                await (await other.claim("run-a")).release()
                break
            except RunClaimedError:
                await anyio.sleep(0.05)
        await (await store.claim("run-b")).release()  # and the store claims again
    await store.aclose()
    await other.aclose()
