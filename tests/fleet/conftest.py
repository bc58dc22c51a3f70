"""Fleet test fixtures: a real SQLite file or a uniquely named PostgreSQL table."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import make_store

PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for the CLI's ``--store`` (``sqlite:PATH`` or ``postgres:DSN#table``)
    naming a fresh database; the PostgreSQL tables are dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'fleet.db'}"
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
    table = f"cano_fleet_{uuid.uuid4().hex[:10]}"
    yield f"{dsn}#{table}"
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}_runs")
        conn.execute(f"DROP TABLE IF EXISTS {table}_queues")
        conn.execute(f"DROP TABLE IF EXISTS {table}_fires")
        conn.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.fixture
async def fleet(store_url: str) -> AsyncIterator[Any]:
    """A `Fleet` on a fresh store."""
    from cano_dsl.fleet import Fleet

    store = make_store(store_url)
    async with Fleet(store) as f:
        yield f
    await store.aclose()
