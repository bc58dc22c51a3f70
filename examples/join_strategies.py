"""The same four staggered branches under different join strategies.

    python examples/join_strategies.py

Branches finish after 10, 20, 40 and 80 ms; the 20 ms one fails. `Any` and
`PartialResults(2)` leave as soon as they are satisfied and cancel the rest;
`Quorum(2)`, `Percentage(0.5)` and `All` always wait for every branch (even when
the answer is already known), and `All` fails because one branch failed.
"""

from __future__ import annotations

import enum
import time

import anyio

from cano_dsl import JoinConfig, JoinStrategy, StateFailure, TaskConfig, Workflow, task


class Step(enum.Enum):
    FAN_OUT = enum.auto()
    JOINED = enum.auto()


@task
class Replica:
    def __init__(self, idx: int, delay: float, fails: bool, log: list[str]) -> None:
        self.idx, self.delay, self.fails, self.log = idx, delay, fails, log

    def name(self) -> str:
        return "replica"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        try:
            await anyio.sleep(self.delay)
        except anyio.get_cancelled_exc_class():
            self.log.append(f"#{self.idx} cancelled")
            raise
        if self.fails:
            self.log.append(f"#{self.idx} failed")
            raise ConnectionError(f"replica {self.idx} unreachable")
        self.log.append(f"#{self.idx} ok")
        return Step.JOINED


async def run(strategy: JoinStrategy) -> None:
    log: list[str] = []
    branches = [Replica(i, delay, i == 1, log) for i, delay in enumerate((0.01, 0.02, 0.04, 0.08))]
    wf = (
        Workflow.bare()
        .register_split(Step.FAN_OUT, branches, JoinConfig(strategy, Step.JOINED))
        .add_exit_state(Step.JOINED)
    )
    start = time.perf_counter()
    try:
        outcome = (await wf.orchestrate(Step.FAN_OUT)).name
    except StateFailure as exc:
        outcome = f"failed: {exc.error}"
    took = (time.perf_counter() - start) * 1000
    print(f"{strategy!r:<18} {took:5.0f} ms  {', '.join(log)}")
    print(f"{'':<18}           -> {outcome}")


async def main() -> None:
    for strategy in (
        JoinStrategy.any(),
        JoinStrategy.partial_results(2),
        JoinStrategy.quorum(2),
        JoinStrategy.percentage(0.5),
        JoinStrategy.all(),
    ):
        await run(strategy)


if __name__ == "__main__":
    anyio.run(main)
