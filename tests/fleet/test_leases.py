"""Leases and fencing at the database: claims never overlap, an expired lease moves to
the next claimer, and the former owner's appends, heartbeats and final record are
refused in the same transaction that would have written them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cano_dsl.fleet import Fleet, RunStatus
from cano_dsl.fleet._db import db_for_store
from cano_dsl.stores import CheckpointRow

from .support import make_store

pytestmark = pytest.mark.anyio


async def _queued(fleet: Fleet, n: int) -> list[str]:
    return [(await fleet.enqueue("steps", "A", run_id=f"r{i:03d}")).run_id for i in range(n)]


async def test_an_expired_lease_fences_the_former_owner(fleet: Fleet, store_url: str) -> None:
    (rid,) = await _queued(fleet, 1)
    old, new = db_for_store(make_store(store_url)), db_for_store(make_store(store_url))
    try:
        (first,) = old.claim("old", 1, 0.2, ["steps"], None)
        assert (first.run_id, first.epoch, first.owner, first.recoveries) == (rid, 1, "old", 0)
        assert new.claim("new", 1, 30, ["steps"], None) == []  # the lease still holds
        row = CheckpointRow(0, "A", "A")
        assert old.fenced_append(rid, "old", 1, row) == "ok"
        assert old.fenced_append(rid, "old", 1, row) == "conflict"
        time.sleep(0.5)
        (taken,) = new.claim("new", 1, 30, ["steps"], None)
        assert (taken.epoch, taken.owner, taken.recoveries) == (2, "new", 1)
        late = CheckpointRow(1, "B", "B")
        assert old.fenced_append(rid, "old", 1, late) == "fenced"
        assert old.heartbeat("old", [(rid, 1)], 30) == ({rid}, set())
        assert not old.finish(rid, "old", 1, RunStatus.SUCCEEDED, exit_state="DONE")
        assert [r.sequence for r in new.load(rid)] == [0]  # the refused row is not there
        assert new.fenced_append(rid, "new", 2, late) == "ok"
        assert new.finish(rid, "new", 2, RunStatus.SUCCEEDED, exit_state="DONE", clear_log=True)
        rec = await fleet.get(rid)
        assert (rec.status, rec.exit_state, rec.owner) == (RunStatus.SUCCEEDED, "DONE", None)
        assert new.load(rid) == []
    finally:
        old.close()
        new.close()


async def test_concurrent_claims_never_take_one_run_twice(fleet: Fleet, store_url: str) -> None:
    ids = await _queued(fleet, 40)
    dbs = [db_for_store(make_store(store_url)) for _ in range(4)]
    taken: list[list[str]] = [[] for _ in dbs]
    start = threading.Barrier(len(dbs))

    def claimer(i: int) -> None:
        start.wait()
        while True:
            got = dbs[i].claim(f"w{i}", 3, 30, ["steps"], None)
            if not got:
                return
            taken[i].extend(r.run_id for r in got)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(len(dbs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for db in dbs:
        db.close()
    every = [rid for part in taken for rid in part]
    assert sorted(every) == ids  # each exactly once
    records = {r.run_id: r for r in await fleet.list(limit=100)}
    for i, part in enumerate(taken):
        assert all(records[rid].owner == f"w{i}" and records[rid].epoch == 1 for rid in part)


async def test_release_hands_a_run_back_at_once(fleet: Fleet, store_url: str) -> None:
    (rid,) = await _queued(fleet, 1)
    db: Any = db_for_store(make_store(store_url))
    try:
        (rec,) = db.claim("w", 1, 300, ["steps"], None)
        db.release("w", [(rid, rec.epoch)])
        back = await fleet.get(rid)
        assert (back.status, back.owner) == (RunStatus.QUEUED, None)
        (again,) = db.claim("v", 1, 300, ["steps"], None)
        assert (again.epoch, again.recoveries) == (2, 0)
    finally:
        db.close()


async def test_a_running_run_is_only_marked_for_cancellation(fleet: Fleet, store_url: str) -> None:
    (rid,) = await _queued(fleet, 1)
    db: Any = db_for_store(make_store(store_url))
    try:
        (rec,) = db.claim("w", 1, 300, ["steps"], None)
        marked = await fleet.cancel(rid)
        assert marked.status is RunStatus.RUNNING and marked.cancel_requested
        assert db.heartbeat("w", [(rid, rec.epoch)], 300) == (set(), {rid})
    finally:
        db.close()
