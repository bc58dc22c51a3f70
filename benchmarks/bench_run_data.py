"""Per-state cost of run data (docs/run-data.md, docs/performance.md).

    python benchmarks/bench_run_data.py [--steps N] [--backend asyncio|trio|both]

One state re-enters itself N times; each visit changes one small field of the run data.
Variants, each without a store (the engine's own share) and with a
`SqliteCheckpointStore` (a row per state):

  off        no run data; the task takes no data parameter (the inline fast path)
  on, none   1 KB of run data declared, the task does not take it (rows carry nothing)
  on, 1 KB   the task takes ~1 KB of run data (a dict) and changes one field per state
  on, typed  the same ~1 KB as an attrs class (25 nested attrs items with an Enum field)
  on, 1 MB   the task takes 1 MB of run data (a dict) and changes one field per state

Figures are per state, in microseconds: the marginal cost (the best of 3 interleaved
runs of N states minus the best of 3 runs of N/10, divided by the difference), so the
one-time work of a run (encoding the initial value, its first row) is left out. Also printed:

  before     the per-state work the engine did before the incremental update, measured
             directly on the same value: the whole value through `json` (encode + decode)
             and a diff against the old tree
  floor (a)  one sqlite3 INSERT + COMMIT on the calling thread (WAL, synchronous=NORMAL),
             the issue's yardstick: run data should cost a small part of it
  row bytes  the run data a row carries: the first row (the whole value) / later rows
             (the patch), which must stay small even for the 1 MB value
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import attrs
from _floors import params, raw_sqlite

from cano_dsl import Resources, TaskConfig, Workflow, task
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.workflow._data import DataCodec, diff

ROUNDS = 3


class Loop(enum.Enum):
    STEP = enum.auto()
    DONE = enum.auto()


def value_of(size: int) -> dict[str, Any]:
    """A JSON mapping of about ``size`` bytes plus a counter."""
    return {
        "counter": 0,
        "items": [{"sku": f"sku-{i:05d}", "qty": i % 7} for i in range(size // 30)],
    }


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@attrs.define
class Item:
    sku: str
    qty: int = 1
    color: Color = Color.RED


@attrs.define
class Cart:
    counter: int = 0
    items: list[Item] = attrs.Factory(list)
    notes: dict[str, str] = attrs.Factory(dict)


def cart_of() -> Cart:
    """About 1 KB as JSON: 25 nested attrs items."""
    return Cart(0, [Item(f"sku-{i:05d}", i % 7) for i in range(25)], {"k": "v"})


def workflow(variant: str, steps: int) -> Workflow[Loop]:
    left = [steps]

    @task(config=TaskConfig.minimal(), name="step")
    async def plain(res: Resources) -> Loop:
        left[0] -= 1
        return Loop.STEP if left[0] > 0 else Loop.DONE

    @task(config=TaskConfig.minimal(), name="step")
    async def with_data(res: Resources, data: dict[str, Any]) -> Loop:
        data["counter"] += 1
        left[0] -= 1
        return Loop.STEP if left[0] > 0 else Loop.DONE

    @task(config=TaskConfig.minimal(), name="step")
    async def with_cart(res: Resources, data: Cart) -> Loop:
        data.counter += 1
        left[0] -= 1
        return Loop.STEP if left[0] > 0 else Loop.DONE

    wf = Workflow.bare()
    if variant == "typed":
        return wf.with_run_data(Cart).register(Loop.STEP, with_cart).add_exit_state(Loop.DONE)
    if variant != "off":
        wf = wf.with_run_data(dict)
    step = with_data if variant in ("1kb", "1mb") else plain
    return wf.register(Loop.STEP, step).add_exit_state(Loop.DONE)


DATA = {"off": None, "none": 1_000, "1kb": 1_000, "typed": 0, "1mb": 1_000_000}


def data_of(variant: str) -> dict[str, Any]:
    size = DATA[variant]
    if size is None:
        return {}
    return {"data": cart_of() if variant == "typed" else value_of(size)}


class KeepLog:
    """The store, but ``clear`` keeps the rows so that their sizes can be read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def append(self, wid: str, row: Any) -> None:
        await self.inner.append(wid, row)

    async def load_run(self, wid: str) -> Any:
        return await self.inner.load_run(wid)

    async def clear(self, wid: str) -> None:
        return None


