"""Fleet throughput and latency: trivial 3-state workflows through the run queue.

    python benchmarks/bench_fleet.py                      # SQLite (+ PostgreSQL if set)
    python benchmarks/bench_fleet.py --runs 500 --quick   # smaller
    CANO_DSL_TEST_POSTGRES_DSN=postgresql://... python benchmarks/bench_fleet.py

For each store (a SQLite file; PostgreSQL when ``CANO_DSL_TEST_POSTGRES_DSN`` is set):

- **throughput**: ``--runs`` runs of a 3-state workflow (A → B → C → DONE), enqueued
  from one client while 1 or 2 worker processes (``cano-dsl worker``) are idle and
  waiting; the clock runs from the first enqueue until every run's record is final.
  Repeated with 1, 16, 64 and 256 runs in flight (the workers' ``--concurrency``, split
  between the processes). Every state's checkpoint row is committed before the next
  state starts (the fleet's fenced append), as in `orchestrate` on the same store.
- **idle latency**: one idle worker; one run enqueued at a time; enqueue → start is
  ``started_at - created_at`` of the record (both the database's clock): p50 and p99.
- **baseline**: the same workflow run with `orchestrate` on the same store, one run
  at a time, in this process (runs/s), for the per-state cost comparison.

Best of ``--repeat`` (default 2) per figure; a shared, noisy machine: ±30 %.
"""

from __future__ import annotations

import argparse
import enum
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cano_dsl import Resources, TaskConfig, Workflow, task  # noqa: E402
from cano_dsl.fleet import Fleet, Registry, RunRecord  # noqa: E402


class S(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="A")
async def _a(res: Resources) -> S:
    return S.B


@task(config=TaskConfig.minimal(), name="B")
async def _b(res: Resources) -> S:
    return S.C


@task(config=TaskConfig.minimal(), name="C")
async def _c(res: Resources) -> S:
    return S.DONE


def three(run: RunRecord | None = None) -> Workflow[S]:
    """The trivial 3-state workflow."""
    return (
        Workflow.bare().register(S.A, _a).register(S.B, _b).register(S.C, _c).add_exit_state(S.DONE)
    )


registry = Registry().register("three", three)


def _make_store(kind: str, where: str) -> Any:
    if kind == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        return SqliteCheckpointStore(where)
    from cano_dsl.stores import PostgresCheckpointStore

    dsn, table = where.rsplit("#", 1)
    return PostgresCheckpointStore(dsn, table=table)


def _fresh(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return str(tmp / f"fleet-{uuid.uuid4().hex[:6]}.db")
    return f"{os.environ['CANO_DSL_TEST_POSTGRES_DSN']}#bench_fleet_{uuid.uuid4().hex[:8]}"


def _drop(kind: str, where: str) -> None:
    if kind != "postgres":
        return
    import psycopg

    dsn, table = where.rsplit("#", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in (f"{table}_runs", f"{table}_queues", f"{table}_fires", table):
            conn.execute(f"DROP TABLE IF EXISTS {t}")


def _workers(kind: str, where: str, n: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    if kind == "sqlite":
        store = ["--store", f"sqlite:{where}"]
    else:
        dsn, table = where.rsplit("#", 1)
        store = ["--store", dsn, "--table", table]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cano_dsl",
                "worker",
                "benchmarks.bench_fleet:registry",
                *store,
                "--concurrency",
                str(concurrency),
                "--lease",
                "30",
                "--grace",
                "1",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def _throughput(kind: str, where: str, runs: int) -> tuple[float, float]:
    """(enqueue runs/s, end-to-end runs/s) for ``runs`` runs."""
    store = _make_store(kind, where)
    async with Fleet(store) as fleet:
        t0 = time.perf_counter()
        for i in range(runs):
            await fleet.enqueue("three", S.A, run_id=f"r{i}")
        enqueued = time.perf_counter() - t0
        while True:
            done = len(await fleet.list(status=["succeeded", "failed"], limit=10_000))
            if done >= runs:
                break
            await anyio.sleep(0.02)
        total = time.perf_counter() - t0
        failed = await fleet.list(status="failed", limit=10)
        assert not failed, failed
    await store.aclose()
    return runs / enqueued, runs / total


async def _ready(kind: str, where: str) -> None:
    """Create the tables before the workers start (so they do not race to)."""
    store = _make_store(kind, where)
    async with Fleet(store):
        pass
    await store.aclose()


async def _latency(kind: str, where: str, samples: int) -> list[float]:
    store = _make_store(kind, where)
    out: list[float] = []
    async with Fleet(store) as fleet:
        await anyio.sleep(2.0)  # the worker is idle: its poll has backed off
        for _ in range(samples):
            handle = await fleet.enqueue("three", S.A)
            rec = await handle.result(timeout=30, poll_interval=0.005)
            assert rec.started_at is not None
            out.append(rec.started_at - rec.created_at)
            await anyio.sleep(0.3 if kind == "postgres" else 1.5)  # idle again
    await store.aclose()
    return out


async def _baseline(kind: str, where: str, runs: int) -> float:
    store = _make_store(kind, where)
    await store.open()
    t0 = time.perf_counter()
    for i in range(runs):
        await three().with_checkpoint_store(store).with_workflow_id(f"b{i}").orchestrate(S.A)
    elapsed = time.perf_counter() - t0
    await store.aclose()
    return runs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="in flight 16 and 64 only")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    kinds = [k for k in args.stores.split(",") if k]
    if "postgres" in kinds and not os.environ.get("CANO_DSL_TEST_POSTGRES_DSN"):
        kinds.remove("postgres")
    levels = [16, 64] if args.quick else [1, 16, 64, 256]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for kind in kinds:
            print(f"== {kind}: {args.runs} runs of a 3-state workflow, best of {args.repeat}")
            where = _fresh(kind, tmp)
            try:
                base = anyio.run(_baseline, kind, where, min(args.runs, 500))
            finally:
                _drop(kind, where)
            print(f"orchestrate, one run at a time, this process: {base:8.0f} runs/s")
            for procs in (1, 2):
                for inflight in levels:
                    if inflight < procs:
                        continue
                    best = (0.0, 0.0)
                    for _ in range(args.repeat):
                        where = _fresh(kind, tmp)
                        try:
                            anyio.run(_ready, kind, where)
                            workers = _workers(kind, where, procs, inflight // procs)
                            time.sleep(2.0)  # started and idle
                            try:
                                got = anyio.run(_throughput, kind, where, args.runs)
                            finally:
                                _stop(workers)
                        finally:
                            _drop(kind, where)
                        best = max(best, got, key=lambda g: g[1])
                    print(
                        f"{procs} worker(s), {inflight:3d} in flight: "
                        f"{best[1]:8.0f} runs/s end to end (enqueue alone {best[0]:6.0f}/s)"
                    )
            where = _fresh(kind, tmp)
            try:
                anyio.run(_ready, kind, where)
                workers = _workers(kind, where, 1, 4)
                time.sleep(2.0)
                try:
                    lat = sorted(anyio.run(_latency, kind, where, args.samples))
                finally:
                    _stop(workers)
            finally:
                _drop(kind, where)
            p50 = statistics.median(lat) * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            print(f"idle enqueue -> start: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms")


if __name__ == "__main__":
    main()
