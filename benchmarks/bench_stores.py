"""Per-append cost of the checkpoint stores against raw-driver floors.

    python benchmarks/bench_stores.py            # asyncio and trio, SQLite (+ PostgreSQL)
    python benchmarks/bench_stores.py --quick    # fewer appends

A workflow checkpoints once per state, so the figure that matters is the latency of
one ``append`` awaited by one run. Each store is measured against:

  floor (a)  raw INSERT + COMMIT run directly on the event loop's thread (blocks the loop:
             what a careless store would cost, and the lower bound of the driver)
  floor (b)  the same INSERT + COMMIT through ``anyio.to_thread.run_sync`` per append
             (the honest non-blocking floor; the target is store <= 1.5x floor (b))

and, for 16 runs appending concurrently, against floor (b) serialised by a
``CapacityLimiter(1)`` (one commit per append: what group commit saves).

PostgreSQL is measured when CANO_DSL_TEST_POSTGRES_DSN is set (see .ci/postgres.sh).
Figures are the best of 5 interleaved rounds, wall time per append in microseconds.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floors import PG_INSERT, SQLITE_INSERT, best_interleaved, params, raw_sqlite

from cano_dsl.stores import CheckpointRow, PostgresCheckpointStore, SqliteCheckpointStore

ROUNDS = 5
CONCURRENT_RUNS = 16


def _row(seq: int) -> CheckpointRow:
    return CheckpointRow(seq, "STATE", "bench.Task")


# -- SQLite ---------------------------------------------------------------------------


async def sqlite_figures(tmp: Path, n: int, synchronous: str) -> dict[str, float]:
    durability = "full" if synchronous == "FULL" else "normal"

    async def floor_a() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", synchronous)
        t0 = time.perf_counter()
        for seq in range(n):
            conn.execute(SQLITE_INSERT, params("run", seq))
            conn.commit()
        dt = time.perf_counter() - t0
        conn.close()
        return dt / n

    async def floor_b() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", synchronous)

        def step(seq: int) -> None:
            conn.execute(SQLITE_INSERT, params("run", seq))
            conn.commit()

        t0 = time.perf_counter()
        for seq in range(n):
            await anyio.to_thread.run_sync(step, seq)
        dt = time.perf_counter() - t0
        conn.close()
        return dt / n

    async def store_seq() -> float:
        async with SqliteCheckpointStore(
            tmp / f"{uuid.uuid4().hex}.db", durability=durability
        ) as store:
            t0 = time.perf_counter()
            for seq in range(n):
                await store.append("run", _row(seq))
            return (time.perf_counter() - t0) / n

    per_run = max(1, n // CONCURRENT_RUNS)

    async def floor_b_concurrent() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", synchronous)
        limiter = anyio.CapacityLimiter(1)

        def step(wid: str, seq: int) -> None:
            conn.execute(SQLITE_INSERT, params(wid, seq))
            conn.commit()

        async def run(wid: str) -> None:
            for seq in range(per_run):
                await anyio.to_thread.run_sync(step, wid, seq, limiter=limiter)

        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(CONCURRENT_RUNS):
                tg.start_soon(run, f"run-{i}")
        dt = time.perf_counter() - t0
        conn.close()
        return dt / (per_run * CONCURRENT_RUNS)

    async def store_concurrent() -> float:
        async with SqliteCheckpointStore(
            tmp / f"{uuid.uuid4().hex}.db", durability=durability
        ) as store:

            async def run(wid: str) -> None:
                for seq in range(per_run):
                    await store.append(wid, _row(seq))

            t0 = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for i in range(CONCURRENT_RUNS):
                    tg.start_soon(run, f"run-{i}")
            return (time.perf_counter() - t0) / (per_run * CONCURRENT_RUNS)

    return await best_interleaved(
        {
            "floor (a) in-loop": floor_a,
            "floor (b) to_thread": floor_b,
            "store": store_seq,
            "16 runs: floor (b) serialised": floor_b_concurrent,
            "16 runs: store": store_concurrent,
        },
        ROUNDS,
    )


# -- PostgreSQL -----------------------------------------------------------------------


async def postgres_figures(dsn: str, n: int) -> dict[str, float]:
    import psycopg

    table = f"bench_{uuid.uuid4().hex[:8]}"
    ddl = (
        "CREATE TABLE {t} (workflow_id text NOT NULL, sequence bigint NOT NULL, "
        "state text NOT NULL, task_id text NOT NULL, output_blob bytea, "
        "kind smallint NOT NULL DEFAULT 0, workflow_version bigint NOT NULL DEFAULT 0, "
        "PRIMARY KEY (workflow_id, sequence))"
    )
    admin = psycopg.connect(dsn, autocommit=True)
    out: dict[str, float] = {}
    counter = iter(range(10**9))

    def fresh_table() -> str:
        name = f"{table}_{next(counter)}"
        admin.execute(ddl.format(t=name))
        return name

    async def floor_a() -> float:
        t = fresh_table()
        sql = PG_INSERT.format(t=t)
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            for seq in range(n):
                conn.execute(sql, params("run", seq))
                conn.commit()
            return (time.perf_counter() - t0) / n

    async def floor_b() -> float:
        t = fresh_table()
        sql = PG_INSERT.format(t=t)
        with psycopg.connect(dsn) as conn:

            def step(seq: int) -> None:
                conn.execute(sql, params("run", seq))
                conn.commit()

            t0 = time.perf_counter()
            for seq in range(n):
                await anyio.to_thread.run_sync(step, seq)
            return (time.perf_counter() - t0) / n

    async def store_seq() -> float:
        async with PostgresCheckpointStore(dsn, table=fresh_table()) as store:
            t0 = time.perf_counter()
            for seq in range(n):
                await store.append("run", _row(seq))
            return (time.perf_counter() - t0) / n

    per_run = max(1, n // CONCURRENT_RUNS)

    async def floor_b_concurrent() -> float:
        sql = PG_INSERT.format(t=fresh_table())
        limiter = anyio.CapacityLimiter(1)
        with psycopg.connect(dsn) as conn:

            def step(wid: str, seq: int) -> None:
                conn.execute(sql, params(wid, seq))
                conn.commit()

            async def run(wid: str) -> None:
                for seq in range(per_run):
                    await anyio.to_thread.run_sync(step, wid, seq, limiter=limiter)

            t0 = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for i in range(CONCURRENT_RUNS):
                    tg.start_soon(run, f"run-{i}")
            return (time.perf_counter() - t0) / (per_run * CONCURRENT_RUNS)

    async def store_concurrent() -> float:
        async with PostgresCheckpointStore(dsn, table=fresh_table()) as store:

            async def run(wid: str) -> None:
                for seq in range(per_run):
                    await store.append(wid, _row(seq))

            t0 = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for i in range(CONCURRENT_RUNS):
                    tg.start_soon(run, f"run-{i}")
            return (time.perf_counter() - t0) / (per_run * CONCURRENT_RUNS)

    try:
        out = await best_interleaved(
            {
                "floor (a) in-loop": floor_a,
                "floor (b) to_thread": floor_b,
                "store": store_seq,
                "16 runs: floor (b) serialised": floor_b_concurrent,
                "16 runs: store": store_concurrent,
            },
            ROUNDS,
        )
    finally:
        for (name,) in admin.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{table}%",)
        ).fetchall():
            admin.execute(f"DROP TABLE {name}")
        admin.close()
    return out


# -- report ---------------------------------------------------------------------------


def _report(title: str, figures: dict[str, float]) -> None:
    a, b = figures["floor (a) in-loop"], figures["floor (b) to_thread"]
    s = figures["store"]
    cb, cs = figures["16 runs: floor (b) serialised"], figures["16 runs: store"]
    print(f"\n{title}")
    print(f"  floor (a) INSERT+COMMIT on the loop thread  {a * 1e6:9.1f} us/append")
    print(f"  floor (b) INSERT+COMMIT via to_thread       {b * 1e6:9.1f} us/append")
    print(
        f"  store.append, one run                       {s * 1e6:9.1f} us/append"
        f"   {s / a:5.2f}x (a)  {s / b:5.2f}x (b)"
    )
    print(f"  16 runs, floor (b) one commit per append    {cb * 1e6:9.1f} us/append")
    print(
        f"  16 runs, store.append (group commit)        {cs * 1e6:9.1f} us/append"
        f"   {cs / cb:5.2f}x serialised floor (b)"
    )


async def _main(args: argparse.Namespace, backend: str) -> None:
    n = 200 if args.quick else args.appends
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("NORMAL", "FULL"):
            figures = await sqlite_figures(Path(tmp), n if sync == "NORMAL" else n // 4, sync)
            durability = "normal" if sync == "NORMAL" else "full"
            _report(
                f"[{backend}] SqliteCheckpointStore durability={durability!r} "
                f"(WAL, synchronous={sync})",
                figures,
            )
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    if dsn:
        _report(f"[{backend}] PostgresCheckpointStore", await postgres_figures(dsn, n // 2))
    elif backend == "asyncio":
        print("\n(PostgreSQL skipped: set CANO_DSL_TEST_POSTGRES_DSN, e.g. source .ci/postgres.sh)")


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=2000, help="appends per measurement")
    parser.add_argument("--quick", action="store_true", help="200 appends per measurement")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    args = parser.parse_args()
    ROUNDS = max(1, args.rounds)
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")
    for backend in backends:
        anyio.run(_main, args, backend, backend=backend)


if __name__ == "__main__":
    main()
