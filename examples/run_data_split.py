"""Run data in a split: every branch starts from the data as of the split's entry, and
their changes merge at the join, in branch order.

    python examples/run_data_split.py

Two branches that change the same field are an error naming the field and both branches
(never a silent last-writer-wins); a failed branch's changes are dropped.
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import JoinConfig, JoinStrategy, Resources, StateFailure, Workflow, task


class Quote(enum.Enum):
    ENRICH = enum.auto()
    DECIDE = enum.auto()
    DONE = enum.auto()


@task(name="credit")
async def credit(res: Resources, data: dict[str, Any]) -> Quote:
    data["credit_score"] = 710 if data["customer"] == "ada" else 540
    return Quote.DECIDE


@task(name="fraud")
async def fraud(res: Resources, data: dict[str, Any]) -> Quote:
    data["fraud_flags"] = []
    return Quote.DECIDE


@task(name="greedy")
async def greedy(res: Resources, data: dict[str, Any]) -> Quote:
    data["credit_score"] = 999  # the credit branch owns this field
    return Quote.DECIDE


@task
async def decide(res: Resources, data: dict[str, Any]) -> Quote:
    data["approved"] = data["credit_score"] > 600 and not data["fraud_flags"]
    return Quote.DONE


def build(branches: list[Any]) -> Any:
    return (
        Workflow(Resources())
        .with_run_data(dict)
        .register_split(Quote.ENRICH, branches, JoinConfig(JoinStrategy.all(), Quote.DECIDE))
        .register(Quote.DECIDE, decide)
        .add_exit_state(Quote.DONE)
    )


async def main() -> None:
    result = await build([credit, fraud]).run(Quote.ENRICH, data={"customer": "ada"})
    print(f"merged run data: {result.data}")
    try:
        await build([credit, fraud, greedy]).run(Quote.ENRICH, data={"customer": "ada"})
    except StateFailure as failure:
        print(f"conflict: {failure.error}")


if __name__ == "__main__":
    anyio.run(main)
