"""Child process of tests/faults/test_concurrent_resumers.py: runs or resumes one order.

    python tests/faults/resumer_driver.py run|resume --store sqlite:PATH|postgres:TABLE \
        --id ID --effects FILE --tag TAG [--crash-at SLOW] [--hold FILE] [--backend trio]

The workflow: START → RESERVE (compensatable) → SLOW → SHIP → DONE, with one resource.
Every effect appends ``"{tag} {event}"`` to the effects file: ``setup`` / ``teardown``
of the resource, ``run STATE`` for each task, ``undo RESERVE`` for the compensation.
In SLOW, ``--crash-at SLOW`` prints ``ready SLOW`` and blocks until the parent kills
the process; ``--hold FILE`` prints ``ready SLOW`` and waits until FILE exists. The last
stdout line is a JSON object: ``{"result": "DONE"}`` or ``{"error": ..., ...}``.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from cano_dsl import CanoError, Resources, StateFailure, TaskConfig, Workflow, compensatable, task

MINIMAL = TaskConfig.minimal()


class Order(enum.Enum):
    START = enum.auto()
    RESERVE = enum.auto()
    SLOW = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


class Effects:
    def __init__(self, path: str, tag: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
        self.tag = tag

    def record(self, event: str) -> None:
        self.file.write(f"{self.tag} {event}\n")
        self.file.flush()


class Warehouse:
    """The resource: its setup and teardown are effects too."""

    def __init__(self, fx: Effects) -> None:
        self.fx = fx

    async def setup(self) -> None:
        self.fx.record("setup")

    async def teardown(self) -> None:
        self.fx.record("teardown")


def build(fx: Effects, crash_at: str | None, hold: str | None) -> Workflow[Order]:
    @task(config=MINIMAL, name="start")
    async def start(res: Resources) -> Order:
        fx.record("run START")
        return Order.RESERVE

    @compensatable(state=Order, config=MINIMAL, name="reserve")
    class Reserve:
        async def run(self, res: Resources) -> tuple[Order, dict[str, Any]]:
            fx.record("run RESERVE")
            return Order.SLOW, {"sku": "book"}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            fx.record("undo RESERVE")

    @task(config=MINIMAL, name="slow")
    async def slow(res: Resources) -> Order:
        fx.record("run SLOW")
        if crash_at == "SLOW":
            print("ready SLOW", flush=True)
            await anyio.sleep(3600)
        if hold is not None:
            print("ready SLOW", flush=True)
            while not Path(hold).exists():
                await anyio.sleep(0.02)
        return Order.SHIP

    @task(config=MINIMAL, name="ship")
    async def ship(res: Resources) -> Order:
        fx.record("run SHIP")
        return Order.DONE

    return (
        Workflow(Resources().insert("warehouse", Warehouse(fx)))
        .register(Order.START, start)
        .register_with_compensation(Order.RESERVE, Reserve())
        .register(Order.SLOW, slow)
        .register(Order.SHIP, ship)
        .add_exit_state(Order.DONE)
        .with_workflow_version(1)
    )


def open_store(spec: str) -> Any:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        return SqliteCheckpointStore(rest)
    from cano_dsl.stores import PostgresCheckpointStore

    return PostgresCheckpointStore(os.environ["CANO_DSL_TEST_POSTGRES_DSN"], table=rest)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    fx = Effects(args.effects, args.tag)
    store = open_store(args.store)
    wf = build(fx, args.crash_at, args.hold).with_checkpoint_store(store)
    try:
        if args.mode == "run":
            final = await wf.with_workflow_id(args.id).orchestrate(Order.START)
        else:
            final = await wf.resume_from(args.id)
        return {"result": final.name}
    except CanoError as exc:
        out: dict[str, Any] = {
            "error": type(exc).__name__,
            "category": exc.category,
            "message": exc.message,
        }
        if isinstance(exc, StateFailure):
            out["cause"] = type(exc.error).__name__
        return out
    finally:
        with anyio.CancelScope(shield=True):
            await store.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["run", "resume"])
    p.add_argument("--store", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--effects", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--crash-at")
    p.add_argument("--hold")
    p.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    ns = p.parse_args(sys.argv[1:])
    print(json.dumps(anyio.run(main, ns, backend=ns.backend)), flush=True)
