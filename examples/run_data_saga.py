"""Run data in a saga: ``compensate`` gets the run data as it was when its step completed.

    python examples/run_data_saga.py

Without run data a compensator only has the ``output`` its step returned; with it, it also
sees what the run knew when the step finished (here: the customer and the amount), even
if later states changed the data, and even after a crash and a resume elsewhere.
"""

from __future__ import annotations

import enum

import anyio
import attrs

from cano_dsl import Resources, StateFailure, TaskConfig, Workflow, compensatable, task
from cano_dsl.testing import InMemoryCheckpointStore


class Trip(enum.Enum):
    QUOTE = enum.auto()
    PAY = enum.auto()
    BOOK = enum.auto()
    DONE = enum.auto()


@attrs.define
class TripData:
    customer: str = ""
    amount: float = 0.0
    payment_id: str | None = None
    notes: list[str] = attrs.Factory(list[str])


@task
async def quote(res: Resources, data: TripData) -> Trip:
    data.customer = "ada"
    data.amount = 420.0
    return Trip.PAY


@compensatable(name="pay")
class Pay:
    async def run(self, res: Resources, data: TripData) -> tuple[Trip, str]:
        data.payment_id = f"pay_{data.customer}"
        print(f"  charged {data.amount} to {data.customer} ({data.payment_id})")
        return Trip.BOOK, data.payment_id

    async def compensate(self, res: Resources, output: str, data: TripData) -> None:
        # the data as of PAY's completion: BOOK's later changes are not visible here
        print(f"  refund {output}: {data.amount} to {data.customer}; notes then: {data.notes}")


@task(config=TaskConfig.minimal())
async def book(res: Resources, data: TripData) -> Trip:
    data.amount = 0.0  # a later change: the compensator still sees 420.0
    data.notes.append("hotel full")
    raise RuntimeError("no rooms left")


async def main() -> None:
    wf = (
        Workflow(Resources())
        .with_run_data(TripData)
        .register(Trip.QUOTE, quote)
        .register_with_compensation(Trip.PAY, Pay())
        .register(Trip.BOOK, book)
        .add_exit_state(Trip.DONE)
        .with_checkpoint_store(InMemoryCheckpointStore())
        .with_workflow_id("trip-1")
    )
    try:
        await wf.run(Trip.QUOTE)
    except StateFailure as failure:
        print(f"  run failed in {failure.state.name}: {failure.error}")


if __name__ == "__main__":
    anyio.run(main)
