"""The peers `bench_fleet.py --peers` measures beside the fleet, on the same server:
DBOS (a 3-step workflow through a DBOS queue) and procrastinate (a one-step job), each
in a database of its own that is created and dropped around each measurement. Needs the
``bench`` extra (``pip install -e '.[bench]'``).

    python -m benchmarks._peers dbos-worker URL CONCURRENCY
    python -m benchmarks._peers procrastinate-worker URL CONCURRENCY
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

try:  # the DBOS workflow: three durable steps
    from dbos import DBOS

    @DBOS.step()
    def dbos_a() -> int:
        return 1

    @DBOS.step()
    def dbos_b() -> int:
        return 2

    @DBOS.step()
    def dbos_c() -> int:
        return 3

    @DBOS.workflow()
    def dbos_three() -> str:
        dbos_a()
        dbos_b()
        dbos_c()
        return "DONE"

except ImportError:  # pragma: no cover - the bench extra is not installed
    pass


def _procrastinate_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="one_step", queue="bench")
    async def one_step() -> None:
        return None

    return app


def _recreate(base_dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return base_dsn.rsplit("/", 1)[0] + "/" + name


def _drop(base_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def _spawn(kind: str, url: str, procs: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks._peers", f"{kind}-worker", url, str(concurrency)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(procs)
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


def _wait_until(url: str, sql: str, runs: int, t0: float, timeout: float = 300.0) -> float:
    while _count(url, sql) < runs:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{runs} not done after {timeout}s")
        time.sleep(0.02)
    return time.perf_counter() - t0


def measure_dbos(base_dsn: str, procs: int, inflight: int, runs: int) -> tuple[float, float]:
    """(enqueue/s, workflows/s end to end) of ``runs`` 3-step DBOS workflows through a
    queue served by ``procs`` processes of ``inflight // procs`` worker concurrency."""
    from dbos import DBOSClient

    url = _recreate(base_dsn, "cano_bench_dbos")
    try:
        workers = _spawn("dbos", url, procs, max(1, inflight // procs))
        try:
            client = DBOSClient(system_database_url=url)
            deadline = time.perf_counter() + 60
            while _count(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'dbos'") < 3:
                if time.perf_counter() > deadline:
                    raise TimeoutError("DBOS workers did not start")
                time.sleep(0.2)
            time.sleep(2.0)
            t0 = time.perf_counter()
            for _ in range(runs):
                client.enqueue({"queue_name": "bench", "workflow_name": "dbos_three"})
            enqueued = time.perf_counter() - t0
            total = _wait_until(
                url,
                "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'",
                runs,
                t0,
            )
            client.destroy()
        finally:
            _stop(workers)
    finally:
        _drop(base_dsn, "cano_bench_dbos")
    return runs / enqueued, runs / total


def measure_procrastinate(
    base_dsn: str, procs: int, inflight: int, runs: int
) -> tuple[float, float]:
    """(defer/s, jobs/s end to end) of ``runs`` one-step procrastinate jobs, deferred
    one at a time, served by ``procs`` workers of ``inflight // procs`` concurrency."""
    import anyio

    url = _recreate(base_dsn, "cano_bench_procrastinate")
    try:
        app = _procrastinate_app(url)
        with app.open():
            app.schema_manager.apply_schema()
        workers = _spawn("procrastinate", url, procs, max(1, inflight // procs))
        try:
            time.sleep(3.0)

            async def defer_all() -> float:
                async with app.open_async():
                    task = app.tasks["one_step"]
                    t0 = time.perf_counter()
                    for _ in range(runs):
                        await task.defer_async()
                    return time.perf_counter() - t0

            t0 = time.perf_counter()
            enqueued = anyio.run(defer_all)
            total = _wait_until(
                url,
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
                runs,
                t0,
            )
        finally:
            _stop(workers)
    finally:
        _drop(base_dsn, "cano_bench_procrastinate")
    return runs / enqueued, runs / total


def _serve_dbos(url: str, concurrency: int) -> None:
    from dbos import DBOS

    DBOS(config={"name": "cano_bench", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    DBOS.register_queue("bench", worker_concurrency=concurrency, polling_interval_sec=0.01)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    DBOS.destroy()


def _serve_procrastinate(url: str, concurrency: int) -> None:
    app = _procrastinate_app(url)
    app.run_worker(queues=["bench"], concurrency=concurrency, wait=True)


if __name__ == "__main__":
    what, where, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if what == "dbos-worker":
        _serve_dbos(where, conc)
    elif what == "procrastinate-worker":
        _serve_procrastinate(where, conc)
    else:
        raise SystemExit(f"unknown command {what!r}")
