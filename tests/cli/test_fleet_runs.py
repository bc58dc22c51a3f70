"""`cano-dsl runs list/show` on a store whose database holds a fleet: run records come
from `Fleet.list` / `Fleet.get`, and the checkpoint logs of plain (non-fleet) runs are
listed as before. A real SQLite file and the real PostgreSQL server; the CLI runs in a
subprocess, the fleet's worker in the test's event loop (asyncio and trio)."""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import StateFailure, TaskConfig, Workflow, task
from cano_dsl.fleet import Fleet, Registry, RunRecord, Worker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    DONE = enum.auto()


def _flow(run: RunRecord) -> Workflow[Step]:
    @task(config=TaskConfig.minimal(), name="A")
    async def a(res: Any) -> Step:
        return Step.B

    @task(config=TaskConfig.minimal(), name="B")
    async def b(res: Any, data: dict[str, Any]) -> Step:
        if data.get("fail"):
            raise RuntimeError("card declined")
        await anyio.sleep(data.get("sleep", 0))
        data["paid"] = data.get("amount", 0)
        return Step.DONE

    return (
        Workflow.bare()
        .register(Step.A, a)
        .register(Step.B, b)
        .add_exit_state(Step.DONE)
        .with_run_data(dict)
    )


registry = Registry()
registry.register("pay", _flow)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    """A store and the CLI arguments naming it (``--store URL [--table NAME]``)."""
    if request.param == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        path = tmp_path / "fleet.db"
        yield SqliteCheckpointStore(path), ["--store", f"sqlite:{path}"]
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}")
    from cano_dsl.stores import PostgresCheckpointStore

    table = f"cano_cli_{uuid.uuid4().hex[:10]}"
    yield (
        PostgresCheckpointStore(dsn, table=table),
        ["--store", f"postgres:{dsn}", "--table", table],
    )
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for suffix in ("_runs", "_queues", "_fires", ""):
            conn.execute(f"DROP TABLE IF EXISTS {table}{suffix}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "cano_dsl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await anyio.to_thread.run_sync(lambda: _cli(*args))


def ok(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture
async def fleet_runs(where: tuple[Any, list[str]]) -> AsyncIterator[list[str]]:
    """Three fleet runs (succeeded, failed, queued) and one plain run's checkpoint log
    (``plain-1``, interrupted in B) in one store; yields the CLI's store arguments."""
    store, args = where
    async with Fleet(store) as fleet:
        good = await fleet.enqueue("pay", Step.A, {"amount": 7}, run_id="good")
        bad = await fleet.enqueue("pay", Step.A, {"fail": True}, run_id="bad")
        worker = Worker(fleet, registry, concurrency=2, lease=10, poll_interval=0.01)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await good.result(timeout=60)
            with anyio.fail_after(60):
                while not (await bad.status()).is_final:
                    await anyio.sleep(0.02)
            worker.stop()
        # a run handed back in B by a worker stopped without grace: queued, with a log
        await fleet.enqueue("pay", Step.A, {"amount": 5, "sleep": 30}, run_id="moved")
        first = Worker(fleet, registry, lease=10, poll_interval=0.01)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: first.run(grace=0))
            with anyio.fail_after(60):
                while len(await store.load_run("moved")) < 2:
                    await anyio.sleep(0.01)
            first.stop()
        await fleet.enqueue("pay", Step.B, {"amount": 3}, run_id="waiting", priority=4)
    # a plain run's log: a run interrupted in B (a row for A, a row for B)
    plain = _flow_plain().with_checkpoint_store(store).with_workflow_id("plain-1")
    with pytest.raises(StateFailure, match="gateway down"):
        await plain.orchestrate(Step.A)
    await store.aclose()
    yield args


def _flow_plain() -> Workflow[Step]:
    @task(config=TaskConfig.minimal(), name="A")
    async def a(res: Any) -> Step:
        return Step.B

    @task(config=TaskConfig.minimal(), name="B")
    async def b(res: Any) -> Step:
        raise RuntimeError("gateway down")

    return Workflow.bare().register(Step.A, a).register(Step.B, b).add_exit_state(Step.DONE)


async def test_runs_list_shows_fleet_records_then_other_logs(fleet_runs: list[str]) -> None:
    lines = ok(await cli("runs", "list", *fleet_runs))
    assert lines[0] == "fleet runs (4):"
    assert lines[1].split() == [
        "RUN_ID",
        "STATUS",
        "WORKFLOW",
        "QUEUE",
        "PRIORITY",
        "RECOVERIES",
        "STATE",
    ]
    assert [line.split() for line in lines[2:6]] == [
        ["good", "succeeded", "pay", "default", "0", "0", "DONE"],
        ["bad", "failed", "pay", "default", "0", "0", "B"],
        ["moved", "queued", "pay", "default", "0", "0", "B"],  # its log's last state
        ["waiting", "queued", "pay", "default", "4", "0", "B"],
    ]
    # the fleet run's own log ("moved") is not listed again as another run's
    assert lines[6] == "checkpoint logs of other runs (1):"
    assert lines[7].split()[0] == "WORKFLOW_ID"
    assert lines[8].split() == ["plain-1", "2", "1", "B", "state_entry", "0"]
    assert len(lines) == 9


async def test_runs_show_prints_a_fleet_record(fleet_runs: list[str]) -> None:
    shown = ok(await cli("runs", "show", "good", *fleet_runs))
    fields = dict(line.split(": ", 1) for line in shown if ": " in line and not line[0].isspace())
    assert fields["run id"].strip() == "good"
    assert fields["status"].strip() == "succeeded"
    assert fields["workflow"].strip() == "pay (version newest)"
    assert fields["exit state"].strip() == "DONE"
    assert fields["epoch"].strip() == "1" and fields["recoveries"].strip() == "0"
    assert fields["finished"].strip().endswith("Z")
    text = "\n".join(shown)
    assert 'data:\n{\n  "amount": 7\n}' in text
    assert 'result data:\n{\n  "amount": 7,\n  "paid": 7\n}' in text

    failed = "\n".join(ok(await cli("runs", "show", "bad", *fleet_runs)))
    assert "status:" in failed and "failed" in failed
    assert "task_execution" in failed and "card declined" in failed
    assert "error state:" in failed

    queued = "\n".join(ok(await cli("runs", "show", "waiting", *fleet_runs)))
    assert "queued" in queued and "(priority 4)" in queued and "started:" in queued


async def test_runs_show_of_a_handed_over_fleet_run_adds_its_log(fleet_runs: list[str]) -> None:
    shown = ok(await cli("runs", "show", "moved", *fleet_runs))
    text = "\n".join(shown)
    assert shown[0].split() == ["run", "id:", "moved"]
    assert "queued" in shown[1] and "epoch:" in text
    assert "result data:" not in text
    at = shown.index("workflow id: moved (2 rows)")
    assert [line.split()[:3] for line in shown[at + 2 : at + 4]] == [
        ["0", "state_entry", "A"],
        ["1", "state_entry", "B"],
    ]
    assert "run data (as of the last row):" in text


async def test_runs_show_of_a_plain_run_prints_its_rows(fleet_runs: list[str]) -> None:
    shown = ok(await cli("runs", "show", "plain-1", *fleet_runs))
    assert shown[0] == "workflow id: plain-1 (2 rows)"
    assert [line.split()[:3] for line in shown[2:]] == [
        ["0", "state_entry", "A"],
        ["1", "state_entry", "B"],
    ]
    missing = await cli("runs", "show", "ghost", *fleet_runs)
    assert missing.returncode == 1
    assert "no checkpoint log for workflow id 'ghost'" in missing.stderr
