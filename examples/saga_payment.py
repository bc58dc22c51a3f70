"""A payment saga: reserve stock, charge the card, book shipping — and when shipping
fails, the engine undoes the completed steps in reverse order.

    python examples/saga_payment.py

Each `@compensatable` step returns ``(next_state, output)``; the output (JSON) is what
its ``compensate`` receives if a later state fails.
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import (
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)


class Pay(enum.Enum):
    RESERVE = enum.auto()
    CHARGE = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


@compensatable(state=Pay, config=TaskConfig.minimal(), name="reserve")
class ReserveStock:
    async def run(self, res: Resources) -> tuple[Pay, dict[str, Any]]:
        print("  reserve: 2 x book held (hold-17)")
        return Pay.CHARGE, {"hold": "hold-17", "qty": 2}

    async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
        print(f"  undo reserve: release {output['hold']} ({output['qty']} items)")


@compensatable(state=Pay, config=TaskConfig.minimal(), name="charge")
class ChargeCard:
    async def run(self, res: Resources) -> tuple[Pay, dict[str, Any]]:
        print("  charge: 59.90 EUR captured (txn-88)")
        return Pay.SHIP, {"txn": "txn-88", "amount": 59.90}

    async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
        print(f"  undo charge: refund {output['amount']:.2f} EUR on {output['txn']}")


def shipping(available: bool) -> Any:
    @task(config=TaskConfig.minimal(), name="ship")
    async def ship(res: Resources) -> Pay:
        if not available:
            raise RuntimeError("carrier API unavailable")
        print("  ship: label printed")
        return Pay.DONE

    return ship


def workflow(carrier_up: bool) -> Workflow[Pay]:
    return (
        Workflow.bare()
        .register_with_compensation(Pay.RESERVE, ReserveStock())
        .register_with_compensation(Pay.CHARGE, ChargeCard())
        .register(Pay.SHIP, shipping(carrier_up))
        .add_exit_state(Pay.DONE)
    )


async def main() -> None:
    print("order 1 (carrier up):")
    print("  ->", (await workflow(True).orchestrate(Pay.RESERVE)).name)
    print("order 2 (carrier down):")
    try:
        await workflow(False).orchestrate(Pay.RESERVE)
    except StateFailure as err:
        print(f"  -> failed in {err.state.name}: {err.message}; completed steps rolled back")


if __name__ == "__main__":
    anyio.run(main)
