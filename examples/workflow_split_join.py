"""Split/join with shared data: branches write to a MemoryStore, the join state reads.

    python examples/workflow_split_join.py

A loader puts a list of numbers in the store; four analyses run in parallel under
different strategies and each writes its own key; an aggregate state combines them.
A last run shows a split timeout: a branch that hangs makes `All` fail with
"Split task timeout exceeded".
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import anyio

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)


class Step(enum.Enum):
    LOAD = enum.auto()
    ANALYSE = enum.auto()
    AGGREGATE = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal())
async def load(res: Resources) -> Step:
    res.get("store", MemoryStore).put("numbers", list(range(1, 101)))
    return Step.ANALYSE


@task
class Analysis:
    """One statistic over the numbers, stored under its own key."""

    def __init__(self, key: str, delay: float = 0.0) -> None:
        self.key, self.delay = key, delay

    def name(self) -> str:
        return f"analysis:{self.key}"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Step:
        store = res.get("store", MemoryStore)
        nums: list[int] = store.get("numbers")
        await anyio.sleep(self.delay)
        stats: dict[str, Callable[[], float]] = {
            "sum": lambda: sum(nums),
            "mean": lambda: sum(nums) / len(nums),
            "evens": lambda: sum(1 for n in nums if n % 2 == 0),
            "max": lambda: max(nums),
        }
        value = stats[self.key]()
        store.put(self.key, value)
        return Step.AGGREGATE  # ignored: a split always goes to its join state


@task(config=TaskConfig.minimal())
async def aggregate(res: Resources) -> Step:
    store = res.get("store", MemoryStore)
    done = {k: store.get(k) for k in ("sum", "mean", "evens", "max") if k in store}
    print(f"  aggregate sees {done}")
    return Step.DONE


def workflow(store: MemoryStore, cfg: JoinConfig[Step], analyses: list[Analysis]) -> Workflow[Step]:
    return (
        Workflow(Resources().insert("store", store))
        .register(Step.LOAD, load)
        .register_split(Step.ANALYSE, analyses, cfg)
        .register(Step.AGGREGATE, aggregate)
        .add_exit_state(Step.DONE)
    )


def analyses(slow: float = 0.0) -> list[Analysis]:
    return [
        Analysis("sum"),
        Analysis("mean", 0.005),
        Analysis("evens", 0.01),
        Analysis("max", slow),
    ]


async def main() -> None:
    for strategy in (
        JoinStrategy.all(),
        JoinStrategy.any(),
        JoinStrategy.quorum(3),
        JoinStrategy.percentage(0.75),
    ):
        print(f"{strategy!r}:")
        store = MemoryStore()
        final = await workflow(store, JoinConfig(strategy, Step.AGGREGATE), analyses()).orchestrate(
            Step.LOAD
        )
        print(f"  -> {final.name}")

    print("All with a 50 ms split timeout and a branch that takes 10 s:")
    cfg = JoinConfig(JoinStrategy.all(), Step.AGGREGATE).with_timeout(0.05)
    try:
        await workflow(MemoryStore(), cfg, analyses(slow=10)).orchestrate(Step.LOAD)
    except StateFailure as exc:
        print(f"  -> failed in {exc.state.name}: {exc.error}")


if __name__ == "__main__":
    anyio.run(main)
