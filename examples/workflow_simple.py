"""Two tasks, a config resource, and dependency structs filled from `Resources`.

    python examples/workflow_simple.py [--seed N]

Port of cano's ``workflow_simple`` example. ``@resource`` marks a plain settings class
as a resource (no lifecycle hooks needed); ``@from_resources`` gives an attrs class a
``from_resources(res)`` constructor that looks up each ``Annotated[T, Res(key)]``
field, type-checked. GENERATE draws between ``min_size`` and ``max_size`` numbers and
keeps the even ones; COUNT counts them and removes the intermediate list from the
store, so only the result is left.
"""

from __future__ import annotations

import argparse
import enum
import random
from typing import Annotated

import anyio
import attrs

from cano_dsl import (
    FromResources,
    MemoryStore,
    Res,
    Resources,
    Workflow,
    from_resources,
    resource,
    task,
)


class Action(enum.Enum):
    GENERATE = enum.auto()
    COUNT = enum.auto()
    COMPLETE = enum.auto()
    ERROR = enum.auto()


@resource
@attrs.frozen
class GeneratorConfig:
    min_size: int
    max_size: int
    seed: int


@from_resources
@attrs.frozen
class GeneratorDeps(FromResources):
    config: Annotated[GeneratorConfig, Res("config")]
    store: Annotated[MemoryStore, Res("store")]


@from_resources
@attrs.frozen
class StoreDeps(FromResources):
    store: Annotated[MemoryStore, Res("store")]


@task(state=Action)
class Generate:
    async def run(self, res: Resources) -> Action:
        deps = GeneratorDeps.from_resources(res)
        rng = random.Random(deps.config.seed)
        size = rng.randint(deps.config.min_size, deps.config.max_size)
        numbers = [rng.randint(1, 1000) for _ in range(size)]
        evens = [n for n in numbers if n % 2 == 0]
        print(f"generate: {size} numbers, first ten {numbers[:10]}")
        print(f"generate: {len(evens)} of them are even")
        deps.store.put("filtered", evens)
        return Action.COUNT


@task(state=Action)
class Count:
    async def run(self, res: Resources) -> Action:
        store = StoreDeps.from_resources(res).store
        evens = store.get("filtered", list)
        store.put("count", len(evens))
        store.remove("filtered")
        print(f"count: {len(evens)} stored, intermediate list removed")
        return Action.COMPLETE


async def main(seed: int) -> None:
    store = MemoryStore()
    res = (
        Resources()
        .insert("config", GeneratorConfig(min_size=25, max_size=150, seed=seed))
        .insert("store", store)
    )
    wf = (
        Workflow(res)
        .register(Action.GENERATE, Generate())
        .register(Action.COUNT, Count())
        .add_exit_states([Action.COMPLETE, Action.ERROR])
    )
    final = await wf.orchestrate(Action.GENERATE)
    print(f"\nfinal state: {final.name}")
    print(f"even numbers found: {store.get('count', int)}")
    print(f"keys left in the store: {sorted(store.keys(), key=str)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    anyio.run(main, parser.parse_args().seed)
