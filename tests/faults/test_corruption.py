"""Damaged SQLite files: refused with a clear error, and never written to again.

Issue 8 item 6. A real checkpoint file is damaged on disk (bytes flipped in a page
header, a page zeroed, the file truncated, replaced by another application's database or
by something that is not a database at all), then used through `SqliteCheckpointStore`.
Once the store has seen corruption (``SQLITE_CORRUPT`` / ``SQLITE_NOTADB``) every later
call raises `CheckpointStoreError` naming the file and how to recover it, and the file's
bytes do not change, whatever is called (appends, loads, clears, whole workflow runs).
``integrity_check=True`` finds damage at open that no call has touched yet.
"""

from __future__ import annotations

import enum
import hashlib
import sqlite3
from pathlib import Path

import anyio
import pytest

from cano_dsl import CheckpointStoreError, Workflow, task
from cano_dsl.stores import CheckpointRow, SqliteCheckpointStore

pytestmark = pytest.mark.anyio

RUNS = [f"run-{i:03d}" for i in range(40)]


class Step(enum.Enum):
    GO = enum.auto()
    DONE = enum.auto()


@task
async def go() -> Step:
    return Step.DONE


def _fingerprint(path: Path) -> dict[str, str]:
    """The bytes of the file and of any -wal/-journal beside it."""
    out = {}
    for suffix in ("", "-wal", "-journal"):
        f = Path(f"{path}{suffix}")
        if f.exists():
            out[suffix or "db"] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int, list[int]]:
    """A closed checkpoint file with 400 rows: its bytes, page size and leaf pages."""
    path = tmp_path_factory.mktemp("healthy") / "c.db"

    async def fill() -> None:
        async with SqliteCheckpointStore(path) as store:
            for wid in RUNS:
                for seq in range(10):
                    await store.append(wid, CheckpointRow(seq, "S" * 50, "t" * 50, b"x" * 200))

    anyio.run(fill)
    conn = sqlite3.connect(path)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    leaves = [
        p
        for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'cano_checkpoints' AND pagetype = 'leaf' "
            "ORDER BY pageno"
        )
    ]
    conn.close()
    assert len(leaves) > 10
    return path.read_bytes(), int(page_size), leaves


def _damage(data: bytes, page_size: int, page: int, how: str) -> bytes:
    buf = bytearray(data)
    start = (page - 1) * page_size
    if how == "zeroed-page":
        buf[start : start + page_size] = bytes(page_size)
    else:  # flipped bytes in the page's b-tree header (type, cell count, pointers)
        for i in range(start, start + 16):
            buf[i] ^= 0xFF
    return bytes(buf)


def _ids_on_damaged_pages(path: Path) -> tuple[list[str], list[str]]:
    """Which runs can (not) be read, found with a raw read-only connection."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    broken, fine = [], []
    for wid in RUNS:
        try:
            conn.execute("SELECT * FROM cano_checkpoints WHERE workflow_id = ?", (wid,)).fetchall()
            fine.append(wid)
        except sqlite3.DatabaseError:
            broken.append(wid)
    conn.close()
    return broken, fine


async def _assert_latched(store: SqliteCheckpointStore, path: Path) -> None:
    """Every kind of call raises the recovery error, and the file's bytes stay put."""
    before = _fingerprint(path)
    calls = [
        lambda: store.append("zzz-after", CheckpointRow(0, "S", "t")),
        lambda: store.append("aaa-after", CheckpointRow(0, "S", "t")),
        lambda: store.load_run(RUNS[-1]),
        lambda: store.clear(RUNS[0]),
        lambda: store.open(),
    ]
    for call in calls:
        with pytest.raises(CheckpointStoreError) as info:
            await call()
        message = str(info.value)
        assert str(path) in message and ".recover" in message, message
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    wf = (
        Workflow.bare()
        .register(Step.GO, go)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("whole-run")
    )
    for _ in range(3):
        with pytest.raises(Exception, match=r"\.recover"):
            await wf.orchestrate(Step.GO)
    assert _fingerprint(path) == before


