"""The run queue's public API on a real SQLite file and the real PostgreSQL server."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from cano_dsl import ConfigurationError
from cano_dsl.fleet import (
    Fleet,
    Registry,
    RunCancelledError,
    RunFailedError,
    RunNotFound,
    RunStatus,
    Worker,
)

from .flows import Step, registry

pytestmark = pytest.mark.anyio


async def test_enqueue_creates_a_queued_record(fleet: Fleet) -> None:
    handle = await fleet.enqueue("steps", Step.A, {"n": 1}, queue="q1", priority=3)
    assert handle.created
    record = await fleet.get(handle.run_id)
    assert record.status is RunStatus.QUEUED
    assert (record.workflow_name, record.initial_state, record.data) == ("steps", "A", {"n": 1})
    assert (record.queue, record.priority, record.epoch, record.owner) == ("q1", 3, 0, None)
    assert record.started_at is None and record.finished_at is None
    assert await handle.status() is RunStatus.QUEUED


async def test_enqueue_with_an_existing_run_id_returns_the_existing_run(fleet: Fleet) -> None:
    first = await fleet.enqueue("steps", Step.A, 1, run_id="order-1")
    second = await fleet.enqueue("fails", Step.B, 2, run_id="order-1", queue="other")
    assert first.created and not second.created
    record = await fleet.get("order-1")
    assert (record.workflow_name, record.data, record.queue) == ("steps", 1, "default")
    assert len(await fleet.list()) == 1


async def test_list_filters_and_pages_in_enqueue_order(fleet: Fleet) -> None:
    ids = [(await fleet.enqueue("steps", "A", i, queue=f"q{i % 2}")).run_id for i in range(7)]
    assert [r.run_id for r in await fleet.list()] == ids
    assert [r.run_id for r in await fleet.list(queue="q1")] == ids[1::2]
    assert [r.run_id for r in await fleet.list(limit=3, offset=2)] == ids[2:5]
    await fleet.cancel(ids[0])
    assert [r.run_id for r in await fleet.list(status="cancelled")] == ids[:1]
    both = await fleet.list(status=[RunStatus.QUEUED, RunStatus.CANCELLED], workflow_name="steps")
    assert len(both) == 7
    assert await fleet.list(workflow_name="fails") == []


async def test_cancel_of_a_queued_run_is_final_at_once(fleet: Fleet) -> None:
    handle = await fleet.enqueue("steps", Step.A)
    record = await handle.cancel()
    assert record.status is RunStatus.CANCELLED and record.finished_at is not None
    with pytest.raises(RunCancelledError) as info:
        await handle.result(timeout=5)
    assert info.value.record.run_id == handle.run_id


async def test_unknown_run_ids_raise_run_not_found(fleet: Fleet) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        await fleet.get("nope")
    with pytest.raises(RunNotFound):
        await fleet.cancel("nope")
    with pytest.raises(KeyError):
        await fleet.handle("nope").status()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("", Step.A), {}, "workflow_name"),
        (("steps", 3), {}, "initial_state"),
        (("steps", Step.A, {1, 2}), {}, "JSON value"),
        (("steps", Step.A, float("nan")), {}, "JSON value"),
        (("steps", Step.A), {"queue": ""}, "queue"),
        (("steps", Step.A), {"priority": 1.5}, "priority"),
        (("steps", Step.A), {"run_id": ""}, "workflow id"),
    ],
)
async def test_bad_enqueue_input_is_a_configuration_error(
    fleet: Fleet, args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await fleet.enqueue(*args, **kwargs)
    assert await fleet.list() == []


async def test_fleet_refuses_a_store_without_a_database(tmp_path: Any) -> None:
    from cano_dsl import MemoryStore

    with pytest.raises(ConfigurationError, match="SqliteCheckpointStore"):
        Fleet(MemoryStore())


async def _serve_until(worker: Worker, done: Any) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await done()
        worker.stop()


async def test_a_worker_runs_queued_runs_to_their_result(fleet: Fleet) -> None:
    ok = await fleet.enqueue("steps", Step.A, run_id="ok")
    bad = await fleet.enqueue("fails", Step.A, run_id="bad")
    worker = Worker(fleet, registry, concurrency=2, lease=5, poll_interval=0.01)
    results: dict[str, Any] = {}

    async def wait() -> None:
        results["ok"] = await ok.result(timeout=30)
        with pytest.raises(RunFailedError) as info:
            await bad.result(timeout=30)
        results["bad"] = info.value.record

    await _serve_until(worker, wait)
    record = results["ok"]
    assert record.status is RunStatus.SUCCEEDED and record.exit_state == "DONE"
    assert record.epoch == 1 and record.recoveries == 0 and record.owner is None
    assert record.started_at is not None and record.finished_at >= record.started_at
    failed = results["bad"]
    assert failed.error_state == "B" and "boom in B" in failed.error_message
    assert failed.error_category == "task_execution"
    assert await fleet.store.load_run("ok") == []  # the log is cleared with the record


async def test_a_worker_claims_by_priority_then_fifo(fleet: Fleet) -> None:
    order: list[str] = []
    for rid, prio in [("low1", 0), ("high", 5), ("low2", 0), ("mid", 2)]:
        await fleet.enqueue("steps", Step.A, run_id=rid, priority=prio)
    worker = Worker(fleet, registry, concurrency=1, lease=5, poll_interval=0.01)

    async def wait() -> None:
        for rid in ("high", "mid", "low1", "low2"):
            rec = await fleet.handle(rid).result(timeout=30)
            order.append(rid)
            assert rec.started_at is not None
        recs = {r.run_id: r for r in await fleet.list()}
        starts = sorted(recs, key=lambda k: recs[k].started_at or 0)
        order[:] = starts

    await _serve_until(worker, wait)
    assert order == ["high", "mid", "low1", "low2"]


def test_registry_rejects_bad_definitions() -> None:
    reg = Registry()
    with pytest.raises(ConfigurationError, match="name"):
        reg.register("", lambda rec: None)
    with pytest.raises(ConfigurationError, match="callable"):
        reg.register("x", 3)  # type: ignore[arg-type]
    reg.register("x", lambda rec: None, version=2)
    with pytest.raises(ConfigurationError, match="exists"):
        reg.register("x", lambda rec: None, version=2)
    with pytest.raises(ConfigurationError, match="no version 1"):
        reg.factory("x", 1)
    with pytest.raises(ConfigurationError, match="no workflow"):
        reg.factory("y")


async def test_postgres_wakes_an_idle_worker_on_enqueue(fleet: Fleet) -> None:
    if fleet._db.dialect != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll")
    # polling every 20 s: only a NOTIFY can start the run within the wait below
    worker = Worker(fleet, registry, lease=30, poll_interval=20, max_poll_interval=20)
    records: list[Any] = []

    async def wait() -> None:
        await anyio.sleep(1.0)  # the worker is idle, its first poll long done
        handle = await fleet.enqueue("steps", Step.A)
        records.append(await handle.result(timeout=10))

    await _serve_until(worker, wait)
    (record,) = records
    assert record.status is RunStatus.SUCCEEDED


async def test_run_data_goes_in_with_enqueue_and_comes_out_in_the_record(fleet: Fleet) -> None:
    handle = await fleet.enqueue("data", Step.A, {"order": 7})
    worker = Worker(fleet, registry, lease=5, poll_interval=0.01)
    records: list[Any] = []

    async def wait() -> None:
        records.append(await handle.result(timeout=30))

    await _serve_until(worker, wait)
    (record,) = records
    assert record.data == {"order": 7}
    assert record.result_data == {"order": 7, "trail": ["A", "B", "C"]}


async def test_runs_without_run_data_have_no_result_data(fleet: Fleet) -> None:
    handle = await fleet.enqueue("steps", Step.A, {"ignored": True})
    worker = Worker(fleet, registry, lease=5, poll_interval=0.01)
    records: list[Any] = []

    async def wait() -> None:
        records.append(await handle.result(timeout=30))

    await _serve_until(worker, wait)
    assert records[0].result_data is None and records[0].data == {"ignored": True}
