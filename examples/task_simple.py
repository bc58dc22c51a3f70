"""The smallest useful workflow: two `@task` classes handing data over a `MemoryStore`.

    python examples/task_simple.py [--seed N]

Port of cano's ``task_simple`` example. GENERATE draws ten numbers between 1 and 100,
keeps the even ones and puts them in the shared store; COUNT reads them back, counts
and sums them. Each task is a class with one async ``run(res)`` method that returns
the next state; the workflow ends when it reaches the exit state COMPLETE.
"""

from __future__ import annotations

import argparse
import enum
import random

import anyio

from cano_dsl import MemoryStore, Resources, Workflow, task


class Action(enum.Enum):
    GENERATE = enum.auto()
    COUNT = enum.auto()
    COMPLETE = enum.auto()


@task(state=Action)
class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def run(self, res: Resources) -> Action:
        store = res.get("store", MemoryStore)
        drawn = [self.rng.randint(1, 100) for _ in range(10)]
        evens = [n for n in drawn if n % 2 == 0]
        print(f"GENERATE drew {drawn}")
        print(f"GENERATE kept the even ones: {evens}")
        store.put("evens", evens)
        return Action.COUNT


@task(state=Action)
class Counter:
    async def run(self, res: Resources) -> Action:
        store = res.get("store", MemoryStore)
        evens = store.get("evens", list)
        store.put("count", len(evens))
        store.put("sum", sum(evens))
        print(f"COUNT found {len(evens)} even numbers")
        return Action.COMPLETE


async def main(seed: int) -> None:
    store = MemoryStore()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Action.GENERATE, Generator(random.Random(seed)))
        .register(Action.COUNT, Counter())
        .add_exit_state(Action.COMPLETE)
    )
    final = await wf.orchestrate(Action.GENERATE)
    print(f"\nworkflow ended in {final.name}")
    print(f"  even numbers: {store.get('evens')}")
    print(f"  count: {store.get('count', int)}")
    print(f"  sum: {store.get('sum', int)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    anyio.run(main, parser.parse_args().seed)
