"""SqliteCheckpointStore beyond the shared contract: files, schema, durability, processes."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import cano_dsl
from cano_dsl._errors import CheckpointStoreError, ConfigurationError
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.stores._row import CheckpointRow, RowKind

pytestmark = pytest.mark.anyio

REPO_ROOT = str(Path(cano_dsl.__file__).resolve().parent.parent)


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


async def test_constructor_touches_nothing_until_first_use(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"
    store = SqliteCheckpointStore(path)
    assert not path.exists()
    await store.append("run", CheckpointRow(0, "A", "t"))
    assert path.exists()
    await store.aclose()


async def test_missing_directory_is_a_checkpoint_store_error(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "no" / "such" / "dir" / "c.db")
    with pytest.raises(CheckpointStoreError, match="cannot open") as info:
        await store.load_run("run")
    assert isinstance(info.value.__cause__, sqlite3.Error)


async def test_corrupt_file_is_a_checkpoint_store_error_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    garbage = b"this is not a database, just text \x00\x01\x02" * 200
    path.write_bytes(garbage)
    store = SqliteCheckpointStore(path)
    for call in (store.load_run("run"), store.append("run", CheckpointRow(0, "A", "t"))):
        with pytest.raises(CheckpointStoreError, match="not a SQLite database") as info:
            await call
        assert not isinstance(info.value, sqlite3.Error)
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == garbage


async def test_corrupt_file_fails_at_async_with_entry(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"\xff" * 4096)
    with pytest.raises(CheckpointStoreError):
        async with SqliteCheckpointStore(path):
            pytest.fail("entered a store over a corrupt file")


async def test_foreign_sqlite_file_is_rejected_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with _raw(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ada')")
    store = SqliteCheckpointStore(path)
    with pytest.raises(CheckpointStoreError, match=r"not a cano_dsl checkpoint database.*users"):
        await store.open()
    with pytest.raises(CheckpointStoreError, match="not a cano_dsl checkpoint database"):
        await store.append("run", CheckpointRow(0, "A", "t"))
    conn = _raw(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"users"}
    conn.close()


async def test_file_from_a_newer_schema_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with SqliteCheckpointStore(path) as store:
        await store.append("run", CheckpointRow(0, "A", "t"))
    conn = _raw(path)
    conn.execute("UPDATE cano_dsl_meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(CheckpointStoreError, match="newer cano_dsl"):
        await SqliteCheckpointStore(path).load_run("run")


async def test_empty_existing_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    async with SqliteCheckpointStore(path) as store:
        await store.append("run", CheckpointRow(0, "A", "t"))
        assert len(await store.load_run("run")) == 1


async def test_rows_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    rows = [
        CheckpointRow(0, "A", "t"),
        CheckpointRow(1, "B", "c", b'{"x": 1}', RowKind.COMPENSATION_COMPLETION, 4),
    ]
    async with SqliteCheckpointStore(path) as store:
        for row in rows:
            await store.append("run", row)
    async with SqliteCheckpointStore(path) as store:
        assert await store.load_run("run") == rows


def _insert_raw(
    path: Path, sequence: object, state: object, blob: object, kind: object, version: object
) -> None:
    conn = _raw(path)
    conn.execute(
        "INSERT INTO cano_checkpoints (workflow_id, sequence, state, task_id, output_blob, kind, "
        "workflow_version) VALUES ('run', ?, ?, 't', ?, ?, ?)",
        (sequence, state, blob, kind, version),
    )
    conn.close()


@pytest.mark.parametrize(
    ("sequence", "state", "blob", "kind", "version"),
    [
        pytest.param(3, "S", None, 9, 0, id="unknown-kind"),
        pytest.param(3, "S", None, "entry", 0, id="text-kind"),
        pytest.param(3, b"\xff\xfe", None, 0, 0, id="state-not-utf8"),
        pytest.param(3, "S", "text, not a blob", 0, 0, id="text-blob"),
        pytest.param(3, "S", None, 0, -1, id="negative-version"),
        pytest.param(3, "S", None, 0, 2**40, id="version-too-big"),
        pytest.param(-3, "S", None, 0, 0, id="negative-sequence"),
    ],
)
async def test_undecodable_row_names_workflow_id_and_sequence(
    tmp_path: Path, sequence: int, state: object, blob: object, kind: object, version: object
) -> None:
    path = tmp_path / "c.db"
    async with SqliteCheckpointStore(path) as store:
        await store.append("run", CheckpointRow(0, "A", "t"))
        await store.append("other", CheckpointRow(0, "A", "t"))
        _insert_raw(path, sequence, state, blob, kind, version)
        with pytest.raises(CheckpointStoreError, match=rf"workflow_id=run sequence={sequence}\b"):
            await store.load_run("run")
        assert len(await store.load_run("other")) == 1  # other runs still load


@pytest.mark.parametrize(("durability", "synchronous"), [("normal", 1), ("full", 2)])
async def test_durability_sets_wal_and_synchronous(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    path = tmp_path / "c.db"
    store = SqliteCheckpointStore(path, durability=durability)  # type: ignore[arg-type]
    assert store.durability == durability
    async with store:
        await store.append("run", CheckpointRow(0, "A", "t"))
        conn = store._conn
        assert conn is not None
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    probe = _raw(path)
    assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    probe.close()


@pytest.mark.parametrize("bad", ["fast", "", None, "FULL"])
def test_unknown_durability_is_a_configuration_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="durability"):
        SqliteCheckpointStore(tmp_path / "c.db", durability=bad)  # type: ignore[arg-type]


def test_negative_busy_timeout_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="busy_timeout"):
        SqliteCheckpointStore(tmp_path / "c.db", busy_timeout=-1)


async def test_closed_store_raises_and_aclose_is_idempotent(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "c.db")
    await store.append("run", CheckpointRow(0, "A", "t"))
    await store.aclose()
    await store.aclose()
    assert store._conn is None
    with pytest.raises(CheckpointStoreError, match="closed"):
        await store.load_run("run")


async def test_aclose_of_a_never_opened_store_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await SqliteCheckpointStore(path).aclose()
    assert not path.exists()


async def test_aclose_lets_queued_calls_finish(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "c.db")
    async with anyio.create_task_group() as tg:
        for seq in range(20):
            tg.start_soon(store.append, "run", CheckpointRow(seq, "S", "t"))
        await anyio.wait_all_tasks_blocked()  # every append is queued or running
        tg.start_soon(store.aclose)
    async with SqliteCheckpointStore(tmp_path / "c.db") as again:
        assert len(await again.load_run("run")) == 20


async def test_two_stores_on_one_file_race_to_one_winner(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    stores = [SqliteCheckpointStore(path) for _ in range(4)]
    outcomes: list[str] = []

    async def contender(store: SqliteCheckpointStore, i: int) -> None:
        try:
            await store.append("run", CheckpointRow(0, f"C{i}", "t"))
            outcomes.append("won")
        except CheckpointStoreError as exc:
            assert "checkpoint conflict" in str(exc)
            outcomes.append("lost")

    async with anyio.create_task_group() as tg:
        for i, store in enumerate(stores):
            tg.start_soon(contender, store, i)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    for store in stores:
        await store.aclose()


_WORKER = textwrap.dedent(
    """
    import sys
    import anyio
    from cano_dsl.stores import SqliteCheckpointStore
    from cano_dsl.stores._row import CheckpointRow
    from cano_dsl._errors import CheckpointStoreError

    path, name, backend = sys.argv[1], sys.argv[2], sys.argv[3]

    async def main():
        won = 0
        async with SqliteCheckpointStore(path, busy_timeout=60) as store:
            for seq in range(150):
                await store.append(f"own-{name}", CheckpointRow(seq, name, "t"))
                try:
                    await store.append("shared", CheckpointRow(seq, name, "t"))
                    won += 1
                except CheckpointStoreError as exc:
                    assert "checkpoint conflict" in str(exc), exc
        print(won)

    anyio.run(main, backend=backend)
    """
)


@pytest.mark.slow
async def test_two_processes_append_to_one_file(tmp_path: Path, anyio_backend: str) -> None:
    path = tmp_path / "shared.db"  # neither process finds a schema: both race to create it
    results: dict[str, int] = {}
    env = {"PYTHONPATH": REPO_ROOT}

    async def worker(name: str) -> None:
        proc = await anyio.run_process(
            [sys.executable, "-c", _WORKER, str(path), name, anyio_backend],
            env={**__import__("os").environ, **env},
            check=False,
        )
        assert proc.returncode == 0, f"{name} failed:\n{proc.stderr.decode()}"
        results[name] = int(proc.stdout.decode().strip())

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, "p1")
        tg.start_soon(worker, "p2")

    async with SqliteCheckpointStore(path) as store:
        for name in ("p1", "p2"):
            rows = await store.load_run(f"own-{name}")
            assert [r.sequence for r in rows] == list(range(150))
            assert {r.state for r in rows} == {name}
        shared = await store.load_run("shared")
    assert [r.sequence for r in shared] == list(range(150))
    assert results["p1"] + results["p2"] == 150
    assert sum(r.state == "p1" for r in shared) == results["p1"]


def test_corruption_is_recognised_by_code_and_by_message() -> None:
    from cano_dsl.stores.sqlite import _is_corruption

    # Python 3.10's sqlite3 errors carry no code: the message decides
    assert _is_corruption(sqlite3.DatabaseError("database disk image is malformed"))
    assert _is_corruption(sqlite3.DatabaseError("file is not a database"))
    assert not _is_corruption(sqlite3.OperationalError("attempt to write a readonly database"))
    assert not _is_corruption(sqlite3.OperationalError("database is locked"))
    assert not _is_corruption(ValueError("database disk image is malformed"))
    coded = sqlite3.DatabaseError("whatever the text")
    coded.sqlite_errorcode = 11 | (1 << 8)  # type: ignore[attr-defined]  # SQLITE_CORRUPT_VTAB
    assert _is_corruption(coded)
    coded.sqlite_errorcode = 8  # type: ignore[attr-defined]  # SQLITE_READONLY
    assert not _is_corruption(coded)


async def test_missing_directory_error_says_what_to_check(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "no" / "such" / "c.db")
    with pytest.raises(CheckpointStoreError, match="check that its directory exists"):
        await store.append("run", CheckpointRow(0, "A", "t"))
    await store.aclose()


async def test_a_bad_workflow_id_never_opens_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SqliteCheckpointStore(path)
    for call in (
        store.append("run\x00", CheckpointRow(0, "A", "t")),
        store.load_run(""),
        store.clear("run-\udcff"),
    ):
        with pytest.raises(ConfigurationError, match="workflow id must be"):
            await call
    assert not path.exists()
    await store.aclose()
