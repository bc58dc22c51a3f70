"""Queue limits hold across the fleet: max running and start rate, checked in the
claim transaction; runs over a limit stay queued."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import ConfigurationError, RateLimiterPolicy
from cano_dsl.fleet import Fleet, QueueLimits, RunStatus
from cano_dsl.fleet._db import db_for_store

from .procs import start_worker, stop
from .support import make_store

pytestmark = pytest.mark.anyio


async def test_limits_read_back_and_reset(fleet: Fleet) -> None:
    assert await fleet.queue_limits("q") == QueueLimits("q", None, None, None)
    await fleet.set_queue_limits("q", max_running=3, start_rate=RateLimiterPolicy.new(10, 2.0))
    assert await fleet.queue_limits("q") == QueueLimits("q", 3, 10.0, 5.0)
    await fleet.set_queue_limits("q")
    assert (await fleet.queue_limits("q")).max_running is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_running": 0}, "max_running"), ({"start_rate": 5}, "RateLimiterPolicy")],
)
async def test_bad_limits_are_configuration_errors(
    fleet: Fleet, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await fleet.set_queue_limits("q", **kwargs)


async def test_max_running_holds_against_concurrent_claims(fleet: Fleet, store_url: str) -> None:
    await fleet.set_queue_limits("lim", max_running=2)
    for i in range(10):
        await fleet.enqueue("steps", "A", run_id=f"l{i}", queue="lim")
        await fleet.enqueue("steps", "A", run_id=f"f{i}", queue="free")
    dbs = [db_for_store(make_store(store_url)) for _ in range(3)]
    got: list[list[Any]] = [[] for _ in dbs]
    barrier = threading.Barrier(len(dbs))

    def claim(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            got[i].extend(dbs[i].claim(f"w{i}", 4, 300, ["steps"], None))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(dbs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [r for part in got for r in part]
    assert sum(r.queue == "lim" for r in claimed) == 2
    assert sum(r.queue == "free" for r in claimed) == 10
    done = next(r for r in claimed if r.queue == "lim")
    assert dbs[0].finish(done.run_id, done.owner, done.epoch, RunStatus.SUCCEEDED)
    more = dbs[0].claim("w0", 4, 300, ["steps"], None)
    assert [r.queue for r in more] == ["lim"]  # one slot freed: one more start
    for db in dbs:
        db.close()
    queued = await fleet.list(status="queued", queue="lim")
    assert len(queued) == 7  # over the limit: still queued, not failed


async def test_the_start_rate_spends_one_token_per_claim(fleet: Fleet, store_url: str) -> None:
    await fleet.set_queue_limits("slow", start_rate=RateLimiterPolicy.new(3, 3600.0))
    for i in range(6):
        await fleet.enqueue("steps", "A", run_id=f"s{i}", queue="slow")
    db = db_for_store(make_store(store_url))
    try:
        first = db.claim("w", 10, 300, ["steps"], None)
        assert [r.run_id for r in first] == ["s0", "s1", "s2"]  # the full bucket
        assert db.claim("w", 10, 300, ["steps"], None) == []  # empty for an hour
    finally:
        db.close()
    await fleet.set_queue_limits("slow", start_rate=RateLimiterPolicy.new(2, 0.5))
    db = db_for_store(make_store(store_url))
    try:
        assert len(db.claim("w", 10, 300, ["steps"], None)) == 2
        time.sleep(0.6)  # four tokens a second: refilled (capacity 2)
        assert len(db.claim("w", 10, 300, ["steps"], None)) == 1  # the last queued run
    finally:
        db.close()


async def _running_now(url: str, queue: str) -> int:
    store = make_store(url)
    async with Fleet(store) as fleet:
        n = len(await fleet.list(status="running", queue=queue, limit=1000))
    await store.aclose()
    return n


def test_queue_limit_holds_under_three_worker_processes(store_url: str, tmp_path: Path) -> None:
    async def setup() -> None:
        store = make_store(store_url)
        async with Fleet(store) as fleet:
            await fleet.set_queue_limits("lim", max_running=2)
            for i in range(12):
                await fleet.enqueue("steps", "A", {"sleep": 0.1}, run_id=f"q{i}", queue="lim")
        await store.aclose()

    anyio.run(setup)
    log = tmp_path / "tasks.log"
    workers = [start_worker(store_url, log, concurrency=4, lease=5.0) for _ in range(3)]
    samples: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "runs did not finish in 120 s"
            running = anyio.run(_running_now, store_url, "lim")
            samples.append(running)

            async def left() -> int:
                store = make_store(store_url)
                async with Fleet(store) as fleet:
                    n = len(await fleet.list(status=["queued", "running"], limit=1000))
                await store.aclose()
                return n

            if anyio.run(left) == 0:
                break
            time.sleep(0.03)
    finally:
        for w in workers:
            stop(w)
    assert max(samples) <= 2
    assert max(samples) == 2  # the limit was reached, so the check could have failed
