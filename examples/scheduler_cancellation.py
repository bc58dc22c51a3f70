"""Cancelling a scheduled run: `cancel_flow` rolls its saga back.

Run with: python examples/scheduler_cancellation.py

An order saga reserves stock and charges a card (both compensatable), then waits on a
slow shipping step. Half-way through shipping the operator calls
``running.cancel_flow("order")``: the run's cancellation token fires, the engine drains
the saga in reverse (refund, then release), and the flow returns to Idle. A cancelled
run is not a failure: the failure streak stays at 0 and it can be triggered again.
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import FlowStatus, Resources, Scheduler, TaskConfig, Workflow, compensatable, task


class Step(enum.Enum):
    RESERVE = enum.auto()
    CHARGE = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


LOG: list[str] = []


@compensatable(state=Step)
class Reserve:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> tuple[Step, dict[str, Any]]:
        LOG.append("reserved 3 widgets")
        return Step.CHARGE, {"sku": "widget", "qty": 3}

    async def compensate(self, res: Resources, output: Any) -> None:
        LOG.append(f"released {output['qty']} {output['sku']}s")


@compensatable(state=Step)
class Charge:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> tuple[Step, dict[str, Any]]:
        LOG.append("charged $42")
        return Step.SHIP, {"amount": 42}

    async def compensate(self, res: Resources, output: Any) -> None:
        LOG.append(f"refunded ${output['amount']}")


SHIPPING = anyio.Event()


@task(state=Step, config=TaskConfig.minimal())
async def ship() -> Step:
    SHIPPING.set()
    LOG.append("shipping (slow)...")
    await anyio.sleep(60)
    LOG.append("shipped")  # never reached: the run is cancelled
    return Step.DONE


async def main() -> None:
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.RESERVE, Reserve())
        .register_with_compensation(Step.CHARGE, Charge())
        .register(Step.SHIP, ship)
        .add_exit_state(Step.DONE)
    )
    print("=== Scheduler cancellation: cancel_flow drains the saga ===\n")
    async with Scheduler().manual("order", wf, Step.RESERVE).start() as running:
        await running.trigger("order")
        await SHIPPING.wait()
        await anyio.sleep(0.1)
        print("cancel_flow('order') while shipping")
        await running.cancel_flow("order")
        while running.has_running_flows():
            await anyio.sleep(0.01)
        info = running.status("order")

    for line in LOG:
        print("  ", line)
    assert info is not None
    print(f"\nstatus={info.status.name} failure_streak={info.failure_streak} runs={info.run_count}")
    assert info.status == FlowStatus.IDLE and info.failure_streak == 0
    assert LOG[-2:] == ["refunded $42", "released 3 widgets"]
    print("Done")


if __name__ == "__main__":
    anyio.run(main)
