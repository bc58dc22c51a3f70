"""The fleet across real processes: workers killed, paused, stopped; enqueue races;
cancellation from another process. SQLite file and the real PostgreSQL server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl.fleet import Fleet, RunStatus

from .procs import log_lines, start_worker, stop, store_args, wait_for
from .support import child_env, make_store

ORDER = {"A": 0, "B": 1, "B0": 1, "B1": 2, "B2": 3, "C": 4}
WANTED = {
    "steps": {"A", "B", "C"},
    "saga": {"A", "B"},
    "mixed": {"A", "B0", "B1", "B2", "C"},
    "data": {"A", "B", "C"},
}


def _run(coro_fn: Any, *args: Any) -> Any:
    return anyio.run(coro_fn, *args)


async def _enqueue_many(url: str, specs: list[tuple[str, str, Any]]) -> None:
    store = make_store(url)
    async with Fleet(store) as fleet:
        for name, rid, data in specs:
            await fleet.enqueue(name, "A", data, run_id=rid)
    await store.aclose()


async def _records(url: str) -> dict[str, Any]:
    store = make_store(url)
    async with Fleet(store) as fleet:
        out = {r.run_id: r for r in await fleet.list(limit=10_000)}
    await store.aclose()
    return out


def _all_final(url: str) -> bool:
    return all(r.status.is_final for r in _run(_records, url).values())


_ENQUEUE_RACE = """
import sys, time, anyio
from cano_dsl.fleet import Fleet
from tests.fleet.support import make_store

async def main(url, at):
    store = make_store(url)
    async with Fleet(store) as fleet:
        await fleet.open()
        while time.time() < at:
            time.sleep(0.001)
        handle = await fleet.enqueue("steps", "A", {"who": sys.argv[3]}, run_id="the-one")
    await store.aclose()
    print("created" if handle.created else "existing")

