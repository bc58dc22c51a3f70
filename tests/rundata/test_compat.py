"""Compatibility of the checkpoint stores with run data (rule 8): a SQLite file of schema
version 1 (written before run data existed) migrates itself on open and its logs still
resume; a PostgreSQL table without the ``data_patch`` column gets it."""

from __future__ import annotations

import enum
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest

from cano_dsl import CheckpointRow, Resources, Workflow, task
from cano_dsl.stores import SqliteCheckpointStore

pytestmark = pytest.mark.anyio

# the schema version 1 layout, verbatim from the release before run data
V1_META = "CREATE TABLE cano_dsl_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
V1_TABLE = """CREATE TABLE cano_checkpoints (
    workflow_id      TEXT     NOT NULL,
    sequence         INTEGER  NOT NULL,
    state            TEXT     NOT NULL,
    task_id          TEXT     NOT NULL,
    output_blob      BLOB,
    kind             SMALLINT NOT NULL DEFAULT 0,
    workflow_version INTEGER  NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, sequence)
) WITHOUT ROWID"""


class Step(enum.Enum):
    LOAD = 1
    SHIP = 2
    DONE = 3


@attrs.define
class Order:
    order_id: str = "unknown"
    shipped: bool = False


def v1_file(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(V1_META)
    conn.executemany(
        "INSERT INTO cano_dsl_meta VALUES (?, ?)",
        [("format", "cano_dsl.checkpoints"), ("schema_version", "1")],
    )
    conn.execute(V1_TABLE)
    conn.executemany(
        "INSERT INTO cano_checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
        [("old", 0, "LOAD", "t.load", None, 0, 0), ("old", 1, "SHIP", "t.ship", None, 0, 0)],
    )
    conn.commit()
    conn.close()


def meta_version(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        (value,) = conn.execute(
            "SELECT value FROM cano_dsl_meta WHERE key = 'schema_version'"
        ).fetchone()
        return str(value)
    finally:
        conn.close()


async def test_a_schema_1_file_migrates_on_open_and_its_log_resumes(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    v1_file(path)

    @task
    async def ship(res: Resources, data: Order) -> Step:
        assert data == Order()  # no run data in the old log: the default value
        data.shipped = True
        return Step.DONE

    @task
    async def load(res: Resources) -> Step:
        raise AssertionError("LOAD is before the resume point")

    async with SqliteCheckpointStore(path) as store:
        rows = await store.load_run("old")
        assert [r.data_patch for r in rows] == [None, None]
        wf = (
            Workflow(Resources())
            .with_run_data(Order)
            .register(Step.LOAD, load)
            .register(Step.SHIP, ship)
            .add_exit_state(Step.DONE)
            .with_checkpoint_store(store)
        )
        result = await wf.resume("old")
        assert result.data == Order(shipped=True)
        await store.append("new", CheckpointRow(0, "LOAD", "t", data_patch=b"{}"))
        assert (await store.load_run("new"))[0].data_patch == b"{}"
    assert meta_version(path) == "2"
    # reopening a migrated file is a no-op
    async with SqliteCheckpointStore(path) as store:
        assert (await store.load_run("new"))[0].data_patch == b"{}"


async def test_two_stores_migrating_one_file_at_once(tmp_path: Path) -> None:
    import anyio

    path = tmp_path / "race.db"
    v1_file(path)
    stores = [SqliteCheckpointStore(path) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for s in stores:
                tg.start_soon(s.open)
        for i, s in enumerate(stores):
            await s.append(f"w{i}", CheckpointRow(0, "S", "t", data_patch=b"[]"))
        assert [len(await s.load_run("old")) for s in stores] == [2, 2, 2, 2]
    finally:
        for s in stores:
            await s.aclose()
    assert meta_version(path) == "2"


@pytest.mark.postgres
async def test_a_postgres_table_without_data_patch_gets_the_column() -> None:
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("no PostgreSQL server")
    import psycopg

    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (workflow_id text NOT NULL, sequence bigint NOT NULL, "
            "state text NOT NULL, task_id text NOT NULL, output_blob bytea, "
            "kind smallint NOT NULL DEFAULT 0, workflow_version bigint NOT NULL DEFAULT 0, "
            "PRIMARY KEY (workflow_id, sequence))"
        )
        conn.execute(f"INSERT INTO {table} VALUES ('old', 0, 'SHIP', 't', NULL, 0, 0)")
    store: Any = PostgresCheckpointStore(dsn, table=table)
    try:
        rows = await store.load_run("old")
        assert rows[0].data_patch is None
        await store.append("old", CheckpointRow(1, "DONE", "", data_patch=b"x"))
        assert [r.data_patch for r in await store.load_run("old")] == [None, b"x"]
    finally:
        await store.aclose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
