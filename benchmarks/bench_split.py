"""Split/join fan-out cost: an ``All`` split of N no-op branches against the floor
of a raw anyio task group spawning N no-op tasks and waiting for them, on asyncio
and on trio.

    python benchmarks/bench_split.py            # both backends, N = 10 / 100 / 1,000
    python benchmarks/bench_split.py --quick    # fewer repeats

The split side is a whole ``orchestrate`` of a two-state workflow (split state →
exit state, default TaskConfig, no observers), so at small N it also carries the
per-run cost (validation cache, resource setup/teardown, one loop iteration). Split
and floor are timed alternately in one event loop (best of several rounds) so load
drift hits both alike. The ratio printed is split time / floor time (lower is better).
"""

from __future__ import annotations

import argparse
import enum
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version

import anyio

from cano_dsl import JoinConfig, JoinStrategy, Workflow, task

SIZES = (10, 100, 1_000)


class Step(enum.Enum):
    SPLIT = enum.auto()
    JOIN = enum.auto()


@task
async def noop() -> Step:
    return Step.JOIN


def split_workflow(n: int) -> Workflow[Step]:
    return (
        Workflow.bare()
        .register_split(Step.SPLIT, [noop] * n, JoinConfig(JoinStrategy.all(), Step.JOIN))
        .add_exit_state(Step.JOIN)
    )


async def _noop() -> None:
    return None


async def floor_once(n: int) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(_noop)


def timed_pair(
    split: Callable[[], Awaitable[object]],
    floor: Callable[[], Awaitable[object]],
    repeats: int,
    rounds: int,
    backend: str,
) -> tuple[float, float]:
    """Best-of-``rounds`` seconds per call of ``split`` and of ``floor``."""

    async def run() -> tuple[float, float]:
        best = [float("inf"), float("inf")]
        await split()  # warm-up
        await floor()
        for _ in range(rounds):
            for k, fn in enumerate((split, floor)):
                gc.collect()
                start = time.perf_counter()
                for _ in range(repeats):
                    await fn()
                best[k] = min(best[k], (time.perf_counter() - start) / repeats)
        return best[0], best[1]

    return anyio.run(run, backend=backend)


def bench(backend: str, quick: bool) -> list[tuple[int, float, float]]:
    rows = []
    for n in SIZES:
        repeats = max(3, 20_000 // n // (4 if quick else 1))
        rounds = 3 if quick else 7
        wf = split_workflow(n)
        split_t, floor_t = timed_pair(
            lambda wf=wf: wf.orchestrate(Step.SPLIT),
            lambda n=n: floor_once(n),
            repeats,
            rounds,
            backend,
        )
        rows.append((n, split_t, floor_t))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="Split/join fan-out benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--backend", choices=["asyncio", "trio"], action="append")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, anyio {version('anyio')}, trio {version('trio')}")
    print(f"{'backend':<8} {'N':>6} {'split':>12} {'floor':>12} {'ratio':>7} {'per branch':>11}")
    for backend in args.backend or ["asyncio", "trio"]:
        for n, split_t, floor_t in bench(backend, args.quick):
            print(
                f"{backend:<8} {n:>6} {split_t * 1e6:>10.1f}us {floor_t * 1e6:>10.1f}us "
                f"{split_t / floor_t:>6.2f}x {split_t / n * 1e6:>9.2f}us"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
