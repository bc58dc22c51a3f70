"""A scheduler process for the fleet tests: ``python -m tests.fleet.sched_proc URL
SECONDS BACKEND`` runs an interval flow (every 1 s) and a cron flow (every second)
once per fleet for SECONDS, writing ``flow pid unix-time`` per run to
``CANO_FLEET_TEST_LOG``."""

from __future__ import annotations

import enum
import os
import sys
import time
from typing import Any

import anyio

from cano_dsl import Scheduler, TaskConfig, Workflow, task
from cano_dsl.fleet import Fleet
from tests.fleet.flows import note
from tests.fleet.support import make_store


class S(enum.Enum):
    GO = enum.auto()
    DONE = enum.auto()


def flow(name: str) -> Workflow[S]:
    @task(config=TaskConfig.minimal(), name=name)
    async def run(res: Any) -> S:
        note(f"{name} {os.getpid()} {time.time():.3f}")
        return S.DONE

    return Workflow.bare().register(S.GO, run).add_exit_state(S.DONE)


async def main(url: str, seconds: float) -> None:
    store = make_store(url)
    async with Fleet(store) as fleet:
        sched = (
            Scheduler()
            .every("tick", flow("tick"), S.GO, 1.0)
            .cron("cron", flow("cron"), S.GO, "* * * * * *")
            .once_per_fleet(fleet)
        )
        async with sched.start():
            await anyio.sleep(seconds)
    await store.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], float(sys.argv[2]), backend=sys.argv[3])