anyio.run(main, sys.argv[1], float(sys.argv[2]))
"""


def test_enqueue_of_one_run_id_from_four_processes_makes_one_run(store_url: str) -> None:
    _run(_enqueue_many, store_url, [])  # create the tables first: the race is the insert
    at = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENQUEUE_RACE, store_url, str(at), str(i)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outs]
    said = sorted(o[0].decode().strip() for o in outs)
    assert said == ["created", "existing", "existing", "existing"]
    records = _run(_records, store_url)
    assert list(records) == ["the-one"]
    assert records["the-one"].data["who"] in {"0", "1", "2", "3"}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_runs_survive_workers_killed_at_random(
    store_url: str, tmp_path: Path, backend: str
) -> None:
    n = int(os.environ.get("CANO_FLEET_SOAK_RUNS", "24"))
    log = tmp_path / "tasks.log"
    kinds = ["steps", "saga", "mixed", "data"]
    specs = [(kinds[i % 4], f"run-{i:04d}", {"sleep": 0.15, "n": i}) for i in range(n)]
    _run(_enqueue_many, store_url, specs)
    workers = [start_worker(store_url, log, backend=backend, concurrency=4) for _ in range(3)]
    rng = random.Random(n)
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while not _all_final(store_url):
            assert time.monotonic() < deadline, "runs did not finish in 120 s"
            time.sleep(0.6 + rng.random() * 0.4)
            # a worker that holds runs right now (owner is "host:pid:tag"), else any
            owners = {
                int(r.owner.split(":")[1])
                for r in _run(_records, store_url).values()
                if r.status is RunStatus.RUNNING and r.owner
            }
            busy = [i for i, w in enumerate(workers) if w.pid in owners]
            victim = rng.choice(busy) if busy else rng.randrange(len(workers))
            stop(workers[victim])  # SIGKILL
            kills += 1
            workers[victim] = start_worker(store_url, log, backend=backend, concurrency=4)
    finally:
        for w in workers:
            stop(w)
    records = _run(_records, store_url)
    assert len(records) == n
    for rid, rec in records.items():
        assert rec.status is RunStatus.SUCCEEDED, (rid, rec)
        assert rec.exit_state == "DONE"
        if rec.workflow_name == "data":  # the run data survived every resume, once
            assert rec.result_data == {"sleep": 0.15, "n": rec.data["n"], "trail": ["A", "B", "C"]}
    by_run: dict[str, list[str]] = {}
    for rid, what, _pid in log_lines(log):
        by_run.setdefault(rid, []).append(what)
    for rid, seen in by_run.items():
        assert not any(s.startswith("undo") for s in seen), (rid, seen)  # no compensation
        steps = [ORDER[s] for s in seen]
        # a state re-runs only where its run was resumed: never one before the resume point
        assert steps == sorted(steps), (rid, seen)
        assert set(seen) == WANTED[records[rid].workflow_name], (rid, seen)
    assert kills >= 1
    assert sum(r.recoveries for r in records.values()) >= 1


def test_a_paused_worker_is_taken_over_and_its_writes_refused(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    _run(_enqueue_many, store_url, [("steps", "slow", {"sleep": 1.5})])
    zombie = start_worker(store_url, log, concurrency=1, lease=1.0)
    heir = None
    try:
        wait_for(lambda: any(w == "A" for _, w, _ in log_lines(log)), 30, "A to start")
        os.kill(zombie.pid, signal.SIGSTOP)
        time.sleep(2.0)  # past the lease
        heir = start_worker(store_url, log, concurrency=1, lease=1.0)
        wait_for(lambda: any(p == heir.pid for _, _, p in log_lines(log)), 30, "the heir to resume")
        os.kill(zombie.pid, signal.SIGCONT)  # its A finishes; its B append is refused
        wait_for(lambda: _all_final(store_url), 60, "the run to finish")
        time.sleep(1.5)  # room for the zombie to try anything more
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
        stop(zombie)
        if heir is not None:
            stop(heir)
    rec = _run(_records, store_url)["slow"]
    assert rec.status is RunStatus.SUCCEEDED and rec.recoveries == 1 and rec.epoch == 2
    lines = log_lines(log)
    assert [w for _, w, p in lines if p == zombie.pid] == ["A"]  # never got further
    assert [w for _, w, p in lines if p == heir.pid] == ["A", "B", "C"]


def test_cancel_from_another_process_compensates_a_running_run(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    _run(_enqueue_many, store_url, [("saga", "doomed", {"sleep": 60}), ("steps", "never", None)])
    worker = start_worker(store_url, log, concurrency=1, lease=1.0)
    try:
        wait_for(lambda: ("doomed", "B") in {(r, w) for r, w, _ in log_lines(log)}, 30, "B")
        for rid in ("never", "doomed"):  # the queued one first: it must never start
            done = subprocess.run(
                [sys.executable, "-m", "cano_dsl", "runs", "cancel", rid, *store_args(store_url)],
                env=child_env(),
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr.decode()
        wait_for(lambda: _all_final(store_url), 30, "the cancellation")
        time.sleep(0.5)
    finally:
        stop(worker)
    records = _run(_records, store_url)
    assert records["never"].status is RunStatus.CANCELLED
    assert records["never"].started_at is None
    assert records["doomed"].status is RunStatus.CANCELLED
    assert records["doomed"].error_category == "cancelled"
    seen = [(r, w) for r, w, _ in log_lines(log)]
    assert seen == [("doomed", "A"), ("doomed", "B"), ("doomed", "undo-A")]


def test_graceful_shutdown_hands_runs_over_before_the_lease_expires(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "tasks.log"
    _run(_enqueue_many, store_url, [("steps", "handed", {"sleep": 1.5})])
    first = start_worker(store_url, log, concurrency=1, lease=120.0, grace=0.2)
    second = None
    try:
        wait_for(lambda: len(log_lines(log)) >= 1, 30, "A to start")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.stderr.read().decode() if first.stderr else ""
        second = start_worker(store_url, log, concurrency=1, lease=120.0)
        # well inside the 120 s lease: the run was handed back, not left to expire
        wait_for(lambda: _all_final(store_url), 60, "the heir to finish the run")
    finally:
        stop(first)
        if second is not None:
            stop(second)
    rec = _run(_records, store_url)["handed"]
    assert rec.status is RunStatus.SUCCEEDED and rec.epoch == 2
    lines = log_lines(log)
    assert [w for _, w, p in lines if p == first.pid] == ["A"]
    assert [w for _, w, p in lines if p == second.pid][-2:] == ["B", "C"]


def test_a_saga_handed_over_at_shutdown_is_not_compensated(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "tasks.log"
    _run(_enqueue_many, store_url, [("saga", "trip", {"sleep": 2.0})])
    first = start_worker(store_url, log, concurrency=1, lease=120.0, grace=0.2, backend="trio")
    second = None
    try:
        wait_for(lambda: ("trip", "B") in {(r, w) for r, w, _ in log_lines(log)}, 30, "B")
        first.send_signal(signal.SIGTERM)  # B outlives the grace: handed over mid-saga
        assert first.wait(timeout=30) == 0
        second = start_worker(store_url, log, concurrency=1, lease=120.0, backend="trio")
        wait_for(lambda: _all_final(store_url), 60, "the heir to finish the saga")
    finally:
        stop(first)
        if second is not None:
            stop(second)
    rec = _run(_records, store_url)["trip"]
    assert rec.status is RunStatus.SUCCEEDED and rec.epoch == 2
    seen = [(w, p) for _, w, p in log_lines(log)]
    assert seen == [("A", first.pid), ("B", first.pid), ("B", second.pid)]  # no undo-A
