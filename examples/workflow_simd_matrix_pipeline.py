"""A four-stage matrix pipeline, vectorised with numpy when it is installed.

    python examples/workflow_simd_matrix_pipeline.py           # numpy if available
    python examples/workflow_simd_matrix_pipeline.py --pure    # pure Python

Counterpart of cano's ``workflow_simd_matrix_pipeline`` example. cano's version is
about explicit SIMD (``f32x8`` lanes from the ``wide`` crate), which Python does not
expose; the nearest honest equivalent is handing whole arrays to numpy, whose
compiled loops use the CPU's vector units. numpy is not a dependency of cano_dsl: it
is imported only when present, and without it (or with ``--pure``) the same pipeline
runs on plain lists.

GENERATE makes 20 seeded 64x64 matrices; MULTIPLY multiplies consecutive pairs
(10 products); TRANSFORM scales each product by 1.5 and sums them into one matrix;
STATISTICS computes the sum, mean and variance of every matrix it receives. The heavy
stages run in a worker thread (``anyio.to_thread.run_sync``), so the event loop stays
free while they compute. Before the run, one 16x16 product is computed both ways and
the results compared.
"""

from __future__ import annotations

import argparse
import enum
import random
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, task

Matrix = Any  # a numpy array, or a list of rows of floats


class Stage(enum.Enum):
    GENERATE = enum.auto()
    MULTIPLY = enum.auto()
    TRANSFORM = enum.auto()
    STATISTICS = enum.auto()
    COMPLETE = enum.auto()


def load_numpy(pure: bool) -> Any:
    """The numpy module, or None when it is absent or not wanted."""
    if pure:
        return None
    try:
        import numpy
    except ImportError:
        print("numpy is not installed: running the pure-Python version")
        return None
    return numpy


class Kernels:
    """The four operations, on numpy arrays or on lists of rows."""

    def __init__(self, np: Any) -> None:
        self.np = np
        self.name = f"numpy {np.__version__}" if np is not None else "pure Python"

    def random(self, rng: random.Random, n: int) -> Matrix:
        rows = [[rng.random() * 10 for _ in range(n)] for _ in range(n)]
        return self.np.asarray(rows, dtype=self.np.float32) if self.np is not None else rows

    def matmul(self, a: Matrix, b: Matrix) -> Matrix:
        if self.np is not None:
            return a @ b
        columns = list(zip(*b, strict=True))
        return [[sum(x * y for x, y in zip(row, col, strict=True)) for col in columns] for row in a]

    def scale_add(self, acc: Matrix | None, m: Matrix, factor: float) -> Matrix:
        if self.np is not None:
            scaled = m * self.np.float32(factor)
            return scaled if acc is None else acc + scaled
        if acc is None:
            return [[x * factor for x in row] for row in m]
        return [
            [a + x * factor for a, x in zip(ra, rm, strict=True)]
            for ra, rm in zip(acc, m, strict=True)
        ]

    def stats(self, m: Matrix) -> tuple[float, float, float]:
        if self.np is not None:
            data = m.astype(self.np.float64)
            return float(data.sum()), float(data.mean()), float(data.var())
        flat = [x for row in m for x in row]
        total = sum(flat)
        mean = total / len(flat)
        return total, mean, sum((x - mean) ** 2 for x in flat) / len(flat)


