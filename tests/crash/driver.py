"""Child process of the crash-recovery tests: runs (or resumes) one checkpointed workflow.

    python tests/crash/driver.py --store sqlite:/tmp/x.db --id order-1 --effects fx.log \
        --tag p1 run [--crash-at STATE[:N]] [--fail-at STATE] [--backend trio]
    python tests/crash/driver.py ... resume

The workflow: START (task) → ROUTE (router) → ITEMS (batch) → RESERVE (compensatable) →
PAGES (stepped, cursor 0..3) → CHARGE (compensatable) → FEED (stream, items 0..5, windows
of 2) → SHIP (task) → DONE.

Every side effect appends one line ``"{tag} {event}"`` to the effects file (written with
a plain ``write`` + ``flush``, which a SIGKILL does not undo). ``--crash-at STATE`` makes
the task of STATE (or, with ``STATE:N``, its step / stream item N) record its effect,
print ``ready STATE`` on stdout and block until the parent kills the process.
``--fail-at STATE`` makes STATE's task raise instead. The last stdout line is a JSON
object: ``{"result": "DONE"}`` or ``{"error": ..., "category": ..., "message": ...}``.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

from cano_dsl import (
    CanoError,
    CloseReason,
    Resources,
    StateFailure,
    StepOutcome,
    StreamWindow,
    TaskConfig,
    WindowSignal,
    Workflow,
    batch,
    compensatable,
    router,
    stepped,
    stream,
    task,
)

MINIMAL = TaskConfig.minimal()


class Order(enum.Enum):
    START = enum.auto()
    ROUTE = enum.auto()
    ITEMS = enum.auto()
    RESERVE = enum.auto()
    PAGES = enum.auto()
    CHARGE = enum.auto()
    FEED = enum.auto()
    SHIP = enum.auto()
    DONE = enum.auto()


class Effects:
    """The side-effect journal shared by every task of the child."""

    def __init__(self, path: str, tag: str, crash_at: str | None, fail_at: str | None) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the process
        self.tag = tag
        self.crash_at = crash_at
        self.fail_at = fail_at

    def record(self, event: str) -> None:
        self.file.write(f"{self.tag} {event}\n")
        self.file.flush()

    async def point(self, where: str) -> None:
        """Crash (block until killed) or fail here when asked to."""
        if self.crash_at == where:
            print(f"ready {where}", flush=True)
            await anyio.sleep(3600)
        if self.fail_at == where:
            raise RuntimeError(f"{where} failed")


def build(fx: Effects) -> Workflow[Order]:
    @task(config=MINIMAL, name="start")
    async def start(res: Resources) -> Order:
        fx.record("run START")
        await fx.point("START")
        return Order.ROUTE

    @router(state=Order, config=MINIMAL, name="route")
    class Route:
        async def route(self, res: Resources) -> Order:
            fx.record("run ROUTE")
            return Order.ITEMS

    @batch(state=Order, config=MINIMAL, name="items")
    class Items:
        concurrency = 3

        async def load(self, res: Resources) -> list[int]:
            fx.record("run ITEMS")
            return [1, 2, 3]

        async def process_item(self, item: int) -> int:
            return item * 10

        async def finish(self, res: Resources, outputs: list[Any]) -> Order:
            await fx.point("ITEMS")
            return Order.RESERVE

    @compensatable(state=Order, config=MINIMAL, name="reserve")
    class Reserve:
        async def run(self, res: Resources) -> tuple[Order, dict[str, Any]]:
            fx.record("run RESERVE")
            await fx.point("RESERVE")
            return Order.PAGES, {"sku": "book", "pid": os.getpid()}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            fx.record(f"undo RESERVE {output['pid']}")

    @stepped(state=Order, config=MINIMAL, name="pages")
    class Pages:
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Order]:
            page = cursor or 0
            fx.record(f"step PAGES {page}")
            await fx.point(f"PAGES:{page}")
            if page == 3:
                return StepOutcome.done(Order.CHARGE)
            return StepOutcome.more(page + 1)

    @compensatable(state=Order, config=MINIMAL, name="charge")
    class Charge:
        async def run(self, res: Resources) -> tuple[Order, dict[str, Any]]:
            fx.record("run CHARGE")
            await fx.point("CHARGE")
            return Order.FEED, {"amount": 42, "pid": os.getpid()}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            fx.record(f"undo CHARGE {output['pid']}")

    @stream(state=Order, name="feed")
    class Feed:
        window = StreamWindow.count(2)

        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            for i in range(cursor or 0, 6):
                yield i

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            fx.record(f"item FEED {item}")
            await fx.point(f"FEED:{item}")
            return item, item + 1

        async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Order]:
            fx.record(f"flush FEED {outputs}")
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Order:
            return Order.SHIP

    @task(config=MINIMAL, name="ship")
    async def ship(res: Resources) -> Order:
        fx.record("run SHIP")
        await fx.point("SHIP")
        return Order.DONE

    return (
        Workflow.bare()
        .register(Order.START, start)
        .register_router(Order.ROUTE, Route())
        .register(Order.ITEMS, Items())
        .register_with_compensation(Order.RESERVE, Reserve())
        .register_stepped(Order.PAGES, Pages())
        .register_with_compensation(Order.CHARGE, Charge())
        .register_stream(Order.FEED, Feed())
        .register(Order.SHIP, ship)
        .add_exit_state(Order.DONE)
        .with_workflow_version(1)
    )


def open_store(spec: str) -> Any:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        return SqliteCheckpointStore(rest)
    if kind == "postgres":
        from cano_dsl.stores import PostgresCheckpointStore

        dsn = os.environ["CANO_DSL_TEST_POSTGRES_DSN"]
        return PostgresCheckpointStore(dsn, table=rest or "cano_checkpoints")
    raise SystemExit(f"unknown store {spec!r}")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    fx = Effects(args.effects, args.tag, args.crash_at, args.fail_at)
    store = open_store(args.store)
    wf = build(fx).with_checkpoint_store(store)
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
            out["state"] = exc.state.name
            out["path"] = [s.name for s in exc.path]
        return out
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.aclose()
            except CanoError:
                pass


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["run", "resume"])
    p.add_argument("--store", required=True, help="sqlite:PATH or postgres:TABLE")
    p.add_argument("--id", required=True)
    p.add_argument("--effects", required=True)
    p.add_argument("--tag", default=str(os.getpid()))
    p.add_argument("--crash-at")
    p.add_argument("--fail-at")
    p.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse(sys.argv[1:])
    print(json.dumps(anyio.run(main, ns, backend=ns.backend)), flush=True)
