"""Every async test runs on asyncio and on trio (anyio's pytest plugin).

Hypothesis: no per-example deadline (the machines are shared and noisy); under CI
(``CI=true``) the examples are derandomized so a landing never depends on a lucky draw.
Run ``HYPOTHESIS_PROFILE=explore pytest`` for a longer random search."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from cano_dsl.testing import InMemoryCheckpointStore

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- a real checkpoint store of every kind (recovery and saga tests) ----------------

PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"
STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


async def open_store(kind: str, tmp_path: Path) -> tuple[Any, Any]:
    """A fresh store of ``kind`` and a cleanup coroutine function."""
    if kind == "memory":
        store: Any = InMemoryCheckpointStore()

        async def noop() -> None:
            pass

        return store, noop
    if kind == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        store = SqliteCheckpointStore(tmp_path / f"cp-{uuid.uuid4().hex[:6]}.db")
        return store, store.aclose
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    import psycopg

    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_test_{uuid.uuid4().hex[:10]}"
    store = PostgresCheckpointStore(dsn, table=table)

    async def close() -> None:
        await store.aclose()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")

    return store, close


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A real checkpoint store: in memory, a SQLite file, or PostgreSQL (when set up)."""
    s, close = await open_store(str(request.param), tmp_path)
    yield s
    await close()