@pytest.mark.parametrize("how", ["zeroed-page", "flipped-bytes"])
async def test_a_damaged_page_latches_the_store_when_touched(
    tmp_path: Path, healthy: tuple[bytes, int, list[int]], how: str
) -> None:
    data, page_size, leaves = healthy
    path = tmp_path / "c.db"
    path.write_bytes(_damage(data, page_size, leaves[len(leaves) // 2], how))
    broken, fine = _ids_on_damaged_pages(path)
    assert broken and fine, (broken, fine)
    store = SqliteCheckpointStore(path)
    # not detected while no call touches the damaged page (no checksums in SQLite) ...
    assert len(await store.load_run(fine[0])) == 10
    # ... until one does: from then on nothing reads or writes the file
    with pytest.raises(CheckpointStoreError, match="damaged") as info:
        await store.load_run(broken[0])
    assert "database disk image is malformed" in str(info.value)
    await _assert_latched(store, path)
    await store.aclose()
    assert _fingerprint(path)["db"] == hashlib.sha256(path.read_bytes()).hexdigest()


async def test_an_append_that_hits_the_damage_fails_its_whole_batch_and_writes_nothing(
    tmp_path: Path, healthy: tuple[bytes, int, list[int]]
) -> None:
    data, page_size, leaves = healthy
    path = tmp_path / "c.db"
    path.write_bytes(_damage(data, page_size, leaves[len(leaves) // 2], "zeroed-page"))
    broken, fine = _ids_on_damaged_pages(path)
    store = SqliteCheckpointStore(path)
    await store.open()
    outcomes: dict[str, BaseException | None] = {}

    async def append(wid: str, seq: int) -> None:
        try:
            await store.append(wid, CheckpointRow(seq, "S", "t"))
            outcomes[wid] = None
        except CheckpointStoreError as exc:
            outcomes[wid] = exc

    async with anyio.create_task_group() as tg:  # one batch: damage in the middle of it
        for wid in (fine[0], broken[0], fine[-1]):
            tg.start_soon(append, wid, 10)
    assert isinstance(outcomes[broken[0]], CheckpointStoreError)
    await _assert_latched(store, path)
    await store.aclose()
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    for wid in (fine[0], fine[-1]):
        landed = conn.execute(
            "SELECT count(*) FROM cano_checkpoints WHERE workflow_id = ? AND sequence = 10", (wid,)
        ).fetchone() == (1,)
        # acknowledged means durable; refused means absent (nothing after the damage)
        assert landed == (outcomes[wid] is None), (wid, outcomes[wid])
    conn.close()


@pytest.mark.parametrize("how", ["zeroed-page", "flipped-bytes"])
async def test_integrity_check_at_open_finds_damage_no_call_touched(
    tmp_path: Path, healthy: tuple[bytes, int, list[int]], how: str
) -> None:
    data, page_size, leaves = healthy
    path = tmp_path / "c.db"
    damaged = _damage(data, page_size, leaves[len(leaves) // 2], how)
    path.write_bytes(damaged)
    store = SqliteCheckpointStore(path, integrity_check=True)
    with pytest.raises(CheckpointStoreError, match="integrity check at open") as info:
        await store.open()
    assert ".recover" in str(info.value) and str(path) in str(info.value)
    await _assert_latched(store, path)
    await store.aclose()
    assert path.read_bytes() == damaged  # never written, not even the journal mode

    # without the check the same file opens, and writes away from the damage succeed
    async with SqliteCheckpointStore(path) as unchecked:
        await unchecked.append("zzz-new", CheckpointRow(0, "S", "t"))


async def test_integrity_check_passes_a_healthy_file(
    tmp_path: Path, healthy: tuple[bytes, int, list[int]]
) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(healthy[0])
    async with SqliteCheckpointStore(path, integrity_check=True) as store:
        assert len(await store.load_run(RUNS[7])) == 10
        await store.append("new", CheckpointRow(0, "S", "t"))
    async with SqliteCheckpointStore(tmp_path / "fresh.db", integrity_check=True) as store:
        await store.append("new", CheckpointRow(0, "S", "t"))


@pytest.mark.parametrize("keep", [0.5, 0.37])
async def test_a_truncated_file_is_refused_and_left_as_it_is(
    tmp_path: Path, healthy: tuple[bytes, int, list[int]], keep: float
) -> None:
    data = healthy[0]
    path = tmp_path / "c.db"
    path.write_bytes(data[: int(len(data) * keep)])  # mid-page for 0.37
    store = SqliteCheckpointStore(path)
    with pytest.raises(CheckpointStoreError, match="damaged"):
        await store.append("zzz-new", CheckpointRow(0, "S", "t"))
    await _assert_latched(store, path)
    await store.aclose()


async def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    garbage = b"SQLite format 3\x00" + bytes(range(256)) * 64  # a header, then noise
    path.write_bytes(garbage)
    store = SqliteCheckpointStore(path)
    with pytest.raises(CheckpointStoreError, match="not a SQLite database"):
        await store.load_run("run")
    await _assert_latched(store, path)
    await store.aclose()
    assert path.read_bytes() == garbage


async def test_another_applications_database_is_refused_and_left_as_it_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE cano_checkpoints (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("INSERT INTO cano_checkpoints (note) VALUES ('not ours')")
    conn.close()
    before = path.read_bytes()
    store = SqliteCheckpointStore(path)
    for _ in range(3):
        for call in (
            lambda: store.append("run", CheckpointRow(0, "S", "t")),
            lambda: store.load_run("run"),
        ):
            with pytest.raises(CheckpointStoreError, match="not a cano_dsl checkpoint database"):
                await call()
    await store.aclose()
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()
