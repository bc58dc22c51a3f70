"""The batched paths: `Fleet.enqueue_many`, and the worker's group-commit batch (on
PostgreSQL one pipelined round trip) of fenced appends, final records and loads, whose
per-op outcomes must be exactly those of the ops run one by one, with the lease fence
intact (no takeover while a fenced append is in flight)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from cano_dsl import ConfigurationError
from cano_dsl.fleet import Fleet, RunStatus, Worker
from cano_dsl.fleet._db import OpFailed, db_for_store
from cano_dsl.stores import CheckpointRow

from .flows import Step, registry
from .support import make_store

pytestmark = pytest.mark.anyio


async def test_enqueue_many_queues_each_run_once(fleet: Fleet) -> None:
    first = await fleet.enqueue("data", Step.A, {"n": 0}, run_id="old")
    handles = await fleet.enqueue_many(
        "data",
        Step.A,
        [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}],
        run_ids=["a", "old", "b", "a"],
        queue="q",
        priority=3,
    )
    assert first.created
    assert [(h.run_id, h.created) for h in handles] == [
        ("a", True),
        ("old", False),
        ("b", True),
        ("a", False),  # the second of one id in one call is the existing run
    ]
    records = {r.run_id: r for r in await fleet.list()}
    assert set(records) == {"old", "a", "b"}
    assert records["a"].data == {"n": 1} and records["b"].data == {"n": 3}
    assert records["old"].data == {"n": 0} and records["old"].queue == "default"
    assert all(records[r].queue == "q" and records[r].priority == 3 for r in "ab")
    assert all(records[r].status is RunStatus.QUEUED for r in records)
    fresh = await fleet.enqueue_many("steps", "A", [None, None])
    assert len({h.run_id for h in fresh}) == 2 and all(h.created for h in fresh)
    assert await fleet.enqueue_many("steps", "A", []) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": [1, {2}]}, r"data\[1\] must be a JSON value"),
        ({"data": [1, float("nan")]}, r"data\[1\] must be a JSON value"),
        ({"data": [1, 2], "run_ids": ["x"]}, "one id per item"),
        ({"data": [1], "run_ids": "x"}, "not a str"),
        ({"data": [1], "run_ids": [""]}, "enqueue_many"),
        ({"data": [1], "queue": ""}, "queue"),
        ({"data": [1], "priority": 1.5}, "priority"),
    ],
)
async def test_enqueue_many_refuses_bad_input_before_writing(
    fleet: Fleet, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await fleet.enqueue_many("steps", Step.A, **kwargs)
    assert await fleet.list() == []


async def test_a_worker_runs_what_enqueue_many_queued(fleet: Fleet) -> None:
    handles = await fleet.enqueue_many("data", Step.A, [{"i": i} for i in range(12)])
    worker = Worker(fleet, registry, concurrency=6, lease=10, poll_interval=0.01)
    out: list[Any] = []

    async def wait() -> None:
        for h in handles:
            out.append(await h.result(timeout=60))

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await wait()
        worker.stop()
    assert [r.result_data for r in out] == [{"i": i, "trail": ["A", "B", "C"]} for i in range(12)]
    assert all(r.status is RunStatus.SUCCEEDED and r.epoch == 1 for r in out)


async def test_a_batch_gives_each_op_its_own_outcome(fleet: Fleet, store_url: str) -> None:
    for rid in ("r1", "r2", "r3"):
        await fleet.enqueue("steps", "A", run_id=rid)
    db = db_for_store(make_store(store_url))
    try:
        claimed = db.claim("w", 3, 30, ["steps"], None)
        assert sorted(r.run_id for r in claimed) == ["r1", "r2", "r3"]
        assert db.fenced_append("r1", "w", 1, CheckpointRow(0, "A", "A")) == "ok"
        ops = [
            db.fenced_append_op("r1", "w", 1, CheckpointRow(1, "B", "B")),  # ok
            db.fenced_append_op("r1", "w", 1, CheckpointRow(0, "A", "A")),  # conflict
            db.fenced_append_op("r2", "w", 7, CheckpointRow(0, "A", "A")),  # wrong epoch
            db.fenced_append_op("r2", "x", 1, CheckpointRow(0, "A", "A")),  # wrong owner
            db.fenced_append_op("r2", "w", 1, CheckpointRow(0, "A", "A")),  # ok
            db.load_op("r1"),
            db.finish_op("r3", "w", 2, RunStatus.SUCCEEDED, exit_state="DONE"),  # fenced
            db.finish_op("r2", "w", 1, RunStatus.FAILED, error=("x", "boom", "A")),
            db.finish_op("r1", "w", 1, RunStatus.SUCCEEDED, exit_state="DONE", clear_log=True),
            db.load_op("r2"),
        ]
        out = db.batch(ops)
        assert out[:5] == ["ok", "conflict", "fenced", "fenced", "ok"]
        assert [r.sequence for r in out[5]] == [0, 1]  # the batch sees its own writes
        assert out[6:9] == [False, True, True]
        assert [r.sequence for r in out[9]] == [0]  # a failed run keeps its log
        assert db.load("r1") == []  # cleared with its final record
        rec = {r.run_id: r for r in await fleet.list()}
        assert rec["r1"].status is RunStatus.SUCCEEDED and rec["r1"].exit_state == "DONE"
        assert rec["r2"].status is RunStatus.FAILED and rec["r2"].error_message == "boom"
        assert rec["r3"].status is RunStatus.RUNNING and rec["r3"].owner == "w"
    finally:
        db.close()


async def test_an_undecodable_log_fails_only_its_own_op(fleet: Fleet, store_url: str) -> None:
    for rid in ("good", "bad"):
        await fleet.enqueue("steps", "A", run_id=rid)
    db = db_for_store(make_store(store_url))
    try:
        db.claim("w", 2, 30, ["steps"], None)
        # a row this version cannot read (an unknown kind), written behind the fleet
        db.tx("plant", lambda cur: cur.execute(_plant(db), ("bad",)))
        out = db.batch(
            [
                db.load_op("bad"),
                db.fenced_append_op("good", "w", 1, CheckpointRow(0, "A", "A")),
            ]
        )
        assert isinstance(out[0], OpFailed) and "bad" in str(out[0].error)
        assert out[1] == "ok"
        assert [r.sequence for r in db.load("good")] == [0]  # committed all the same
    finally:
        db.close()


def _plant(db: Any) -> str:
    mark = "%s" if db.dialect == "postgres" else "?"
    return (
        f"INSERT INTO {db.checkpoints} (workflow_id, sequence, state, task_id, kind) "
        f"VALUES ({mark}, 0, 'A', 'A', 99)"
    )


@pytest.mark.postgres
async def test_no_takeover_while_a_fenced_append_is_in_flight(fleet: Fleet, store_url: str) -> None:
    if store_url.startswith("sqlite:"):
        pytest.skip("SQLite writers take turns on the database lock")
    await fleet.enqueue("steps", "A", run_id="r")
    old, new = db_for_store(make_store(store_url)), db_for_store(make_store(store_url))
    import psycopg

    dsn = store_url.rsplit("#", 1)[0]
    try:
        old.claim("old", 1, 0.2, ["steps"], None)
        time.sleep(0.4)  # the lease has expired
        op = old.fenced_append_op("r", "old", 1, CheckpointRow(0, "A", "A"))
        with psycopg.connect(dsn) as conn:  # the append, in flight: not committed yet
            assert op(conn.cursor()) == "ok"
            # the lease row is share-locked: a claimer skips it, it does not take it over
            assert new.claim("new", 1, 30, ["steps"], None) == []
            conn.commit()
        taken = new.claim("new", 1, 30, ["steps"], None)
        assert [r.epoch for r in taken] == [2]
        assert [r.sequence for r in new.load("r")] == [0]  # the append stood
        late = old.fenced_append_op("r", "old", 1, CheckpointRow(1, "B", "B"))
        assert old.batch([late]) == ["fenced"]
    finally:
        old.close()
        new.close()


async def test_one_claim_takes_many_in_priority_then_fifo_order(
    fleet: Fleet, store_url: str
) -> None:
    for i, prio in enumerate([0, 5, 0, 2, 5, 0]):
        await fleet.enqueue("steps", "A", run_id=f"r{i}", priority=prio)
    await fleet.set_queue_limits("other", max_running=1)  # a limited queue elsewhere
    db = db_for_store(make_store(store_url))
    try:
        got = db.claim("w", 4, 30, ["steps"], None)
        assert [r.run_id for r in got] == ["r1", "r4", "r3", "r0"]
        assert all(r.owner == "w" and r.epoch == 1 for r in got)
        await fleet.set_queue_limits("other")  # no limits anywhere now
        rest = db.claim("w", 4, 30, ["steps"], None)
        assert [r.run_id for r in rest] == ["r2", "r5"]
        assert db.claim("w", 4, 30, ["steps"], None) == []
    finally:
        db.close()
