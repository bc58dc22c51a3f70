"""The README demo: an order-fulfilment workflow on the embedded SQLite checkpoint store.

    python examples/demo.py [--db PATH]

The checkpoint log goes to a temporary SQLite file, removed at the end; with ``--db PATH``
it goes to PATH, which is kept.

It shows, in one run:
- several states wired in a `Workflow`, with a router choosing the shipping path;
- a `@batch` fan-out pricing every order line with bounded concurrency and per-item retry;
- a flaky payment task whose retry policy recovers;
- a crash: the warehouse is offline on the first attempt, the run fails with its
  checkpoint log kept in SQLite, and `resume_from` continues from the failed state —
  the states before it are not run again.
"""

from __future__ import annotations

import argparse
import enum
import tempfile
from pathlib import Path

import anyio

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


@task(config=TaskConfig.minimal())
async def load(res: Resources) -> Order:
    res.get("store", MemoryStore).put("lines", LINES)
    return Order.PRICE


@batch(state=Order)
class PriceLines:
    """Price every order line, four at a time; a flaky tax service is retried per item."""

    concurrency = 4
    item_retry = RetryMode.fixed(2, 0.01)

    def __init__(self) -> None:
        self.tax_calls = 0

    async def load(self, res: Resources) -> list[tuple[str, int, float]]:
        lines: list[tuple[str, int, float]] = res.get("store", MemoryStore).get("lines")
        return lines

    async def process_item(self, item: tuple[str, int, float]) -> float:
        _name, qty, unit = item
        self.tax_calls += 1
        if self.tax_calls == 2:  # the tax service hiccups once
            raise ConnectionError("tax service timed out")
        await anyio.sleep(0.001)
        return round(qty * unit * 1.2, 2)

    async def finish(self, res: Resources, outputs: list[Outcome[float]]) -> Order:
        totals = [o.value for o in outputs if isinstance(o, Ok)]
        if len(totals) != len(outputs):
            raise RuntimeError("some order lines could not be priced")
        total = round(sum(totals), 2)
        res.get("store", MemoryStore).put("total", total)
        retried = self.tax_calls - len(outputs)  # every call beyond one per line was a retry
        print(
            f"  priced {len(totals)} lines in one batch ({self.tax_calls} tax calls,"
            f" {retried} item {'retry' if retried == 1 else 'retries'}): total {total}"
        )
        return Order.CHARGE


@task(config=TaskConfig().with_fixed_retry(3, 0.01))
async def charge(res: Resources) -> Order:
    store = res.get("store", MemoryStore)
    attempts = store.get_or("charge_attempts", 0) + 1
    store.put("charge_attempts", attempts)
    if attempts < 3:
        raise ConnectionError(f"payment gateway busy (attempt {attempts})")
    return Order.ROUTE


@router(state=Order)
class ChooseShipping:
    async def route(self, res: Resources) -> Order:
        total = res.get("store", MemoryStore).get("total", float)
        return Order.EXPRESS if total > 300 else Order.STANDARD


@task(config=TaskConfig.minimal())
async def express(res: Resources) -> Order:
    flags: dict[str, bool] = res.get("flags", dict)
    if flags.get("warehouse_offline"):
        raise RuntimeError("warehouse offline")
    return Order.SHIPPED


@task(config=TaskConfig.minimal())
async def standard(res: Resources) -> Order:
    return Order.SHIPPED


def build(
    db: SqliteCheckpointStore, flags: dict[str, bool], obs: RecordingObserver
) -> Workflow[Order]:
    res = Resources().insert("store", MemoryStore()).insert("flags", flags)
    return (
        Workflow(res)
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

        flags["warehouse_offline"] = False
        second = RecordingObserver()
        final = await build(db, flags, second).resume_from("order-42")
        print("run 2: resume_from('order-42')")
        print(f"  path: {' -> '.join(second.states_entered())}")
        print(f"  finished in {final.name}; log cleared: {await db.load_run('order-42') == []}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="cano_dsl demo")
    parser.add_argument("--db", help="keep the checkpoint log in this SQLite file")
    args = parser.parse_args()
    if args.db is not None:
        anyio.run(main, args.db)
    else:
        with tempfile.TemporaryDirectory(prefix="cano_demo_") as tmp:
            anyio.run(main, str(Path(tmp) / "cano_demo.sqlite3"))
