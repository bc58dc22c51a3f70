"""A scheduler process that hands its ticks to the fleet: ``python -m
tests.fleet.sched_enqueue_proc URL SECONDS BACKEND`` runs the interval flow ``steps``
(every 1 s) once per fleet with the workers' registry, so each tick it wins is enqueued
as a fleet run of ``steps`` instead of running here. The flow's own workflow, which
would run if the tick ran in this process, logs ``local-steps <pid>``."""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio

from cano_dsl import Scheduler, TaskConfig, Workflow, task
from tests.fleet.flows import Step, note, registry
from tests.fleet.support import make_store


def local() -> Workflow[Step]:
    @task(config=TaskConfig.minimal(), name="local")
    async def run(res: Any) -> Step:
        note(f"local-steps A {os.getpid()}")
        return Step.DONE

    return Workflow.bare().register(Step.A, run).add_exit_state(Step.DONE)


async def main(url: str, seconds: float) -> None:
    from cano_dsl.fleet import Fleet

    store = make_store(url)
    async with Fleet(store) as fleet:
        sched = (
            Scheduler()
            .every("steps", local(), Step.A, 1.0)
            .once_per_fleet(fleet, registry=registry)
        )
        async with sched.start():
            await anyio.sleep(seconds)
    await store.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], float(sys.argv[2]), backend=sys.argv[3])
