"""PostgreSQL: a new owner's claim waits for the previous owner's writes still in flight.

A client killed while its ``COMMIT`` is still running on the server leaves a transaction
that may commit after the client's claim (a session advisory lock) is gone. Every write
of the store takes the run's *write fence* in shared mode for its transaction, and a
claim takes it exclusively once before it returns, so the new owner reads the log only
after that late write has landed (or been rolled back). Here another connection plays
the killed client: it holds the fence in an open transaction.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from cano_dsl import RunClaimedError

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"


@pytest.fixture
async def pg_store(anyio_backend: str) -> AsyncIterator[Any]:
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    import psycopg

    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_fence_{uuid.uuid4().hex[:10]}"
    store = PostgresCheckpointStore(dsn, table=table, connect_timeout=1)
    await store.open()
    yield store
    await store.aclose()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def _hold_fence(store: Any, workflow_id: str) -> Any:
    """A connection in an open transaction that holds ``workflow_id``'s write fence, as
    a killed client's in-flight write does."""
    import psycopg

    from cano_dsl.stores._claim import fence_keys

    conn = psycopg.connect(os.environ[PG_ENV])
    conn.execute(
        "SELECT pg_advisory_xact_lock_shared(%s, %s)", fence_keys(store.table, workflow_id)
    )
    return conn


async def test_a_claim_waits_until_the_previous_owners_write_has_ended(pg_store: Any) -> None:
    holder = _hold_fence(pg_store, "order-1")
    claimed = anyio.Event()
    claims: list[Any] = []

    async def claim() -> None:
        claims.append(await pg_store.claim("order-1"))
        claimed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(claim)
        await anyio.sleep(0.6)
        assert not claimed.is_set(), "the claim returned while a write was still in flight"
        started = time.monotonic()
        holder.commit()  # the late write lands
        with anyio.fail_after(3):
            await claimed.wait()
        assert time.monotonic() - started < 3
    holder.close()
    await claims[0].release()


async def test_a_write_still_in_flight_past_the_bound_refuses_the_claim(pg_store: Any) -> None:
    holder = _hold_fence(pg_store, "order-2")
    try:
        with pytest.raises(RunClaimedError, match="still in flight"):
            await pg_store.claim("order-2")
    finally:
        holder.rollback()
        holder.close()
    claim = await pg_store.claim("order-2")  # once it has ended, the run can be claimed
    await claim.release()


async def test_the_store_takes_the_fence_on_every_write(pg_store: Any) -> None:
    # while the store's own append is waiting on the fence held exclusively elsewhere,
    # it does not commit; it does once the fence is free
    import psycopg

    from cano_dsl import CheckpointRow
    from cano_dsl.stores._claim import fence_keys

    other = psycopg.connect(os.environ[PG_ENV])
    other.execute("SELECT pg_advisory_xact_lock(%s, %s)", fence_keys(pg_store.table, "order-3"))
    done = anyio.Event()

    async def append() -> None:
        await pg_store.append("order-3", CheckpointRow(0, "A", "t"))
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(append)
        await anyio.sleep(0.5)
        assert not done.is_set()
        other.rollback()
        with anyio.fail_after(3):
            await done.wait()
    other.close()
    assert [r.sequence for r in await pg_store.load_run("order-3")] == [0]
    await pg_store.clear("order-3")
    assert await pg_store.load_run("order-3") == []
