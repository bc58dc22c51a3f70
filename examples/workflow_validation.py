"""Catch a miswired workflow before it runs: `validate()` and `validate_initial_state()`.

    python examples/workflow_validation.py

Port of cano's ``workflow_validation`` example. Three scenarios:

1. a well-formed workflow with a split passes both checks and runs;
2. a split whose join state is neither registered nor an exit state, and a workflow
   with no exit state at all, are refused by ``validate()``;
3. ``validate_initial_state()`` refuses a start state with no task, and accepts an
   exit state (a run started there ends at once).

Both raise `ConfigurationError` (a `ValueError`) whose message says what is wrong.
``orchestrate`` runs the same checks itself before setting up any resource; calling
them yourself moves the failure to start-up.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import anyio

from cano_dsl import ConfigurationError, JoinConfig, JoinStrategy, Workflow, task


class Step(enum.Enum):
    PREPARE = enum.auto()
    PROCESS = enum.auto()
    AGGREGATE = enum.auto()
    DONE = enum.auto()
    ORPHAN = enum.auto()  # never registered: the target of the broken wiring below


@task(state=Step)
class Prepare:
    async def run_bare(self) -> Step:
        print("    prepare: loading work items")
        return Step.PROCESS


@task(state=Step)
class Worker:
    def __init__(self, n: int) -> None:
        self.n = n

    def name(self) -> str:
        return f"worker-{self.n}"

    async def run_bare(self) -> Step:
        print(f"    worker {self.n}: done")
        return Step.AGGREGATE


@task(state=Step)
class Aggregate:
    async def run_bare(self) -> Step:
        print("    aggregate: collecting results")
        return Step.DONE


def check(label: str, call: Callable[[], None]) -> bool:
    """Run one check and print its verdict; True when it passed."""
    try:
        call()
    except ConfigurationError as exc:
        print(f"  {label} -> ConfigurationError: {exc}")
        return False
    print(f"  {label} -> ok")
    return True


async def main() -> None:
    print("1. well-formed workflow")
    good = (
        Workflow.bare()
        .register(Step.PREPARE, Prepare())
        .register_split(
            Step.PROCESS, [Worker(1), Worker(2)], JoinConfig(JoinStrategy.all(), Step.AGGREGATE)
        )
        .register(Step.AGGREGATE, Aggregate())
        .add_exit_state(Step.DONE)
    )
    check("validate()", good.validate)
    check("validate_initial_state(PREPARE)", lambda: good.validate_initial_state(Step.PREPARE))
    final = await good.orchestrate(Step.PREPARE)
    print(f"  orchestrate -> {final.name}\n")

    print("2. split joining into a state nothing handles")
    dangling = (
        Workflow.bare()
        .register(Step.PREPARE, Prepare())
        .register_split(
            Step.PROCESS, [Worker(1), Worker(2)], JoinConfig(JoinStrategy.all(), Step.ORPHAN)
        )
        .add_exit_state(Step.DONE)
    )
    check("validate()", dangling.validate)
    no_exit = Workflow.bare().register(Step.PREPARE, Prepare())
    check("validate() with no exit state", no_exit.validate)
    try:
        await dangling.orchestrate(Step.PREPARE)
    except ConfigurationError:
        print("  orchestrate() refuses it too, before any task runs\n")

    print("3. start states")
    partial = (
        Workflow.bare()
        .register(Step.PREPARE, Prepare())
        .register(Step.AGGREGATE, Aggregate())
        .add_exit_state(Step.DONE)
    )
    check("validate_initial_state(PROCESS)", lambda: partial.validate_initial_state(Step.PROCESS))
    check("validate_initial_state(DONE)", lambda: partial.validate_initial_state(Step.DONE))
    print(f"  orchestrate(DONE) -> {(await partial.orchestrate(Step.DONE)).name}")


if __name__ == "__main__":
    anyio.run(main)