async def per_step(variant: str, steps: int, store: Any) -> float:
    wf = workflow(variant, steps)
    if store is not None:
        wf = wf.with_checkpoint_store(store).with_workflow_id(f"r-{uuid.uuid4().hex}")
    kwargs = data_of(variant)
    t0 = time.perf_counter()
    result = await wf.run(Loop.STEP, **kwargs)
    dt = time.perf_counter() - t0
    assert result.state is Loop.DONE
    return dt


async def timed(variant: str, steps: int, store_dir: Path | None) -> float:
    """Seconds for one run of ``steps`` states (without or with a SQLite store)."""
    if store_dir is None:
        return await per_step(variant, steps, None)
    async with SqliteCheckpointStore(store_dir / f"{uuid.uuid4().hex}.db") as s:
        return await per_step(variant, steps, s)


def before_cost(variant: str) -> float:
    """Seconds per state of the old settle: encode + decode of the whole value and a diff
    against the previous tree (plus the patch's encode when a store is there)."""
    if DATA[variant] is None or variant == "none":
        return 0.0
    codec = DataCodec(Cart if variant == "typed" else dict)
    value: Any = data_of(variant)["data"]
    tree = codec.to_tree(value, "S")
    n = 2000 if variant != "1mb" else 10
    t0 = time.perf_counter()
    for _ in range(n):
        if isinstance(value, dict):
            value["counter"] += 1
        else:
            value.counter += 1
        new = json.loads(codec.encode(value, "S"))
        diff(tree, new)
        tree = new
    return (time.perf_counter() - t0) / n


def floor_a(tmp: Path, n: int = 2000) -> float:
    """Seconds per sqlite3 INSERT + COMMIT on this thread (WAL, synchronous=NORMAL)."""
    conn = raw_sqlite(tmp / f"floor-{uuid.uuid4().hex}.db", "NORMAL")
    try:
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", params("w", i))
            conn.commit()
        return (time.perf_counter() - t0) / n
    finally:
        conn.close()


async def patch_sizes(tmp: Path, variant: str) -> tuple[int, int]:
    async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as store:
        wf = workflow(variant, 20).with_checkpoint_store(KeepLog(store)).with_workflow_id("sz")
        await wf.run(Loop.STEP, **data_of(variant))
        rows = await store.load_run("sz")
    sizes = [len(r.data_patch or b"") for r in rows]
    return sizes[0], max(sizes[1:])


async def main(steps: int) -> None:
    variants = ["off", "none", "1kb", "typed", "1mb"]
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        floor = min(floor_a(tmp) for _ in range(ROUNDS))
        runs: dict[tuple[str, str, int], float] = {}
        sizes_n = {v: steps if v != "1mb" else max(40, steps // 5) for v in variants}
        for _ in range(ROUNDS):
            for variant in variants:
                n = sizes_n[variant]
                for where in ("engine", "sqlite"):
                    for k in (n, max(2, n // 10)):
                        got = await timed(variant, k, None if where == "engine" else tmp)
                        key3 = (variant, where, k)
                        runs[key3] = min(runs.get(key3, got), got)
        # marginal: best long run minus best short run, per extra state
        for variant in variants:
            n = sizes_n[variant]
            short = max(2, n // 10)
            for where in ("engine", "sqlite"):
                extra = runs[(variant, where, n)] - runs[(variant, where, short)]
                best[(variant, where)] = max(0.0, extra) / (n - short)
        before = {v: min(before_cost(v) for _ in range(ROUNDS)) for v in variants}
        sizes = {v: await patch_sizes(tmp, v) for v in variants}
    names = {
        "off": "off (no run data)",
        "none": "on, task does not take it",
        "1kb": "on, ~1 KB dict, 1 field/state",
        "typed": "on, ~1 KB attrs, 1 field/st.",
        "1mb": "on, 1 MB dict, 1 field/state",
    }
    print(f"floor (a), sqlite3 INSERT + COMMIT on this thread: {floor * 1e6:.1f} us")
    print(
        f"{'variant':30} {'engine only':>12} {'vs off':>8} {'before':>11} "
        f"{'SQLite store':>13}  row bytes (first / later)"
    )
    off = best[("off", "engine")]
    for v in variants:
        first, later = sizes[v]
        eng = best[(v, "engine")]
        print(
            f"{names[v]:30} {eng * 1e6:9.1f} us {(eng - off) * 1e6:+7.1f} "
            f"{before[v] * 1e6:8.1f} us {best[(v, 'sqlite')] * 1e6:10.1f} us  {first} / {later}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    args = parser.parse_args()
    for backend in ["asyncio", "trio"] if args.backend == "both" else [args.backend]:
        print(f"[{backend}]")
        anyio.run(main, args.steps, backend=backend)
