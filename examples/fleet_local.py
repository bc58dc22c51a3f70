"""A fleet on one host: a SQLite run queue, a worker, runs enqueued and awaited.

    python examples/fleet_local.py

`Fleet` keeps run records and the run queue in the checkpoint store's database. A
`Registry` names the workflows a `Worker` may run; `Fleet.enqueue` queues a run by
name (from any process: here the same one), and `RunHandle.result` waits for its
record. Several worker processes on one SQLite file share the queue the same way
(`cano-dsl worker examples.fleet_local:registry --store sqlite:runs.db`).
"""

from __future__ import annotations

import enum
import tempfile
from pathlib import Path

import anyio

from cano_dsl import Resources, TaskConfig, Workflow, task
from cano_dsl.fleet import Fleet, Registry, RunFailedError, RunRecord, Worker
from cano_dsl.stores import SqliteCheckpointStore


class Order(enum.Enum):
    CHECK = enum.auto()
    CHARGE = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


def order_flow(run: RunRecord) -> Workflow[Order]:
    """One order: the run data is the amount; a negative one fails in CHECK."""
    amount = run.data

    @task(config=TaskConfig.minimal())
    async def check(res: Resources) -> Order:
        if not isinstance(amount, int) or amount < 0:
            raise ValueError(f"bad amount {amount!r}")
        return Order.CHARGE

    @task(config=TaskConfig.minimal())
    async def charge(res: Resources) -> Order:
        return Order.SHIP

    @task(config=TaskConfig.minimal())
    async def ship(res: Resources) -> Order:
        return Order.DONE

    return (
        Workflow.bare()
        .register(Order.CHECK, check)
        .register(Order.CHARGE, charge)
        .register(Order.SHIP, ship)
        .add_exit_state(Order.DONE)
    )


registry = Registry().register("order", order_flow)


async def main(path: Path) -> None:
    store = SqliteCheckpointStore(path)
    async with Fleet(store) as fleet:
        handles = [
            await fleet.enqueue("order", Order.CHECK, amount, run_id=f"order-{i}")
            for i, amount in enumerate([12, 30, -1])
        ]
        again = await fleet.enqueue("order", Order.CHECK, 99, run_id="order-0")
        print(f"enqueue order-0 again: created={again.created}")
        worker = Worker(fleet, registry, concurrency=4, poll_interval=0.01)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            for handle in handles:
                try:
                    record = await handle.result(timeout=30)
                    print(f"{record.run_id}: {record.status.value} at {record.exit_state}")
                except RunFailedError as exc:
                    failed = exc.record
                    print(f"{failed.run_id}: failed in {failed.error_state}")
            worker.stop()
        done = await fleet.list(status="succeeded")
        print(f"succeeded: {[r.run_id for r in done]}")
    await store.aclose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(main, Path(tmp) / "fleet.db")
