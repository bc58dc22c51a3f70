"""PostgresCheckpointStore beyond the shared contract (needs CANO_DSL_TEST_POSTGRES_DSN)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import psycopg
import pytest

from cano_dsl._errors import CheckpointStoreError, ConfigurationError
from cano_dsl.stores import PostgresCheckpointStore
from cano_dsl.stores._row import CheckpointRow

pytestmark = pytest.mark.anyio


def test_table_must_be_a_plain_identifier() -> None:
    with pytest.raises(ConfigurationError, match="identifier"):
        PostgresCheckpointStore("postgresql://localhost/db", table="x; DROP TABLE y")


def test_invalid_dsn_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="invalid dsn"):
        PostgresCheckpointStore("not a dsn")


def test_repr_hides_the_password() -> None:
    store = PostgresCheckpointStore("postgresql://ada:s3cret@db.example:6543/app")
    assert "s3cret" not in repr(store)
    assert "db.example:6543/app" in repr(store)


async def test_unreachable_server_is_a_checkpoint_store_error() -> None:
    store = PostgresCheckpointStore("postgresql://postgres@127.0.0.1:1/nowhere", connect_timeout=2)
    with pytest.raises(CheckpointStoreError, match="cannot connect") as info:
        await store.load_run("run")
    assert isinstance(info.value.__cause__, psycopg.Error)
    await store.aclose()


@pytest.fixture
async def table(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"cano_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.postgres
async def test_many_stores_create_the_table_at_once(postgres_dsn: str, table: str) -> None:
    stores = [PostgresCheckpointStore(postgres_dsn, table=table) for _ in range(8)]
    async with anyio.create_task_group() as tg:
        for i, store in enumerate(stores):
            tg.start_soon(store.append, f"run-{i}", CheckpointRow(0, "A", "t"))
    for i, store in enumerate(stores):
        assert len(await store.load_run(f"run-{i}")) == 1
        await store.aclose()


@pytest.mark.postgres
async def test_separate_connections_race_to_one_winner(postgres_dsn: str, table: str) -> None:
    stores = [PostgresCheckpointStore(postgres_dsn, table=table) for _ in range(6)]
    for store in stores:
        await store.open()
    won: list[int] = []

    async def contender(i: int) -> None:
        try:
            await stores[i].append("run", CheckpointRow(0, f"C{i}", "t"))
            won.append(i)
        except CheckpointStoreError as exc:
            assert "checkpoint conflict" in str(exc)

    async with anyio.create_task_group() as tg:
        for i in range(len(stores)):
            tg.start_soon(contender, i)
    assert len(won) == 1
    assert [r.state for r in await stores[0].load_run("run")] == [f"C{won[0]}"]
    for store in stores:
        await store.aclose()


@pytest.mark.postgres
async def test_undecodable_row_names_workflow_id_and_sequence(
    postgres_dsn: str, table: str
) -> None:
    async with PostgresCheckpointStore(postgres_dsn, table=table) as store:
        await store.append("run", CheckpointRow(0, "A", "t"))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {table} VALUES ('run', 4, 'S', 't', NULL, 9, 0)")
        with pytest.raises(CheckpointStoreError, match=r"workflow_id=run sequence=4\b"):
            await store.load_run("run")


@pytest.mark.postgres
async def test_reconnects_after_the_connection_is_killed(postgres_dsn: str, table: str) -> None:
    async with PostgresCheckpointStore(postgres_dsn, table=table) as store:
        await store.append("run", CheckpointRow(0, "A", "t"))
        pid = store._conn.info.backend_pid  # only this store's session: the server is shared
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:  # the first call may notice the dead connection ...
            await store.append("run", CheckpointRow(1, "B", "t"))
        except CheckpointStoreError:
            await store.append("run", CheckpointRow(1, "B", "t"))
        # ... and the store is usable again afterwards
        assert [r.sequence for r in await store.load_run("run")] == [0, 1]


@pytest.mark.postgres
async def test_closed_store_raises(postgres_dsn: str, table: str) -> None:
    store = PostgresCheckpointStore(postgres_dsn, table=table)
    await store.append("run", CheckpointRow(0, "A", "t"))
    await store.aclose()
    await store.aclose()
    with pytest.raises(CheckpointStoreError, match="closed"):
        await store.load_run("run")


@pytest.mark.postgres
async def test_a_rejected_row_reruns_its_batch_without_changing_other_outcomes(
    postgres_dsn: str, table: str
) -> None:
    """A server-side error rolls the transaction back and the batch re-runs without the
    op that raised: whatever the batching, a duplicate stays a conflict, an accepted row
    is stored once and a rejected one not at all."""
    async with PostgresCheckpointStore(postgres_dsn, table=table) as store:
        await store.append("dup", CheckpointRow(0, "FIRST", "t"))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE FUNCTION {table}_reject() RETURNS trigger AS $$ BEGIN "
                "IF NEW.state = 'REJECT' THEN RAISE EXCEPTION 'rejected' USING "
                "ERRCODE = '23514'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.execute(
                f"CREATE TRIGGER reject BEFORE INSERT ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION {table}_reject()"
            )
        calls = [
            ("ok-0", CheckpointRow(0, "S", "t")),
            ("dup", CheckpointRow(0, "SECOND", "t")),
            ("bad-0", CheckpointRow(0, "REJECT", "t")),
            ("ok-1", CheckpointRow(0, "S", "t")),
            ("bad-1", CheckpointRow(0, "REJECT", "t")),
            ("ok-2", CheckpointRow(0, "S", "t")),
        ]
        outcomes: dict[str, str] = {}

        async def call(wid: str, row: CheckpointRow) -> None:
            try:
                await store.append(wid, row)
                outcomes[wid] = "ok"
            except CheckpointStoreError as exc:
                outcomes[wid] = "conflict" if "checkpoint conflict" in str(exc) else "error"

        for _ in range(3):  # several batchings
            async with anyio.create_task_group() as tg:
                for wid, row in calls:
                    tg.start_soon(call, wid, row)
            assert outcomes == {
                "ok-0": "ok",
                "dup": "conflict",
                "bad-0": "error",
                "ok-1": "ok",
                "bad-1": "error",
                "ok-2": "ok",
            }
            for wid in ("ok-0", "ok-1", "ok-2"):
                await store.clear(wid)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            rows = conn.execute(f"SELECT workflow_id, state FROM {table} ORDER BY 1").fetchall()
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"DROP FUNCTION {table}_reject()")
        assert rows == [("dup", "FIRST")]
