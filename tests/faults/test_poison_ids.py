"""Poison in a grouped commit: one bad op fails alone, its batch neighbours are durable.

Issue 8 item 1. Each test queues good appends and one poisoned call into the *same*
batch of a real store (the batch ahead of them is held up by a real lock: another
connection's write transaction), then checks from a separate connection (and once from
a separate process) that every neighbour was committed and that no lock was left behind.

Poisons: bad workflow ids (lone surrogate, NUL, empty, not a str, too long), which are a
`ConfigurationError` at the call and never reach the batch; and rows that pass every
check but fail inside the batch: a label that cannot be encoded, a NUL PostgreSQL text
cannot hold, a value whose adaptation raises something unforeseen (a `RuntimeError`),
and a row the database itself refuses (a trigger). A `BaseException` raised inside a
batch rolls it back, fails its neighbours with `CheckpointStoreError` and leaves no lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import cano_dsl
from cano_dsl import CheckpointStoreError, ConfigurationError, Workflow
from cano_dsl._ids import MAX_WORKFLOW_ID_BYTES
from cano_dsl.stores import CheckpointRow, PostgresCheckpointStore, SqliteCheckpointStore
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio

REPO_ROOT = str(Path(cano_dsl.__file__).resolve().parent.parent)
PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
NEIGHBOURS = [f"good-{i}" for i in range(5)]


class Poison:
    """A value the drivers hand to an adapter that raises what no store expects."""

    def __conform__(self, protocol: object) -> object:  # sqlite3's adaptation hook
        raise RuntimeError("adapter exploded")


class Abort(BaseException):
    """Something that is not an Exception, raised from inside a batch."""


class AbortingPoison:
    def __conform__(self, protocol: object) -> object:
        raise Abort("abort inside the batch")


def _register_psycopg_dumpers() -> None:
    import psycopg
    from psycopg.adapt import Dumper

    class PoisonDumper(Dumper):
        def dump(self, obj: object) -> bytes:
            raise RuntimeError("adapter exploded")

    class AbortingDumper(Dumper):
        def dump(self, obj: object) -> bytes:
            raise Abort("abort inside the batch")

    psycopg.adapters.register_dumper(Poison, PoisonDumper)
    psycopg.adapters.register_dumper(AbortingPoison, AbortingDumper)


def _poisoned_row(value: object) -> CheckpointRow:
    row = CheckpointRow(0, "S", "t")
    object.__setattr__(row, "output_blob", value)  # past the row's own checks
    return row


# -- a real store of each kind, a blocker that holds its next batch back, and a reader --


class Harness:
    """One store plus the means to hold its batches back and to inspect it from outside."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.path = tmp_path / "poison.db"
        self.dsn = os.environ.get(PG_ENV, "")
        self.table = f"cano_test_{uuid.uuid4().hex[:10]}"
        self.store: Any
        self._blocker: Any = None
        if kind == "postgres":
            if not self.dsn:
                pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
            _register_psycopg_dumpers()
            self.store = PostgresCheckpointStore(self.dsn, table=self.table)
        else:
            self.store = SqliteCheckpointStore(self.path, busy_timeout=30)

    def _pg(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def add_reject_trigger(self) -> None:
        """Make the database itself refuse rows whose state is REJECT."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path, isolation_level=None) as conn:
                conn.execute(
                    "CREATE TRIGGER reject BEFORE INSERT ON cano_checkpoints "
                    "WHEN NEW.state = 'REJECT' BEGIN SELECT RAISE(ABORT, 'rejected'); END"
                )
            conn.close()
            return
        with self._pg() as conn:
            conn.execute(
                f"CREATE FUNCTION {self.table}_reject() RETURNS trigger AS $$ BEGIN "
                "IF NEW.state = 'REJECT' THEN RAISE EXCEPTION 'rejected' USING "
                "ERRCODE = '22023'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.execute(
                f"CREATE TRIGGER reject BEFORE INSERT ON {self.table} FOR EACH ROW "
                f"EXECUTE FUNCTION {self.table}_reject()"
            )

    def block(self, seq: int = 0) -> None:
        """Hold the store's next append (to id ``anchor``) behind another transaction."""
        if self.kind == "sqlite":
            self._blocker = sqlite3.connect(self.path, isolation_level=None)
            self._blocker.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self._blocker = psycopg.connect(self.dsn)
            self._blocker.execute(
                f"INSERT INTO {self.table} (workflow_id, sequence, state, task_id) "
                "VALUES ('anchor', %s, 'BLOCKER', 't')",
                (seq,),
            )

    def unblock(self) -> None:
        blocker, self._blocker = self._blocker, None
        if blocker is not None:
            blocker.rollback() if self.kind == "postgres" else blocker.execute("ROLLBACK")
            blocker.close()

    def committed_ids(self) -> list[str]:
        """The ids with committed rows, read over a separate connection; that connection
        then writes at once (no wait) to prove no lock was left behind."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            try:
                ids = [
                    w for (w,) in conn.execute("SELECT DISTINCT workflow_id FROM cano_checkpoints")
                ]
                conn.execute(
                    "INSERT INTO cano_checkpoints (workflow_id, sequence, state, task_id) "
                    "VALUES (?, 0, 'S', 't')",
                    (f"outsider-{uuid.uuid4().hex}",),
                )
            finally:
                conn.close()
            return sorted(ids)
        with self._pg() as conn:
            conn.execute("SET lock_timeout = '5s'")
            ids = [w for (w,) in conn.execute(f"SELECT DISTINCT workflow_id FROM {self.table}")]
            # the table lock a migration takes waits for every open transaction on it
            conn.execute(
                f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS "
                "workflow_version bigint NOT NULL DEFAULT 0"
            )
            conn.execute(
                f"INSERT INTO {self.table} (workflow_id, sequence, state, task_id) "
                "VALUES (%s, 0, 'S', 't')",
                (f"outsider-{uuid.uuid4().hex}",),
            )
        return sorted(ids)

    async def close(self) -> None:
        await self.store.aclose()
        if self.kind == "postgres":
            with self._pg() as conn:
                conn.execute(f"DROP TABLE IF EXISTS {self.table}")
                conn.execute(f"DROP FUNCTION IF EXISTS {self.table}_reject()")


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(str(request.param), tmp_path)
    await h.store.open()
    yield h
    await h.close()


async def _one_batch(
    h: Harness, poisoned: Callable[[], Awaitable[object]], seq: int = 0
) -> tuple[dict[str, object], object]:
    """Run good appends and ``poisoned()`` queued together behind a held-up append;
    return every good call's outcome and the poisoned call's."""
    outcomes: dict[str, object] = {}

    async def call(name: str, fn: Callable[[], Awaitable[object]]) -> None:
        try:
            outcomes[name] = await fn()
        except BaseException as exc:  # every outcome is inspected
            outcomes[name] = exc

    def good(wid: str) -> Callable[[], Awaitable[object]]:
        return lambda: h.store.append(wid, CheckpointRow(seq, "S", "t"))

    h.block(seq)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "anchor", good("anchor"))
            await anyio.wait_all_tasks_blocked()
            for i, wid in enumerate(NEIGHBOURS):
                tg.start_soon(call, wid, good(wid))
                if i == 2:
                    tg.start_soon(call, "poisoned", poisoned)
            await anyio.wait_all_tasks_blocked()
            h.unblock()
    finally:
        h.unblock()
    return outcomes, outcomes.pop("poisoned")


def _assert_neighbours_durable(h: Harness, outcomes: dict[str, object]) -> None:
    assert all(result is None for result in outcomes.values()), outcomes
    committed = h.committed_ids()
    assert set(NEIGHBOURS) | {"anchor"} <= set(committed), committed


BAD_IDS = [
    pytest.param("job-\udcff", "cannot be encoded as UTF-8", id="lone-surrogate"),
    pytest.param("job\x00x", "NUL", id="nul"),
    pytest.param("", "empty", id="empty"),
    pytest.param(b"job-1", "got bytes", id="bytes"),
    pytest.param(None, "got NoneType", id="none"),
    pytest.param(42, "got int", id="int"),
    pytest.param("é" * (MAX_WORKFLOW_ID_BYTES // 2 + 1), "1026 bytes", id="too-long"),
]


@pytest.mark.parametrize(("bad", "says"), BAD_IDS)
async def test_a_bad_id_is_refused_at_the_call_and_its_batch_commits(
    harness: Harness, bad: object, says: str
) -> None:
    outcomes, poisoned = await _one_batch(
        harness, lambda: harness.store.append(bad, CheckpointRow(0, "S", "t"))
    )
    assert isinstance(poisoned, ConfigurationError), poisoned
    assert says in str(poisoned) and "append" in str(poisoned)
    assert "non-empty str" in str(poisoned)  # says what is allowed
    _assert_neighbours_durable(harness, outcomes)
    for call in (harness.store.load_run(bad), harness.store.clear(bad)):  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=says):
            await call


ROW_POISONS = [
    pytest.param("state-lone-surrogate", id="state-lone-surrogate"),
    pytest.param("task-nul", id="task-nul"),
    pytest.param("adapter-raises", id="adapter-raises"),
    pytest.param("database-rejects", id="database-rejects"),
]


@pytest.mark.parametrize("poison", ROW_POISONS)
async def test_a_row_that_fails_inside_the_batch_fails_alone(harness: Harness, poison: str) -> None:
    if poison == "database-rejects":
        harness.add_reject_trigger()
    row = {
        "state-lone-surrogate": CheckpointRow(0, "S\udcff", "t"),
        "task-nul": CheckpointRow(0, "S", "t\x00"),
        "adapter-raises": _poisoned_row(Poison()),
        "database-rejects": CheckpointRow(0, "REJECT", "t"),
    }[poison]
    outcomes, poisoned = await _one_batch(harness, lambda: harness.store.append("bad", row))
    if poison == "task-nul" and harness.kind == "sqlite":
        assert poisoned is None  # SQLite text holds a NUL: stored, and it round-trips
        assert await harness.store.load_run("bad") == [row]
    else:
        assert isinstance(poisoned, CheckpointStoreError), repr(poisoned)
        assert "append 'bad' sequence=0" in str(poisoned)
        assert poisoned.__cause__ is not None
        if poison == "adapter-raises":
            assert isinstance(poisoned.__cause__, RuntimeError)
        assert await harness.store.load_run("bad") == []
    _assert_neighbours_durable(harness, outcomes)
    assert "bad" not in harness.committed_ids() or poison == "task-nul"
    # and the store carries on
    await harness.store.append("after", CheckpointRow(0, "S", "t"))
    assert len(await harness.store.load_run("after")) == 1


async def test_a_base_exception_inside_a_batch_leaves_no_transaction(harness: Harness) -> None:
    outcomes, poisoned = await _one_batch(
        harness, lambda: harness.store.append("bad", _poisoned_row(AbortingPoison()))
    )
    everything = [*outcomes.values(), poisoned]
    aborted = [o for o in everything if isinstance(o, Abort)]
    failed = [o for o in everything if isinstance(o, CheckpointStoreError)]
    fine = [name for name, o in outcomes.items() if o is None]
    assert len(aborted) == 1, everything  # the batch's leader gets it, as it propagates
    assert all("rolled back" in str(e) or "interrupted" in str(e) for e in failed), failed
    committed = harness.committed_ids()  # no lock left: this writes at once
    # every call either returned and is durable, or raised and is absent
    assert set(fine) <= set(committed), (fine, committed)
    lost = set(NEIGHBOURS) - set(fine)
    assert not lost & set(committed), (lost, committed)
    assert "bad" not in committed
    await harness.store.append("after", CheckpointRow(0, "S", "t"))
    assert len(await harness.store.load_run("after")) == 1


_READER = textwrap.dedent(
    """
    import json, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
    ids = sorted(w for (w,) in conn.execute("SELECT DISTINCT workflow_id FROM cano_checkpoints"))
    conn.execute("INSERT INTO cano_checkpoints (workflow_id, sequence, state, task_id) "
                 "VALUES ('other-process', 0, 'S', 't')")
    print(json.dumps(ids))
    """
)


async def test_sqlite_neighbours_are_visible_to_another_process_at_once(tmp_path: Path) -> None:
    h = Harness("sqlite", tmp_path)
    await h.store.open()
    try:
        outcomes, poisoned = await _one_batch(
            h, lambda: h.store.append("job-\udcff", CheckpointRow(0, "S", "t"))
        )
        assert isinstance(poisoned, ConfigurationError)
        assert all(result is None for result in outcomes.values()), outcomes
        outcomes2, poisoned2 = await _one_batch(
            h, lambda: h.store.append("bad", CheckpointRow(0, "S\udcff", "t")), seq=1
        )
        assert isinstance(poisoned2, CheckpointStoreError)
        assert all(result is None for result in outcomes2.values()), outcomes2
        proc = await anyio.run_process(
            [sys.executable, "-c", _READER, str(h.path)],
            env={**os.environ, "PYTHONPATH": REPO_ROOT},
        )
        ids = json.loads(proc.stdout)
        assert set(NEIGHBOURS) | {"anchor"} <= set(ids), ids
        # and this store can still write after the other process did
        await h.store.append("after", CheckpointRow(0, "S", "t"))
    finally:
        await h.close()


# -- the other boundaries: the workflow builder, resume_from, the in-memory store -------


@pytest.mark.parametrize(("bad", "says"), BAD_IDS)
async def test_bad_ids_are_refused_by_builder_resume_and_in_memory_store(
    bad: object, says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        Workflow.bare().with_workflow_id(bad)  # type: ignore[arg-type]
    wf = Workflow.bare().with_checkpoint_store(InMemoryCheckpointStore())
    with pytest.raises(ConfigurationError, match=says):
        await wf.resume_from(bad)  # type: ignore[arg-type]
    store = InMemoryCheckpointStore()
    for call in (
        store.append(bad, CheckpointRow(0, "S", "t")),  # type: ignore[arg-type]
        store.load_run(bad),  # type: ignore[arg-type]
        store.clear(bad),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError, match=says):
            await call
    assert store.workflow_ids() == []


def test_the_longest_id_is_accepted_and_a_str_subclass_is_stored_as_str() -> None:
    from cano_dsl._ids import check_workflow_id

    longest = "é" * (MAX_WORKFLOW_ID_BYTES // 2)
    assert check_workflow_id(longest, "here") == longest

    class Name(str):
        pass

    checked = check_workflow_id(Name("run-1"), "here")
    assert checked == "run-1" and type(checked) is str
