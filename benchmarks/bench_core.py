"""Core engine benchmarks: per-step cost and batch fan-out, as ratios to floors
measured in the same process, on asyncio and on trio.

    python benchmarks/bench_core.py            # both backends
    python benchmarks/bench_core.py --quick    # fewer repeats

1. A 1,000-state linear workflow (default TaskConfig, no observers) against the floor
   ``state = await handlers[state](ctx)`` over a dict of async functions.
   Target: at most 5x the floor.
2. ``@batch`` over 10,000 trivial items at concurrency 64 against a raw anyio worker
   pool (64 workers pulling indices). Target: at least 0.5x the floor's throughput.
"""

from __future__ import annotations

import argparse
import enum
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from cano_dsl import Resources, Workflow, batch, task

N_STATES = 1_000
N_ITEMS = 10_000
CONCURRENCY = 64

Linear = enum.Enum("Linear", [f"S{i}" for i in range(N_STATES)] + ["DONE"])  # type: ignore[misc]
MEMBERS = list(Linear)


def _make_handlers() -> dict[Any, Callable[[Any], Awaitable[Any]]]:
    handlers: dict[Any, Callable[[Any], Awaitable[Any]]] = {}
    for i in range(N_STATES):
        nxt = MEMBERS[i + 1]

        async def handler(ctx: Any, _nxt: Any = nxt) -> Any:
            return _nxt

        handlers[MEMBERS[i]] = handler
    return handlers


def _make_workflow() -> Workflow[Any]:
    wf: Workflow[Any] = Workflow(Resources())
    for i in range(N_STATES):
        nxt = MEMBERS[i + 1]

        async def step(res: Resources, _nxt: Any = nxt) -> Any:
            return _nxt

        wf = wf.register(MEMBERS[i], task(step))
    return wf.add_exit_state(Linear.DONE)


async def _floor_linear(handlers: dict[Any, Callable[[Any], Awaitable[Any]]]) -> None:
    state = MEMBERS[0]
    ctx = object()
    done = Linear.DONE
    while state is not done:
        state = await handlers[state](ctx)


async def _time(fn: Callable[[], Awaitable[Any]], repeats: int) -> float:
    """Best (minimum) wall time of ``repeats`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        await fn()
        best = min(best, time.perf_counter() - t0)
    return best


@batch
class TrivialBatch:
    concurrency = CONCURRENCY

    async def load(self, res: Resources) -> list[int]:
        return list(range(N_ITEMS))

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Any:
        assert len(outputs) == N_ITEMS
        return Linear.DONE


async def _floor_pool() -> None:
    items = list(range(N_ITEMS))
    results: list[Any] = [None] * N_ITEMS
    nxt = 0

    async def process(item: int) -> int:
        return item

    async def worker() -> None:
        nonlocal nxt
        while nxt < N_ITEMS:
            i = nxt
            nxt += 1
            results[i] = await process(items[i])

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(worker)


async def bench(repeats: int) -> dict[str, float]:
    handlers = _make_handlers()
    wf = _make_workflow()
    res = Resources()
    bwf = Workflow(res).register(Linear.S0, TrivialBatch()).add_exit_state(Linear.DONE)
    # warm up
    await _floor_linear(handlers)
    await wf.orchestrate(Linear.S0)
    floor_lin = await _time(lambda: _floor_linear(handlers), repeats)
    ours_lin = await _time(lambda: wf.orchestrate(Linear.S0), repeats)
    floor_pool = await _time(_floor_pool, repeats)
    ours_batch = await _time(lambda: bwf.orchestrate(Linear.S0), repeats)
    return {
        "floor_step_us": floor_lin / N_STATES * 1e6,
        "ours_step_us": ours_lin / N_STATES * 1e6,
        "step_ratio": ours_lin / floor_lin,
        "floor_item_us": floor_pool / N_ITEMS * 1e6,
        "ours_item_us": ours_batch / N_ITEMS * 1e6,
        "batch_throughput_ratio": floor_pool / ours_batch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    args = parser.parse_args()
    repeats = 5 if args.quick else 25
    backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
    ok = True
    for backend in backends:
        r = anyio.run(bench, repeats, backend=backend)
        print(f"[{backend}]")
        print(
            f"  linear 1,000 states: floor {r['floor_step_us']:.3f} us/step, "
            f"cano_dsl {r['ours_step_us']:.3f} us/step -> {r['step_ratio']:.2f}x the floor "
            f"(target <= 5x)"
        )
        print(
            f"  @batch 10,000 items @64: floor {r['floor_item_us']:.3f} us/item, "
            f"cano_dsl {r['ours_item_us']:.3f} us/item -> {r['batch_throughput_ratio']:.2f}x "
            f"the floor's throughput (target >= 0.5x)"
        )
        ok = ok and r["step_ratio"] <= 5 and r["batch_throughput_ratio"] >= 0.5
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
