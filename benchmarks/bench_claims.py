"""What claiming a run costs (docs/recovery.md, "One owner per run").

    python benchmarks/bench_claims.py            # asyncio and trio, memory, SQLite (+ PostgreSQL)
    python benchmarks/bench_claims.py --quick

Two figures per store, in microseconds, the best of 5 interleaved rounds:

  claim+release   one ``claim(id)`` and its ``release()`` on an open store
  run, claimed    one ``orchestrate`` of a two-state checkpointed workflow
  run, unclaimed  the same with the store's ``claim`` hidden (how a store without
                  claims runs): the difference is the claim's share of a run

PostgreSQL is measured when CANO_DSL_TEST_POSTGRES_DSN is set (see .ci/postgres.sh).
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cano_dsl import Resources, TaskConfig, Workflow, task
from cano_dsl.stores import PostgresCheckpointStore, SqliteCheckpointStore
from cano_dsl.testing import InMemoryCheckpointStore


class S(enum.Enum):
    A = 1
    DONE = 2


@task(config=TaskConfig.minimal(), name="a")
async def step(res: Resources) -> S:
    return S.DONE


def without_claim(cls: type[Any]) -> type[Any]:
    return type(f"Unclaimed{cls.__name__}", (cls,), {"claim": None})


async def claim_cost(store: Any, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        held = await store.claim(f"c{i}")
        await held.release()
    return (time.perf_counter() - started) / n * 1e6


async def run_cost(store: Any, n: int) -> float:
    wf = Workflow.bare().register(S.A, step).add_exit_state(S.DONE).with_checkpoint_store(store)
    started = time.perf_counter()
    for i in range(n):
        await wf.with_workflow_id(f"r{i}").orchestrate(S.A)
    return (time.perf_counter() - started) / n * 1e6


async def measure(name: str, make: Any, cls: type[Any], n: int) -> None:
    best: dict[str, float] = {}
    for _ in range(5):
        for label, kind, fn in (
            ("claim+release", cls, claim_cost),
            ("run, claimed", cls, run_cost),
            ("run, unclaimed", without_claim(cls), run_cost),
        ):
            store = make(kind)
            await fn(store, 10)  # warm: connections, sidecar, schema
            us = await fn(store, n)
            if hasattr(store, "aclose"):
                await store.aclose()
            best[label] = min(best.get(label, float("inf")), us)
    shown = "  ".join(f"{k} {v:8.1f}" for k, v in best.items())
    print(f"  {name:9} {shown}")


async def main(quick: bool) -> None:
    n = 100 if quick else 500
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    with tempfile.TemporaryDirectory() as tmp:
        await measure("memory", lambda c: c(), InMemoryCheckpointStore, n)
        await measure(
            "sqlite", lambda c: c(Path(tmp) / f"{uuid.uuid4().hex}.db"), SqliteCheckpointStore, n
        )
    if dsn:
        table = f"cano_bench_claims_{uuid.uuid4().hex[:8]}"
        await measure(
            "postgres", lambda c: c(dsn, table=table), PostgresCheckpointStore, max(n // 5, 20)
        )
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for backend in ("asyncio", "trio"):
        print(f"{backend} (microseconds)")
        anyio.run(main, args.quick, backend=backend)
