"""Per-step cost of a workflow that checkpoints every state, against raw-driver floors.

    python benchmarks/bench_checkpoint.py            # asyncio and trio, SQLite (+ PostgreSQL)
    python benchmarks/bench_checkpoint.py --quick    # fewer steps

The workflow has one state whose no-op task loops back to itself ``n`` times before
moving to an exit state, so every step is: engine loop iteration + one checkpoint row
(+ the final clear, amortised). Measured against:

  floor (a)  raw INSERT + COMMIT per step directly on the event loop's thread
             (WAL, synchronous=NORMAL; blocks the loop: the driver's lower bound;
             target for SQLite: workflow <= 2x floor (a))
  floor (b)  the same INSERT + COMMIT through ``anyio.to_thread.run_sync`` per step
             (the non-blocking floor with a thread hop per step; target <= 1.5x)

The SQLite store commits a sequential run's appends on the loop thread (inline, see
docs/checkpoint-stores.md), so it can come close to floor (a). The PostgreSQL store
keeps every call in a worker thread (a network wait must never block the loop) and
commits with an explicit COMMIT (BEGIN, INSERT, COMMIT: an INSERT that reached a server
which then froze must not commit by itself after its caller gave up). "floor (a1)",
one autocommit INSERT per step on the loop thread, shows what one round trip costs.

and 16 workflows running concurrently (distinct ids, one shared store: group commit)
against floor (b) serialised by a ``CapacityLimiter(1)``. The same workflow without a
store shows the engine's own share. PostgreSQL (vs raw psycopg INSERT + COMMIT) runs when
CANO_DSL_TEST_POSTGRES_DSN is set (see .ci/postgres.sh). Figures are the best of 5
interleaved rounds, wall time per step in microseconds.
"""

from __future__ import annotations

import argparse
import enum
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floors import PG_INSERT, SQLITE_INSERT, best_interleaved, params, raw_sqlite

from cano_dsl import Resources, TaskConfig, Workflow, task
from cano_dsl.stores import PostgresCheckpointStore, SqliteCheckpointStore

ROUNDS = 5
CONCURRENT_RUNS = 16


class Loop(enum.Enum):
    STEP = enum.auto()
    DONE = enum.auto()


def looping_workflow(steps: int, run_data: bool = False) -> Workflow[Loop]:
    """One state that re-enters itself ``steps`` times, then the exit. With
    ``run_data``, the run carries ~1 KB of run data and each step changes one field."""

    def make() -> Any:
        left = [steps]

        @task(config=TaskConfig.minimal(), name="step")
        async def step(res: Resources) -> Loop:
            left[0] -= 1
            return Loop.STEP if left[0] > 0 else Loop.DONE

        @task(config=TaskConfig.minimal(), name="step")
        async def step_with_data(res: Resources, data: dict[str, Any]) -> Loop:
            data["counter"] += 1
            left[0] -= 1
            return Loop.STEP if left[0] > 0 else Loop.DONE

        return step_with_data if run_data else step

    # a fresh counter per run: build lazily through a factory the caller invokes
    wf = Workflow.bare()
    if run_data:
        wf = wf.with_run_data(dict)
    return wf.register(Loop.STEP, make()).add_exit_state(Loop.DONE)


def run_data_1kb() -> dict[str, Any]:
    """About 1 KB of JSON run data with a counter the steps change."""
    return {"counter": 0, "items": [{"sku": f"sku-{i:05d}", "qty": i % 7} for i in range(33)]}


async def _workflow_per_step(
    store: Any, steps: int, runs: int = 1, run_data: bool = False
) -> float:
    async def one(i: int) -> None:
        wf = looping_workflow(steps, run_data)
        if store is not None:
            wf = wf.with_checkpoint_store(store).with_workflow_id(f"run-{uuid.uuid4().hex}-{i}")
        if run_data:
            result = await wf.run(Loop.STEP, data=run_data_1kb())
            assert result.state is Loop.DONE
        else:
            assert await wf.orchestrate(Loop.STEP) is Loop.DONE

    t0 = time.perf_counter()
    if runs == 1:
        await one(0)
    else:
        async with anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(one, i)
    return (time.perf_counter() - t0) / (steps * runs)


