"""A bulkhead caps how many split branches run at once.

    python examples/split_bulkhead.py

Eight branches of 20 ms each behind `with_bulkhead(2)` run in four waves of two; a
probe records how many are in flight and the peak never exceeds two.
"""

from __future__ import annotations

import enum
import time

import anyio

from cano_dsl import JoinConfig, JoinStrategy, TaskConfig, Workflow, task


class Step(enum.Enum):
    CALL_API = enum.auto()
    DONE = enum.auto()


class Gauge:
    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.started = time.perf_counter()

    def stamp(self) -> str:
        return f"{(time.perf_counter() - self.started) * 1000:4.0f} ms"


@task
class ApiCall:
    def __init__(self, idx: int, gauge: Gauge) -> None:
        self.idx, self.gauge = idx, gauge

    def name(self) -> str:
        return "api-call"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        g = self.gauge
        g.live += 1
        g.peak = max(g.peak, g.live)
        print(f"{g.stamp()}  call {self.idx} starts ({g.live} in flight)")
        await anyio.sleep(0.02)
        g.live -= 1
        return Step.DONE


async def main() -> None:
    gauge = Gauge()
    cfg = JoinConfig(JoinStrategy.all(), Step.DONE).with_bulkhead(2)
    wf = (
        Workflow.bare()
        .register_split(Step.CALL_API, [ApiCall(i, gauge) for i in range(8)], cfg)
        .add_exit_state(Step.DONE)
    )
    final = await wf.orchestrate(Step.CALL_API)
    print(f"{gauge.stamp()}  -> {final.name}; peak concurrency {gauge.peak} (bulkhead 2)")
    assert gauge.peak <= 2


if __name__ == "__main__":
    anyio.run(main)
