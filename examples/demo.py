"""The README demo: an order-fulfilment workflow on the embedded SQLite checkpoint store.

    python examples/demo.py [--db PATH]

The checkpoint log goes to a temporary SQLite file, removed at the end; with ``--db PATH``
it goes to PATH, which is kept.

It shows, in one run:
- several states wired in a `Workflow`, with a router choosing the shipping path;
- a `@batch` fan-out pricing every order line with bounded concurrency and per-item retry;
- a flaky payment task whose retry policy recovers;
- run data: the order (its lines, total, charge id, shipping choice) is an attrs value
  every task reads and changes through its ``data`` parameter; each checkpoint row
  carries what changed, so the log knows the order at every state;
- a crash: the warehouse is offline on the first attempt, the run fails with its
  checkpoint log kept in SQLite, and `resume` continues from the failed state with the
  order data as it was when that state was entered — the states before it are not run
  again.

Process-local things stay in a `MemoryStore` resource: the payment attempt counter is a
fact about this process, not about the order, so it is not part of the run data.
"""

from __future__ import annotations

import argparse
import enum
import tempfile
from pathlib import Path

import anyio
import attrs

from cano_dsl import (
    MemoryStore,
    Ok,
    Outcome,
    Resources,
    RetryMode,
    StateFailure,
    TaskConfig,
    Workflow,
    batch,
    router,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.testing import RecordingObserver, Retry


class Order(enum.Enum):
    LOAD = enum.auto()
    PRICE = enum.auto()
    CHARGE = enum.auto()
    ROUTE = enum.auto()
    EXPRESS = enum.auto()
    STANDARD = enum.auto()
    SHIPPED = enum.auto()


LINES = [("book", 2, 12.5), ("lamp", 1, 40.0), ("mug", 4, 7.25), ("desk", 1, 310.0)]


@attrs.define
class Line:
    sku: str
    qty: int
    unit: float


@attrs.define
class OrderData:
    """The run data: what this order run knows, checkpointed with every state."""

    order_id: str = ""
    lines: list[Line] = attrs.Factory(list[Line])
    total: float = 0.0
    charge_id: str | None = None
    shipping: str | None = None
    tracking: str | None = None


def describe(data: OrderData) -> str:
    return (
        f"order {data.order_id}: {len(data.lines)} lines, total {data.total}, "
        f"charge {data.charge_id}, shipping {data.shipping}, tracking {data.tracking}"
    )


@task(config=TaskConfig.minimal())
async def load(res: Resources, data: OrderData) -> Order:
    data.order_id = "A-42"
    data.lines = [Line(sku, qty, unit) for sku, qty, unit in LINES]
    return Order.PRICE


@batch(state=Order)
class PriceLines:
    """Price every order line, four at a time; a flaky tax service is retried per item."""

    concurrency = 4
    item_retry = RetryMode.fixed(2, 0.01)

    def __init__(self) -> None:
        self.tax_calls = 0

    async def load(self, res: Resources, data: OrderData) -> list[Line]:
        return data.lines

    async def process_item(self, item: Line) -> float:
        qty, unit = item.qty, item.unit
        self.tax_calls += 1
        if self.tax_calls == 2:  # the tax service hiccups once
            raise ConnectionError("tax service timed out")
        await anyio.sleep(0.001)
        return round(qty * unit * 1.2, 2)

    async def finish(self, res: Resources, outputs: list[Outcome[float]], data: OrderData) -> Order:
        totals = [o.value for o in outputs if isinstance(o, Ok)]
        if len(totals) != len(outputs):
            raise RuntimeError("some order lines could not be priced")
        total = round(sum(totals), 2)
        data.total = total
        retried = self.tax_calls - len(outputs)  # every call beyond one per line was a retry
        print(
            f"  priced {len(totals)} lines in one batch ({self.tax_calls} tax calls,"
            f" {retried} item {'retry' if retried == 1 else 'retries'}): total {total}"
        )
        return Order.CHARGE


@task(config=TaskConfig().with_fixed_retry(3, 0.01))
async def charge(res: Resources, data: OrderData) -> Order:
    store = res.get("store", MemoryStore)  # a process-local counter, not order data
    attempts = store.get_or("charge_attempts", 0) + 1
    store.put("charge_attempts", attempts)
    data.charge_id = f"ch_{data.order_id}_{attempts}"  # a failed attempt's id is dropped
    if attempts < 3:
        raise ConnectionError(f"payment gateway busy (attempt {attempts})")
    return Order.ROUTE


@router(state=Order)
class ChooseShipping:
    async def route(self, res: Resources, data: OrderData) -> Order:
        data.shipping = "express" if data.total > 300 else "standard"
        return Order.EXPRESS if data.total > 300 else Order.STANDARD


@task(config=TaskConfig.minimal())
async def express(res: Resources, data: OrderData) -> Order:
    flags: dict[str, bool] = res.get("flags", dict)
    print(f"  EXPRESS starts with the run data: {describe(data)}")
    data.tracking = "EXP-pending"  # lost with the failed attempt: never checkpointed
    if flags.get("warehouse_offline"):
        raise RuntimeError("warehouse offline")
    data.tracking = f"EXP-{data.order_id}"
    return Order.SHIPPED


@task(config=TaskConfig.minimal())
async def standard(res: Resources, data: OrderData) -> Order:
    data.tracking = f"STD-{data.order_id}"
    return Order.SHIPPED


def build(
    db: SqliteCheckpointStore, flags: dict[str, bool], obs: RecordingObserver
) -> Workflow[Order]:
    res = Resources().insert("store", MemoryStore()).insert("flags", flags)
    return (
        Workflow(res)
        .with_run_data(OrderData)
        .register(Order.LOAD, load)
        .register(Order.PRICE, PriceLines())
        .register(Order.CHARGE, charge)
        .register_router(Order.ROUTE, ChooseShipping())
        .register(Order.EXPRESS, express)
        .register(Order.STANDARD, standard)
        .add_exit_state(Order.SHIPPED)
        .with_checkpoint_store(db)
        .with_observer(obs)
    )


async def main(db_path: str) -> None:
    flags = {"warehouse_offline": True}
    async with SqliteCheckpointStore(db_path) as db:
        first = RecordingObserver()
        wf = build(db, flags, first).with_workflow_id("order-42")
        print(f"run 1: checkpointing to {db_path}")
        try:
            await wf.orchestrate(Order.LOAD)
        except StateFailure as failure:
            print(f"  path: {' -> '.join(first.states_entered())}")
            retries: dict[str, int] = {}
            for event in first.of_type(Retry):
                name = event.task_id.rsplit(".", 1)[-1]
                retries[name] = retries.get(name, 0) + 1
            summary = ", ".join(f"{name} x{n}" for name, n in retries.items()) or "none"
            print(f"  task retries (from the recorded events): {summary}")
            print(f"  failed in {failure.state.name}: {failure.error}")
        rows = await db.load_run("order-42")
        print(f"  checkpoint log kept: {[r.state for r in rows]}")
        sizes = ", ".join(f"{r.state} {len(r.data_patch or b'')} B" for r in rows)
        print(f"  run data carried by each row (what changed): {sizes}")

        flags["warehouse_offline"] = False
        second = RecordingObserver()
        print("run 2: resume('order-42')")
        result = await build(db, flags, second).resume("order-42")
        print(f"  path: {' -> '.join(second.states_entered())}")
        print(f"  final run data: {describe(result.data)}")
        print(
            f"  finished in {result.state.name}; log cleared: {await db.load_run('order-42') == []}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="cano_dsl demo")
    parser.add_argument("--db", help="keep the checkpoint log in this SQLite file")
    args = parser.parse_args()
    if args.db is not None:
        anyio.run(main, args.db)
    else:
        with tempfile.TemporaryDirectory(prefix="cano_demo_") as tmp:
            anyio.run(main, str(Path(tmp) / "cano_demo.sqlite3"))
