"""A multi-step workflow where every step is one `@task` with a single ``run``.

    python examples/task_interface_demo.py

Port of cano's ``task_interface_demo`` example. The chain is
START -> PROCESS_FIRST -> PROCESS_SECOND -> COMPLETE (ERROR is a second exit state
that this run never reaches). It shows the three ways a task class may be written:

- a plain ``@task`` class with ``run(res)``;
- a class carrying its own constructor arguments (a display name) and a ``config()``
  method (`TaskConfig.minimal()`: one attempt, no retry);
- ``name()`` overridden, so observers and errors show a readable task id.

Each step reads what the one before it left in the shared `MemoryStore`.
"""

from __future__ import annotations

import datetime
import enum

import anyio

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, WorkflowObserver, task


class Stage(enum.Enum):
    START = enum.auto()
    PROCESS_FIRST = enum.auto()
    PROCESS_SECOND = enum.auto()
    COMPLETE = enum.auto()
    ERROR = enum.auto()


@task(state=Stage)
class Initializer:
    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        store.put("run_id", "demo_123")
        store.put("started_at", datetime.datetime.now(datetime.timezone.utc))
        print("initializer: run_id and start time stored")
        return Stage.PROCESS_FIRST


@task(state=Stage)
class FirstProcessor:
    def __init__(self, label: str) -> None:
        self.label = label

    def name(self) -> str:
        return self.label

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Stage:
        loaded = f"data_for_{self.label}"
        processed = f"processed_{loaded}"
        print(f"{self.label}: loaded {loaded!r}, stored {processed!r}")
        res.get("store", MemoryStore).put("first_result", processed)
        return Stage.PROCESS_SECOND


@task(state=Stage)
class SecondProcessor:
    def __init__(self, label: str) -> None:
        self.label = label

    def name(self) -> str:
        return self.label

    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        previous = store.get("first_result", str)
        final = f"task_enhanced_{previous}"
        print(f"{self.label}: read {previous!r}, stored {final!r}")
        store.put("final_result", final)
        return Stage.COMPLETE


class TaskIds(WorkflowObserver):
    """Collects the task ids the engine reports, to show what ``name()`` changes."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def on_task_start(self, task_id: str) -> None:
        self.ids.append(task_id)


async def main() -> None:
    store = MemoryStore()
    ids = TaskIds()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Stage.START, Initializer())
        .register(Stage.PROCESS_FIRST, FirstProcessor("FirstProcessor"))
        .register(Stage.PROCESS_SECOND, SecondProcessor("SecondProcessor"))
        .add_exit_states([Stage.COMPLETE, Stage.ERROR])
        .with_observer(ids)
    )
    print("START -> PROCESS_FIRST -> PROCESS_SECOND -> COMPLETE\n")
    final = await wf.orchestrate(Stage.START)
    elapsed = datetime.datetime.now(datetime.timezone.utc) - store.get("started_at")
    print(f"\nfinal state: {final.name}")
    print(f"run id: {store.get('run_id', str)}")
    print(f"final result: {store.get('final_result', str)}")
    print(f"task ids seen by the observer: {ids.ids}")
    print(f"run took {elapsed.total_seconds() * 1000:.1f} ms")


if __name__ == "__main__":
    anyio.run(main)
