"""Read-only files and directories: a clear `CheckpointStoreError`, never a bare sqlite3
error, never a hang (issue 8, fault-injection suite).

Root ignores permission bits, so when the tests run as root each scenario runs in a child
process that imports everything it needs and then drops to the ``nobody`` user before
touching the file. The PostgreSQL counterpart is a session that may not write
(``default_transaction_read_only``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import cano_dsl
from cano_dsl import CheckpointStoreError
from cano_dsl.stores import CheckpointRow, PostgresCheckpointStore, SqliteCheckpointStore

pytestmark = pytest.mark.anyio

REPO_ROOT = str(Path(cano_dsl.__file__).resolve().parent.parent)
NOBODY = 65534

_CHILD = textwrap.dedent(
    """
    import json, os, sqlite3, sys, time
    import anyio, anyio._backends._asyncio
    try:
        import anyio._backends._trio, trio  # noqa: F401
    except ImportError:
        pass
    from cano_dsl import CheckpointStoreError
    from cano_dsl.stores import CheckpointRow, SqliteCheckpointStore

    path, backend, uid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if os.geteuid() == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        except OSError as exc:
            print(json.dumps({"skip": f"cannot drop root privileges: {exc}"}))
            sys.exit(0)

    async def main():
        store = SqliteCheckpointStore(path, busy_timeout=2)
        out = {}
        calls = {
            "load": lambda: store.load_run("run"),
            "append": lambda: store.append("run", CheckpointRow(5, "S", "t")),
            "clear": lambda: store.clear("run"),
        }
        for name, call in calls.items():
            t0 = time.monotonic()
            try:
                result = await call()
                out[name] = {"ok": True, "rows": len(result or [])}
            except BaseException as exc:
                out[name] = {
                    "ok": False,
                    "type": type(exc).__name__,
                    "store_error": isinstance(exc, CheckpointStoreError),
                    "message": str(exc),
                    "cause": type(exc.__cause__).__name__,
                    "cause_is_sqlite": isinstance(exc.__cause__, sqlite3.Error),
                }
            out[name]["seconds"] = time.monotonic() - t0
        await store.aclose()
        print(json.dumps(out))

    anyio.run(main, backend=backend)
    """
)


@pytest.fixture
def postgres_dsn() -> str:
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("no PostgreSQL server: set CANO_DSL_TEST_POSTGRES_DSN (.ci/postgres.sh)")
    return dsn


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the unprivileged child can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="cano-readonly-"))
    path.chmod(0o755)
    yield path
    path.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


async def _make_store_file(path: Path) -> None:
    async with SqliteCheckpointStore(path) as store:
        for seq in range(3):
            await store.append("run", CheckpointRow(seq, "S", "t"))


async def _run_child(path: Path, backend: str) -> dict[str, Any]:
    with anyio.fail_after(60):  # a hang fails here, with the child killed
        proc = await anyio.run_process(
            [sys.executable, "-c", _CHILD, str(path), backend, str(NOBODY)],
            env={**os.environ, "PYTHONPATH": REPO_ROOT},
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    result: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def _assert_clear_refusal(outcome: dict[str, Any], path: Path) -> None:
    assert not outcome["ok"], outcome
    assert outcome["store_error"] and outcome["cause_is_sqlite"], outcome
    message = outcome["message"]
    assert str(path) in message, message
    assert "damaged" not in message and "corrupt" not in message, message  # not a corruption
    assert "write" in message, message  # says the problem is write access
    assert outcome["seconds"] < 10, outcome  # busy_timeout is 2 s: no waiting it out


@pytest.mark.parametrize(
    ("dir_mode", "file_mode"),
    [
        pytest.param(0o777, 0o444, id="read-only-file"),
        pytest.param(0o555, 0o666, id="read-only-directory"),
        pytest.param(0o555, 0o444, id="both-read-only"),
    ],
)
async def test_a_store_file_it_may_not_write_gives_a_clear_error(
    shared_dir: Path, anyio_backend: str, dir_mode: int, file_mode: int
) -> None:
    path = shared_dir / "c.db"
    await _make_store_file(path)
    before = path.read_bytes()
    path.chmod(file_mode)
    shared_dir.chmod(dir_mode)
    result = await _run_child(path, anyio_backend)
    for name in ("append", "clear"):
        _assert_clear_refusal(result[name], path)
    load = result["load"]  # reading may work (WAL can be read when -shm can be made)
    if load["ok"]:
        assert load["rows"] == 3
    else:
        _assert_clear_refusal(load, path)
    shared_dir.chmod(0o755)
    assert path.read_bytes() == before


async def test_a_new_file_in_a_read_only_directory_gives_a_clear_error(
    shared_dir: Path, anyio_backend: str
) -> None:
    shared_dir.chmod(0o555)
    path = shared_dir / "new.db"
    result = await _run_child(path, anyio_backend)
    for name in ("load", "append", "clear"):
        outcome = result[name]
        assert not outcome["ok"] and outcome["store_error"], outcome
        assert "cannot open" in outcome["message"] and str(path) in outcome["message"]
        assert "may write" in outcome["message"], outcome["message"]
    assert not path.exists()


@pytest.mark.postgres
async def test_a_postgres_session_that_may_not_write_gives_a_clear_error(
    postgres_dsn: str,
) -> None:
    import psycopg

    table = f"cano_test_{uuid.uuid4().hex[:10]}"
    async with PostgresCheckpointStore(postgres_dsn, table=table) as writer:
        await writer.append("run", CheckpointRow(0, "S", "t"))
    read_only = psycopg.conninfo.make_conninfo(
        postgres_dsn, options="-c default_transaction_read_only=on"
    )
    store = PostgresCheckpointStore(read_only, table=table)
    try:
        with anyio.fail_after(30):
            for call in (
                lambda: store.append("run", CheckpointRow(1, "S", "t")),
                lambda: store.clear("run"),
                lambda: store.load_run("run"),
            ):
                with pytest.raises(CheckpointStoreError, match="read-only transaction") as info:
                    await call()
                assert isinstance(info.value.__cause__, psycopg.Error)
    finally:
        await store.aclose()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            rows = conn.execute(f"SELECT sequence FROM {table}").fetchall()
            conn.execute(f"DROP TABLE {table}")
    assert rows == [(0,)]
