"""The scheduler once per fleet, with a registry: a tick of a fleet workflow is enqueued
as a fleet run (its run id derived from the flow and the scheduled time), so a worker
runs it and a scheduler process that dies after winning the tick loses nothing."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import ConfigurationError, Scheduler, TaskConfig, Workflow, task
from cano_dsl.fleet import Fleet, Registry, RunStatus, Worker, tick_run_id

from .flows import Step, registry
from .procs import counts, log_lines, start_worker, stop, wait_for
from .support import child_env, make_store


def local(ran: list[str]) -> Workflow[Step]:
    """The flow's workflow as the scheduler holds it: runs only if the tick runs here."""

    @task(config=TaskConfig.minimal(), name="local")
    async def run(res: Any) -> Step:
        ran.append("local")
        return Step.DONE

    return Workflow.bare().register(Step.A, run).add_exit_state(Step.DONE)


def test_tick_run_ids_are_the_flow_and_the_utc_time() -> None:
    at = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    assert tick_run_id("steps", at) == "steps@2030-01-01T12:00:00+00:00"
    assert tick_run_id("steps", at.replace(tzinfo=None)) == tick_run_id("steps", at)
    paris = datetime.timezone(datetime.timedelta(hours=1))
    assert tick_run_id("steps", at.astimezone(paris)) == tick_run_id("steps", at)


@pytest.mark.anyio
async def test_enqueue_tick_creates_the_run_once(fleet: Fleet, store_url: str) -> None:
    at = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    other = Fleet(make_store(store_url))
    try:
        first = await fleet.enqueue_tick("steps", at, Step.A)
        second = await other.enqueue_tick("steps", at, "A")
        assert first.created and not second.created
        assert first.run_id == second.run_id == tick_run_id("steps", at)
        record = await fleet.get(first.run_id)
        assert record.workflow_name == "steps" and record.initial_state == "A"
        later = await other.enqueue_tick("steps", at + datetime.timedelta(seconds=1), Step.A)
        assert later.created
    finally:
        await other.aclose()
        await other.store.aclose()


@pytest.mark.anyio
async def test_two_schedulers_enqueue_each_tick_once_and_a_worker_runs_it(
    fleet: Fleet, store_url: str
) -> None:
    ran: list[str] = []
    other = Fleet(make_store(store_url))
    worker = Worker(fleet, registry, concurrency=4, lease=10, poll_interval=0.01)
    try:
        a = (
            Scheduler()
            .every("steps", local(ran), Step.A, 0.5)
            .once_per_fleet(fleet, registry=registry, queue="ticks", priority=3)
        )
        b = (
            Scheduler()
            .every("steps", local(ran), Step.A, 0.5)
            .once_per_fleet(other, registry=registry, queue="ticks", priority=3)
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            async with a.start(), b.start():
                await anyio.sleep(2.6)
            with anyio.fail_after(60):
                while await fleet.list(status=["queued", "running"]):
                    await anyio.sleep(0.05)
            worker.stop()
    finally:
        await other.aclose()
        await other.store.aclose()
    records = await fleet.list()
    assert ran == []  # no tick ran in a scheduler
    assert 4 <= len(records) <= 6, records
    assert all(r.status is RunStatus.SUCCEEDED and r.exit_state == "DONE" for r in records)
    assert all(r.queue == "ticks" and r.priority == 3 for r in records)
    assert all(r.run_id.startswith("steps@") for r in records)
    slots = Counter(
        round(datetime.datetime.fromisoformat(r.run_id[6:]).timestamp() * 2) for r in records
    )
    assert all(n == 1 for n in slots.values()), records  # one run per half-second tick


@pytest.mark.anyio
async def test_flows_not_in_the_registry_still_run_in_the_scheduler(fleet: Fleet) -> None:
    ran: list[str] = []
    sched = (
        Scheduler()
        .every("elsewhere", local(ran), Step.A, 0.5)
        .once_per_fleet(fleet, registry=registry)
    )
    async with sched.start():
        await anyio.sleep(1.3)
    assert 1 <= len(ran) <= 3
    assert await fleet.list() == []


def test_once_per_fleet_with_a_registry_checks_its_input(tmp_path: Path) -> None:
    from cano_dsl.stores import SqliteCheckpointStore

    fleet = Fleet(SqliteCheckpointStore(tmp_path / "x.db"))
    with pytest.raises(ConfigurationError, match="registry must be a cano_dsl.fleet.Registry"):
        Scheduler().once_per_fleet(fleet, registry={"steps": None})

    class Fires:
        async def take_fire(self, flow_id: str, scheduled_at: datetime.datetime) -> bool:
            return True

    with pytest.raises(ConfigurationError, match="fires must be a cano_dsl.fleet.Fleet"):
        Scheduler().once_per_fleet(Fires(), registry=Registry())
    with pytest.raises(ConfigurationError, match="queue must be a non-empty str"):
        Scheduler().once_per_fleet(fleet, registry=Registry(), queue="")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_tick_survives_its_scheduler_killed_right_after_winning_it(
    store_url: str, tmp_path: Path, backend: str
) -> None:
    """The scheduler process is SIGKILLed as soon as a tick's run exists (it won that
    tick); only then does a worker start, and it runs the tick to its result."""
    log = tmp_path / "runs.log"
    sched = subprocess.Popen(
        [sys.executable, "-m", "tests.fleet.sched_enqueue_proc", store_url, "60", backend],
        env=child_env(CANO_FLEET_TEST_LOG=str(log)),
        stderr=subprocess.PIPE,
    )
    worker = None
    try:
        found: list[str] = []

        def tick_enqueued() -> bool:
            assert sched.poll() is None, sched.stderr.read().decode() if sched.stderr else ""
            found[:] = anyio.run(_run_ids, store_url)
            return bool(found)

        wait_for(tick_enqueued, 60, "the scheduler to win a tick")
        sched.kill()
        sched.wait()
        run_id = found[0]
        assert run_id.startswith("steps@")
        assert log_lines(log) == []  # nothing ran in the scheduler
        worker = start_worker(store_url, log, backend=backend)
        record = anyio.run(_result, store_url, run_id)
        assert record.status is RunStatus.SUCCEEDED and record.exit_state == "DONE"
        seen = counts(log)
        assert [seen[(run_id, s)] for s in ("A", "B", "C")] == [1, 1, 1]
        assert {pid for rid, _, pid in log_lines(log) if rid == run_id} == {worker.pid}
        assert not any(rid == "local-steps" for rid, _, _ in log_lines(log))
    finally:
        stop(sched)
        if worker is not None:
            stop(worker)


async def _run_ids(store_url: str) -> list[str]:
    store = make_store(store_url)
    try:
        async with Fleet(store) as fleet:
            return [r.run_id for r in await fleet.list()]
    finally:
        await store.aclose()


async def _result(store_url: str, run_id: str) -> Any:
    store = make_store(store_url)
    try:
        async with Fleet(store) as fleet:
            return await fleet.handle(run_id).result(timeout=90)
    finally:
        await store.aclose()
