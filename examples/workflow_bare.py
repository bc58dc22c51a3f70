"""Tasks that need no resources: ``run_bare``, bare function tasks and `Workflow.bare()`.

    python examples/workflow_bare.py

Port of cano's ``workflow_bare`` example. A task that only computes writes
``run_bare(self)`` instead of ``run(self, res)`` (or is an ``async def`` with no
parameter); `Workflow.bare()` is a workflow with an empty `Resources`. Bare tasks
also work unchanged in a workflow that has resources, next to tasks that use them:

1. VALIDATE and SANITIZE in a bare workflow, which stops at PERSIST (an exit state
   there);
2. the same two tasks plus a PERSIST task that writes to a `MemoryStore`.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import MemoryStore, Resources, Workflow, task


class Stage(enum.Enum):
    VALIDATE = enum.auto()
    SANITIZE = enum.auto()
    PERSIST = enum.auto()
    DONE = enum.auto()


RAW = 142  # the input this pipeline checks and clamps


@task(state=Stage)
class Validate:
    """A class task with ``run_bare``: no resources parameter at all."""

    async def run_bare(self) -> Stage:
        if RAW < 0:
            raise ValueError(f"value must not be negative, got {RAW}")
        print(f"  validate: {RAW} is not negative")
        return Stage.SANITIZE


@task
async def sanitize() -> Stage:
    """A function task with no parameter is bare too."""
    print(f"  sanitize: {RAW} clamped to {min(max(RAW, 0), 100)}")
    return Stage.PERSIST


@task(state=Stage)
class Persist:
    """A resource task: it needs the store."""

    async def run(self, res: Resources) -> Stage:
        value = min(max(RAW, 0), 100)
        res.get("store", MemoryStore).put("sanitized", value)
        print(f"  persist: stored sanitized={value}")
        return Stage.DONE


async def main() -> None:
    print("bare workflow (no resources):")
    bare = (
        Workflow.bare()
        .register(Stage.VALIDATE, Validate())
        .register(Stage.SANITIZE, sanitize)
        .add_exit_states([Stage.PERSIST, Stage.DONE])
    )
    print(f"  reached {(await bare.orchestrate(Stage.VALIDATE)).name}\n")

    print("mixed workflow (bare tasks + a resource task):")
    store = MemoryStore()
    mixed = (
        Workflow(Resources().insert("store", store))
        .register(Stage.VALIDATE, Validate())
        .register(Stage.SANITIZE, sanitize)
        .register(Stage.PERSIST, Persist())
        .add_exit_state(Stage.DONE)
    )
    print(f"  reached {(await mixed.orchestrate(Stage.VALIDATE)).name}")
    print(f"  store holds sanitized={store.get('sanitized', int)}")


if __name__ == "__main__":
    anyio.run(main)
