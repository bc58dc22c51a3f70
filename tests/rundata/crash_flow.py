"""An order workflow with run data, run as a child process that is SIGKILLed in SHIP.

python crash_flow.py DB WORKFLOW_ID     # runs until SHIP, prints READY, hangs
"""

from __future__ import annotations

import enum
import sys
import time

import anyio
import attrs

from cano_dsl import Resources, Workflow, task
from cano_dsl.stores import SqliteCheckpointStore


class Step(enum.Enum):
    LOAD = 1
    PRICE = 2
    CHARGE = 3
    SHIP = 4
    DONE = 5


@attrs.define
class Order:
    order_id: str = ""
    items: list[str] = attrs.Factory(list)
    total: float = 0.0
    charge_id: str | None = None
    tracking: str | None = None


@task
async def load(res: Resources, data: Order) -> Step:
    data.order_id = "A-17"
    data.items = ["book", "lamp"]
    return Step.PRICE


@task
async def price(res: Resources, data: Order) -> Step:
    data.total = 12.5 * len(data.items)
    return Step.CHARGE


@task
async def charge(res: Resources, data: Order) -> Step:
    data.charge_id = f"ch_{data.order_id}"
    return Step.SHIP


@task
async def hang_in_ship(res: Resources, data: Order) -> Step:
    data.tracking = "half-written"
    print("READY", flush=True)
    time.sleep(600)  # blocks the whole process: the parent kills it here
    return Step.DONE


@task
async def ship(res: Resources, data: Order) -> Step:
    data.tracking = f"trk_{data.charge_id}"
    return Step.DONE


def build(store: SqliteCheckpointStore, crash: bool) -> Workflow[Step]:
    return (
        Workflow(Resources())
        .with_run_data(Order)
        .register(Step.LOAD, load)
        .register(Step.PRICE, price)
        .register(Step.CHARGE, charge)
        .register(Step.SHIP, hang_in_ship if crash else ship)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
    )


async def _main(path: str, wid: str) -> None:
    async with SqliteCheckpointStore(path) as store:
        await build(store, True).with_workflow_id(wid).run(Step.LOAD)


if __name__ == "__main__":
    anyio.run(_main, sys.argv[1], sys.argv[2])
