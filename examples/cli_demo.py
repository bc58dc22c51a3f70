"""A module exposing a workflow for the `cano-dsl` command line.

Use it from the shell (from the repository root):

    cano-dsl graph examples/cli_demo.py:build
    cano-dsl validate examples/cli_demo.py:build --initial RECEIVE
    cano-dsl run examples/cli_demo.py:build --initial RECEIVE
    CLI_DEMO_FAIL=1 cano-dsl run examples/cli_demo.py:build --initial RECEIVE \\
        --store sqlite:orders.db --workflow-id order-7
    cano-dsl runs list --store sqlite:orders.db
    cano-dsl runs show order-7 --store sqlite:orders.db
    cano-dsl runs resume order-7 examples/cli_demo.py:build --store sqlite:orders.db

or run this file (python examples/cli_demo.py), which does the same through
`cano_dsl.cli.main` in a temporary directory. `build` is a zero-argument function
returning the workflow; `workflow` is the same workflow as a module attribute.
"""

from __future__ import annotations

import enum
import os
import sys
import tempfile
from pathlib import Path

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, router, task
from cano_dsl.workflow import JoinConfig, JoinStrategy


class Order(enum.Enum):
    RECEIVE = enum.auto()
    ROUTE = enum.auto()
    EXPRESS = enum.auto()
    STANDARD = enum.auto()
    CHECKS = enum.auto()
    SHIP = enum.auto()
    SHIPPED = enum.auto()
    REJECTED = enum.auto()


@task(config=TaskConfig.minimal(), name="receive")
async def receive(res: Resources) -> Order:
    res.get("store", MemoryStore).put("total", 120)
    return Order.ROUTE


@router(state=Order)
class Route:
    async def route(self, res: Resources) -> Order:
        total = res.get("store", MemoryStore).get("total")
        return Order.EXPRESS if total > 100 else Order.STANDARD

    def name(self) -> str:
        return "route"


@task(config=TaskConfig.minimal(), name="express")
async def express() -> Order:
    return Order.CHECKS


@task(config=TaskConfig.minimal(), name="standard")
async def standard() -> Order:
    return Order.CHECKS


@task(config=TaskConfig.minimal(), name="fraud-check")
async def fraud_check() -> None:
    return None


@task(config=TaskConfig.minimal(), name="stock-check")
async def stock_check() -> None:
    return None


@task(config=TaskConfig.minimal(), name="ship")
async def ship() -> Order:
    # no MemoryStore read here: a resumed run starts with fresh resources (the store
    # is not part of the checkpoint log), so a resumable state must not depend on it
    if os.environ.get("CLI_DEMO_FAIL"):
        raise ConnectionError("carrier API unreachable")
    if os.environ.get("CLI_DEMO_REJECT"):
        return Order.REJECTED
    return Order.SHIPPED


def build() -> Workflow[Order]:
    return (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Order.RECEIVE, receive)
        .register_router(Order.ROUTE, Route())
        .register(Order.EXPRESS, express)
        .register(Order.STANDARD, standard)
        .register_split(
            Order.CHECKS, [fraud_check, stock_check], JoinConfig(JoinStrategy.all(), Order.SHIP)
        )
        .register(Order.SHIP, ship)
        .add_exit_states([Order.SHIPPED, Order.REJECTED])
    )


workflow = build()


def demo() -> int:
    from cano_dsl.cli import main

    target = f"{Path(__file__).resolve()}:build"
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:{Path(tmp) / 'orders.db'}"
        steps = [
            ("graph", ["graph", target]),
            ("validate", ["validate", target, "--initial", "RECEIVE"]),
            ("run", ["run", target, "--initial", "RECEIVE"]),
            (
                "run that fails (CLI_DEMO_FAIL=1)",
                [
                    "run",
                    target,
                    "--initial",
                    "RECEIVE",
                    "--store",
                    store,
                    "--workflow-id",
                    "order-7",
                ],
            ),
            ("runs list", ["runs", "list", "--store", store]),
            ("runs show", ["runs", "show", "order-7", "--store", store]),
            ("runs resume", ["runs", "resume", "order-7", target, "--store", store]),
        ]
        for title, argv in steps:
            print(f"$ cano-dsl {' '.join(argv)}   # {title}")
            sys.stdout.flush()
            if title.startswith("run that fails"):
                os.environ["CLI_DEMO_FAIL"] = "1"
            code = main(argv)
            os.environ.pop("CLI_DEMO_FAIL", None)
            sys.stderr.flush()
            print(f"(exit status {code})\n")
            expected = 1 if title.startswith("run that fails") else 0
            if code != expected:
                return 1
    print("Done")
    return 0


if __name__ == "__main__":
    sys.exit(demo())
