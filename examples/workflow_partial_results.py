"""PartialResults: continue as soon as enough branches succeeded.

    python examples/workflow_partial_results.py

Six price quotes are requested from suppliers of varied latency; two of them fail.
`PartialResults(3)` continues after the third *success* (failures do not count) and
cancels the slower suppliers; the join state picks the best quote received. Asking
for 5 successes when only 4 suppliers can answer fails with the partial-results
error, which lists the branch errors.
"""

from __future__ import annotations

import enum

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
    QUOTE = enum.auto()
    CHOOSE = enum.auto()
    DONE = enum.auto()


SUPPLIERS = [
    # name, latency (s), price or None for a failure
    ("acme", 0.030, 12.5),
    ("globex", 0.005, None),
    ("initech", 0.010, 11.0),
    ("umbrella", 0.050, 9.5),
    ("hooli", 0.015, None),
    ("stark", 0.020, 13.0),
]


@task
class Quote:
    def __init__(self, supplier: str, latency: float, price: float | None) -> None:
        self.supplier, self.latency, self.price = supplier, latency, price

    def name(self) -> str:
        return f"quote:{self.supplier}"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Step:
        try:
            await anyio.sleep(self.latency)
        except anyio.get_cancelled_exc_class():
            print(f"  {self.supplier:<9} cancelled (enough quotes already)")
            raise
        if self.price is None:
            print(f"  {self.supplier:<9} failed")
            raise TimeoutError(f"{self.supplier} did not answer")
        print(f"  {self.supplier:<9} quoted {self.price}")
        res.get("store", MemoryStore).append("quotes", (self.price, self.supplier))
        return Step.CHOOSE


@task(config=TaskConfig.minimal())
async def choose(res: Resources) -> Step:
    quotes = res.get("store", MemoryStore).get("quotes")
    price, supplier = min(quotes)
    print(f"  best of {len(quotes)} quote(s): {supplier} at {price}")
    return Step.DONE


def workflow(minimum: int) -> Workflow[Step]:
    return (
        Workflow(Resources().insert("store", MemoryStore()))
        .register_split(
            Step.QUOTE,
            [Quote(*s) for s in SUPPLIERS],
            JoinConfig(JoinStrategy.partial_results(minimum), Step.CHOOSE),
        )
        .register(Step.CHOOSE, choose)
        .add_exit_state(Step.DONE)
    )


async def main() -> None:
    print("PartialResults(3):")
    print(f"  -> {(await workflow(3).orchestrate(Step.QUOTE)).name}")
    print("PartialResults(5):")
    try:
        await workflow(5).orchestrate(Step.QUOTE)
    except StateFailure as exc:
        print(f"  -> {exc.error}")


if __name__ == "__main__":
    anyio.run(main)