async def sqlite_figures(tmp: Path, n: int) -> dict[str, float]:
    per_run = max(1, n // CONCURRENT_RUNS)

    async def floor_a() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", "NORMAL")
        t0 = time.perf_counter()
        for seq in range(n):
            conn.execute(SQLITE_INSERT, params("run", seq))
            conn.commit()
        dt = time.perf_counter() - t0
        conn.close()
        return dt / n

    async def floor_b() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", "NORMAL")

        def step(seq: int) -> None:
            conn.execute(SQLITE_INSERT, params("run", seq))
            conn.commit()

        t0 = time.perf_counter()
        for seq in range(n):
            await anyio.to_thread.run_sync(step, seq)
        dt = time.perf_counter() - t0
        conn.close()
        return dt / n

    async def no_store() -> float:
        return await _workflow_per_step(None, n)

    async def workflow() -> float:
        async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as store:
            return await _workflow_per_step(store, n)

    async def workflow_data() -> float:
        async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as store:
            return await _workflow_per_step(store, n, run_data=True)

    async def floor_b_concurrent() -> float:
        conn = raw_sqlite(tmp / f"{uuid.uuid4().hex}.db", "NORMAL")
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

    async def workflow_concurrent() -> float:
        async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as store:
            return await _workflow_per_step(store, per_run, CONCURRENT_RUNS)

    return await best_interleaved(
        {
            "floor (a)": floor_a,
            "floor (b)": floor_b,
            "no store": no_store,
            "workflow": workflow,
            "workflow + 1 KB run data": workflow_data,
            "16: floor (b)": floor_b_concurrent,
            "16: workflow": workflow_concurrent,
        },
        ROUNDS,
    )


async def postgres_figures(dsn: str, n: int) -> dict[str, float]:
    import psycopg

    prefix = f"benchcp_{uuid.uuid4().hex[:8]}"
    ddl = (
        "CREATE TABLE {t} (workflow_id text NOT NULL, sequence bigint NOT NULL, "
        "state text NOT NULL, task_id text NOT NULL, output_blob bytea, "
        "kind smallint NOT NULL DEFAULT 0, workflow_version bigint NOT NULL DEFAULT 0, "
        "PRIMARY KEY (workflow_id, sequence))"
    )
    admin = psycopg.connect(dsn, autocommit=True)
    counter = iter(range(10**9))
    per_run = max(1, n // CONCURRENT_RUNS)

    def fresh_table() -> str:
        name = f"{prefix}_{next(counter)}"
        admin.execute(ddl.format(t=name))
        return name

    async def floor_a() -> float:
        sql = PG_INSERT.format(t=fresh_table())
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            for seq in range(n):
                conn.execute(sql, params("run", seq))
                conn.commit()
            return (time.perf_counter() - t0) / n

    async def floor_a1() -> float:
        sql = PG_INSERT.format(t=fresh_table())
        with psycopg.connect(dsn, autocommit=True) as conn:
            t0 = time.perf_counter()
            for seq in range(n):
                conn.execute(sql, params("run", seq))
            return (time.perf_counter() - t0) / n

    async def floor_b() -> float:
        sql = PG_INSERT.format(t=fresh_table())
        with psycopg.connect(dsn) as conn:

            def step(seq: int) -> None:
                conn.execute(sql, params("run", seq))
                conn.commit()

            t0 = time.perf_counter()
            for seq in range(n):
                await anyio.to_thread.run_sync(step, seq)
            return (time.perf_counter() - t0) / n

    async def no_store() -> float:
        return await _workflow_per_step(None, n)

    async def workflow() -> float:
        async with PostgresCheckpointStore(dsn, table=fresh_table()) as store:
            return await _workflow_per_step(store, n)

    async def workflow_data() -> float:
        async with PostgresCheckpointStore(dsn, table=fresh_table()) as store:
            return await _workflow_per_step(store, n, run_data=True)

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

    async def workflow_concurrent() -> float:
        async with PostgresCheckpointStore(dsn, table=fresh_table()) as store:
            return await _workflow_per_step(store, per_run, CONCURRENT_RUNS)

    try:
        return await best_interleaved(
            {
                "floor (a)": floor_a,
                "floor (a1)": floor_a1,
                "floor (b)": floor_b,
                "no store": no_store,
                "workflow": workflow,
                "workflow + 1 KB run data": workflow_data,
                "16: floor (b)": floor_b_concurrent,
                "16: workflow": workflow_concurrent,
            },
            ROUNDS,
        )
    finally:
        for (name,) in admin.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{prefix}%",)
        ).fetchall():
            admin.execute(f"DROP TABLE {name}")
        admin.close()


def _report(title: str, f: dict[str, float]) -> None:
    a, b, w = f["floor (a)"], f["floor (b)"], f["workflow"]
    cb, cw = f["16: floor (b)"], f["16: workflow"]
    print(f"\n{title}")
    print(f"  floor (a) INSERT+COMMIT per step, loop thread  {a * 1e6:9.1f} us/step")
    print(f"  floor (b) INSERT+COMMIT per step, to_thread    {b * 1e6:9.1f} us/step")
    if "floor (a1)" in f:
        a1 = f["floor (a1)"]
        print(f"  floor (a1) autocommit INSERT, loop thread      {a1 * 1e6:9.1f} us/step")
    print(f"  workflow without a store (engine only)         {f['no store'] * 1e6:9.1f} us/step")
    print(
        f"  workflow checkpointing every state             {w * 1e6:9.1f} us/step"
        f"   {w / b:5.2f}x (b)  {w / a:5.2f}x (a)"
        + (f"  {w / f['floor (a1)']:5.2f}x (a1)" if "floor (a1)" in f else "")
    )
    wd = f["workflow + 1 KB run data"]
    print(
        f"  the same with ~1 KB of run data                {wd * 1e6:9.1f} us/step"
        f"   {wd / b:5.2f}x (b)  {wd / a:5.2f}x (a)"
        + (f"  {wd / f['floor (a1)']:5.2f}x (a1)" if "floor (a1)" in f else "")
    )
    print(f"  16 runs: floor (b), one commit per step        {cb * 1e6:9.1f} us/step")
    print(
        f"  16 runs: workflows on one store (group commit) {cw * 1e6:9.1f} us/step"
        f"   {cw / cb:5.2f}x serialised floor (b)"
    )


async def _main(args: argparse.Namespace, backend: str) -> None:
    global ROUNDS
    ROUNDS = args.rounds
    n = 200 if args.quick else args.steps
    with tempfile.TemporaryDirectory() as tmp:
        _report(
            f"[{backend}] SqliteCheckpointStore (WAL, synchronous=NORMAL)",
            await sqlite_figures(Path(tmp), n),
        )
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    if dsn:
        _report(f"[{backend}] PostgresCheckpointStore", await postgres_figures(dsn, n // 2))
    elif backend == "asyncio":
        print("\n(PostgreSQL skipped: set CANO_DSL_TEST_POSTGRES_DSN, e.g. source .ci/postgres.sh)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per measurement")
    parser.add_argument("--quick", action="store_true", help="200 steps per measurement")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (best of)")
    args = parser.parse_args()
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}")
    for backend in backends:
        anyio.run(_main, args, backend, backend=backend)


if __name__ == "__main__":
    main()