async def timed(label: str, work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = await anyio.to_thread.run_sync(work)
    print(f"  {label} in {(time.perf_counter() - started) * 1000:.1f} ms")
    return result


@task(state=Stage, config=TaskConfig.minimal())
class Generate:
    def __init__(self, size: int, count: int, seed: int) -> None:
        self.size, self.count, self.seed = size, count, seed

    async def run(self, res: Resources) -> Stage:
        k = res.get("kernels", Kernels)
        rng = random.Random(self.seed)
        matrices = await timed(
            f"GENERATE {self.count} matrices of {self.size}x{self.size}",
            lambda: [k.random(rng, self.size) for _ in range(self.count)],
        )
        res.get("store", MemoryStore).put("matrices", matrices)
        return Stage.MULTIPLY


@task(state=Stage, config=TaskConfig.minimal())
class Multiply:
    async def run(self, res: Resources) -> Stage:
        k = res.get("kernels", Kernels)
        store = res.get("store", MemoryStore)
        ms: list[Matrix] = store.get("matrices", list)
        products = await timed(
            f"MULTIPLY {len(ms) // 2} pairs",
            lambda: [k.matmul(ms[i], ms[i + 1]) for i in range(0, len(ms) - 1, 2)],
        )
        store.put("products", products)
        return Stage.TRANSFORM


@task(state=Stage, config=TaskConfig.minimal())
class Transform:
    def __init__(self, factor: float) -> None:
        self.factor = factor

    async def run(self, res: Resources) -> Stage:
        k = res.get("kernels", Kernels)
        store = res.get("store", MemoryStore)
        products = store.get("products", list)

        def combine() -> list[Matrix]:
            acc = None
            for m in products:
                acc = k.scale_add(acc, m, self.factor)
            return [acc]

        combined = await timed(
            f"TRANSFORM {len(products)} products (x{self.factor}, summed)", combine
        )
        store.put("transformed", combined)
        return Stage.STATISTICS


@task(state=Stage, config=TaskConfig.minimal())
class Statistics:
    async def run(self, res: Resources) -> Stage:
        k = res.get("kernels", Kernels)
        store = res.get("store", MemoryStore)
        ms = store.get("transformed", list)
        stats = await timed(f"STATISTICS over {len(ms)} matrix", lambda: [k.stats(m) for m in ms])
        store.put("statistics", stats)
        for i, (total, mean, var) in enumerate(stats, 1):
            print(f"  matrix {i}: sum={total:.2f} mean={mean:.2f} variance={var:.2f}")
        return Stage.COMPLETE


def compare(np: Any) -> None:
    """One 16x16 product both ways: the largest difference and the two timings."""
    rng = random.Random(1)
    pure = Kernels(None)
    a, b = pure.random(rng, 16), pure.random(rng, 16)
    started = time.perf_counter()
    slow = pure.matmul(a, b)
    pure_ms = (time.perf_counter() - started) * 1000
    if np is None:
        print(f"16x16 product in pure Python: {pure_ms:.2f} ms (no numpy to compare with)\n")
        return
    fast_kernels = Kernels(np)
    fa, fb = (np.asarray(m, dtype=np.float32) for m in (a, b))
    started = time.perf_counter()
    fast = fast_kernels.matmul(fa, fb)
    np_ms = (time.perf_counter() - started) * 1000
    diff = float(np.abs(np.asarray(slow) - fast).max())
    print(f"16x16 product: pure Python {pure_ms:.2f} ms, numpy {np_ms:.3f} ms")
    print(f"  largest difference between the two: {diff:.2e} (float32 rounding)\n")


async def main(pure: bool, size: int) -> None:
    np = load_numpy(pure)
    kernels = Kernels(np)
    compare(np)
    store = MemoryStore()
    wf = (
        Workflow(Resources().insert("store", store).insert("kernels", kernels))
        .register(Stage.GENERATE, Generate(size, 20, seed=42))
        .register(Stage.MULTIPLY, Multiply())
        .register(Stage.TRANSFORM, Transform(1.5))
        .register(Stage.STATISTICS, Statistics())
        .add_exit_state(Stage.COMPLETE)
    )
    print(f"pipeline on {kernels.name}:")
    started = time.perf_counter()
    final = await wf.orchestrate(Stage.GENERATE)
    print(f"\n{final.name} in {(time.perf_counter() - started) * 1000:.0f} ms")
    print(
        f"products: {len(store.get('products', list))}, summaries: {len(store.get('statistics', list))}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pure", action="store_true", help="do not use numpy")
    parser.add_argument("--size", type=int, default=64, help="matrix size (default 64)")
    args = parser.parse_args()
    anyio.run(main, args.pure, args.size)
