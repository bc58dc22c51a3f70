"""A 10,000-item stream in count windows of 100, against a plain ``async for`` floor,
on asyncio and trio, in one process.

    python benchmarks/bench_stream.py            # 15 repeats per figure
    python benchmarks/bench_stream.py --quick    # 3 repeats

The floor is the least code doing the same job: ``async for`` over the same async
generator, awaiting ``process_item`` per item, appending to a buffer and awaiting
``flush_window`` every 100 items. cano_dsl runs the same task object three ways:

- ``register_stream`` (the engine path, no store, no token, no total timeout);
- ``register_stream`` with a CancellationToken attached (the cooperative-drain path:
  every wait for an item is interruptible);
- ``register`` (the in-memory companion task).

Each figure is the best wall time of several repeats (time.perf_counter); the ratio is
cano_dsl / floor (lower is better). Target: at most 2x the floor on the engine path.
"""

from __future__ import annotations

import argparse
import enum
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from cano_dsl import (
    CancellationToken,
    CloseReason,
    Resources,
    StreamTask,
    StreamWindow,
    WindowSignal,
    Workflow,
)

N = 10_000
WINDOW = 100


class Step(enum.Enum):
    CONSUME = enum.auto()
    DONE = enum.auto()


class Sum(StreamTask[Step, int, int, int]):
    window = StreamWindow.count(WINDOW)

    def __init__(self) -> None:
        self.total = 0

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
        for i in range(N):
            yield i

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        return item * 2, item

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
        self.total += sum(outputs)
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        return Step.DONE


EXPECTED = sum(2 * i for i in range(N))


async def floor() -> None:
    task = Sum()
    res = Resources()
    buf: list[int] = []
    async for item in task.open(res, None):
        out, _cursor = await task.process_item(res, item)
        buf.append(out)
        if len(buf) >= WINDOW:
            await task.flush_window(res, buf)
            buf = []
    if buf:
        await task.flush_window(res, buf)
    await task.on_close(res, CloseReason.EXHAUSTED)
    assert task.total == EXPECTED


def engine(with_token: bool) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        task = Sum()
        wf = Workflow().register_stream(Step.CONSUME, task).add_exit_state(Step.DONE)
        token = CancellationToken() if with_token else None
        assert await wf.orchestrate(Step.CONSUME, cancel=token) == Step.DONE
        assert task.total == EXPECTED

    return run


async def in_memory() -> None:
    task = Sum()
    wf = Workflow().register(Step.CONSUME, task).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CONSUME) == Step.DONE
    assert task.total == EXPECTED


CASES: dict[str, Callable[[], Awaitable[None]]] = {
    "floor: async for": floor,
    "register_stream": engine(False),
    "register_stream + token": engine(True),
    "register (in-memory)": in_memory,
}


def measure(backend: str, repeats: int) -> dict[str, float]:
    async def main() -> dict[str, float]:
        best = {name: float("inf") for name in CASES}
        for _ in range(repeats):  # interleave the cases so drift hits them all alike
            for name, fn in CASES.items():
                gc.collect()
                start = time.perf_counter()
                await fn()
                best[name] = min(best[name], time.perf_counter() - start)
        return best

    result: dict[str, float] = anyio.run(main, backend=backend)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 15")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15
    print(f"{N:,} items, count windows of {WINDOW}, best of {repeats}")
    for backend in ("asyncio", "trio"):
        best = measure(backend, repeats)
        base = best["floor: async for"]
        print(f"\n{backend}")
        for name, seconds in best.items():
            per_item = seconds / N * 1e9
            print(
                f"  {name:<26} {seconds * 1e3:8.2f} ms  {per_item:7.0f} ns/item  "
                f"{seconds / base:5.2f}x floor"
            )
        ratio = best["register_stream"] / base
        print(f"  target register_stream <= 2x floor: {'met' if ratio <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
