"""A router picks a branch without side effects and without a checkpoint row.

    python examples/router_task.py

The workflow is run twice, once with a small order and once with a large one: the
router sends the first down the fast path and the second down the careful one. With
a checkpoint store attached, the router's state is entered (observers see it, it is
on the path) but writes no row and consumes no sequence number.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, WorkflowObserver, router, task
from cano_dsl.testing import InMemoryCheckpointStore


class Step(enum.Enum):
    RECEIVE = enum.auto()
    ROUTE = enum.auto()
    FAST_PATH = enum.auto()
    CAREFUL_PATH = enum.auto()
    DONE = enum.auto()


class Printer(WorkflowObserver):
    def on_state_enter(self, state: str) -> None:
        print(f"  enter {state}")

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        print(f"    checkpoint row #{sequence}")


@task(config=TaskConfig.minimal())
async def receive(res: Resources) -> Step:
    order = res.get("store", MemoryStore).get("order")
    print(f"    received order of {order['items']} item(s)")
    return Step.ROUTE


@router(state=Step)
class BySize:
    """Read-only: looks at the order and names the next state."""

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def route(self, res: Resources) -> Step:
        items = res.get("store", MemoryStore).get("order")["items"]
        return Step.FAST_PATH if items <= 10 else Step.CAREFUL_PATH


@task(config=TaskConfig.minimal())
async def fast_path(res: Resources) -> Step:
    res.get("store", MemoryStore).put("handled_by", "fast path")
    return Step.DONE


@task(config=TaskConfig.minimal())
async def careful_path(res: Resources) -> Step:
    await anyio.sleep(0.01)  # pretend to double-check stock
    res.get("store", MemoryStore).put("handled_by", "careful path")
    return Step.DONE


async def run_once(items: int) -> None:
    store = MemoryStore()
    store.put("order", {"items": items})
    checkpoints = InMemoryCheckpointStore()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Step.RECEIVE, receive)
        .register_router(Step.ROUTE, BySize())
        .register(Step.FAST_PATH, fast_path)
        .register(Step.CAREFUL_PATH, careful_path)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(checkpoints)
        .with_workflow_id(f"order-{items}")
        .with_observer(Printer())
    )
    print(f"order with {items} item(s):")
    final = await wf.orchestrate(Step.RECEIVE)
    print(f"  -> {final.name}, handled by the {store.get('handled_by')}")
    print("  (ROUTE was entered but wrote no checkpoint row: rows are RECEIVE, path, DONE)")


async def main() -> None:
    await run_once(3)
    await run_once(40)


if __name__ == "__main__":
    anyio.run(main)
