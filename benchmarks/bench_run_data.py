"""Per-state cost of run data (docs/run-data.md).

    python benchmarks/bench_run_data.py [--steps N] [--backend asyncio|trio|both]

One state re-enters itself N times; each visit changes one small field of the run data.
Four variants, each without a store (the engine's own share) and with a
`SqliteCheckpointStore` (a row per state):

  off        no run data; the task takes no data parameter (the inline fast path)
  on, none   1 KB of run data declared, the task does not take it (rows carry nothing)
  on, 1 KB   the task takes ~1 KB of run data and changes one field per state
  on, 1 MB   the task takes 1 MB of run data and changes one field per state

Also printed: the bytes of run data a row carries after the first one (the patch), which
must stay small even for the 1 MB value. Figures are the best of 3 interleaved rounds,
wall time per state in microseconds.
"""

from __future__ import annotations

import argparse
import enum
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cano_dsl import Resources, TaskConfig, Workflow, task
from cano_dsl.stores import SqliteCheckpointStore

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

    wf = Workflow.bare()
    if variant != "off":
        wf = wf.with_run_data(dict)
    step = with_data if variant in ("1kb", "1mb") else plain
    return wf.register(Loop.STEP, step).add_exit_state(Loop.DONE)


DATA = {"off": None, "none": 1_000, "1kb": 1_000, "1mb": 1_000_000}


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
    size = DATA[variant]
    kwargs = {} if size is None else {"data": value_of(size)}
    t0 = time.perf_counter()
    result = await wf.run(Loop.STEP, **kwargs)
    dt = time.perf_counter() - t0
    assert result.state is Loop.DONE
    return dt / steps


async def patch_sizes(tmp: Path, variant: str) -> tuple[int, int]:
    async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as store:
        wf = workflow(variant, 20).with_checkpoint_store(KeepLog(store)).with_workflow_id("sz")
        size = DATA[variant]
        await wf.run(Loop.STEP, **({} if size is None else {"data": value_of(size)}))
        rows = await store.load_run("sz")
    sizes = [len(r.data_patch or b"") for r in rows]
    return sizes[0], max(sizes[1:])


async def main(steps: int) -> None:
    variants = ["off", "none", "1kb", "1mb"]
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for _ in range(ROUNDS):
            for variant in variants:
                n = steps if variant != "1mb" else max(20, steps // 20)
                for where in ("engine", "sqlite"):
                    if where == "engine":
                        got = await per_step(variant, n, None)
                    else:
                        async with SqliteCheckpointStore(tmp / f"{uuid.uuid4().hex}.db") as s:
                            got = await per_step(variant, n, s)
                    key = (variant, where)
                    best[key] = min(best.get(key, got), got)
        sizes = {v: await patch_sizes(tmp, v) for v in variants}
    names = {
        "off": "off (no run data)",
        "none": "on, task does not take it",
        "1kb": "on, ~1 KB, one field/state",
        "1mb": "on, 1 MB, one field/state",
    }
    print(f"{'variant':30} {'engine only':>14} {'SQLite store':>14}  row bytes (first / later)")
    for v in variants:
        first, later = sizes[v]
        print(
            f"{names[v]:30} {best[(v, 'engine')] * 1e6:11.1f} us {best[(v, 'sqlite')] * 1e6:11.1f} us"
            f"  {first} / {later}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="asyncio")
    args = parser.parse_args()
    for backend in ["asyncio", "trio"] if args.backend == "both" else [args.backend]:
        print(f"[{backend}]")
        anyio.run(main, args.steps, backend=backend)
