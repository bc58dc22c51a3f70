"""A saga that survives a crash: the first process reserves and charges, then dies; a
second process resumes from the SQLite log, and when a later step fails, the rollback
also undoes the work the first process did — newest first.

    python examples/saga_recovery.py

Each process is a real child process here: the first one is killed with SIGKILL while
it is booking the courier.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

from cano_dsl import (
    CheckpointStore,
    CompensationFailed,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore


class Trip(enum.Enum):
    FLIGHT = enum.auto()
    HOTEL = enum.auto()
    COURIER = enum.auto()
    DONE = enum.auto()


def say(msg: str) -> None:
    print(f"  [pid {os.getpid()}] {msg}", flush=True)


@compensatable(state=Trip, config=TaskConfig.minimal(), name="flight")
class BookFlight:
    async def run(self, res: Resources) -> tuple[Trip, dict[str, Any]]:
        say("flight booked (PNR ABC123)")
        return Trip.HOTEL, {"pnr": "ABC123", "by": os.getpid()}

    async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
        say(f"cancel flight {output['pnr']} (booked by pid {output['by']})")


@compensatable(state=Trip, config=TaskConfig.minimal(), name="hotel")
class BookHotel:
    async def run(self, res: Resources) -> tuple[Trip, dict[str, Any]]:
        say("hotel booked (conf H-9)")
        return Trip.COURIER, {"conf": "H-9", "by": os.getpid()}

    async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
        say(f"cancel hotel {output['conf']} (booked by pid {output['by']})")


@task(config=TaskConfig.minimal(), name="courier")
async def courier(res: Resources) -> Trip:
    if os.environ.get("SAGA_ROLE") == "first":
        say("booking the courier... (about to be killed)")
        await anyio.sleep(3600)
    raise RuntimeError("no courier available")


def workflow(store: CheckpointStore) -> Workflow[Trip]:
    return (
        Workflow.bare()
        .register_with_compensation(Trip.FLIGHT, BookFlight())
        .register_with_compensation(Trip.HOTEL, BookHotel())
        .register(Trip.COURIER, courier)
        .add_exit_state(Trip.DONE)
        .with_checkpoint_store(store)
    )


async def child(db: str, role: str) -> None:
    async with SqliteCheckpointStore(db) as store:
        wf = workflow(store)
        if role == "first":
            await wf.with_workflow_id("trip-7").orchestrate(Trip.FLIGHT)
            return
        try:
            await wf.resume_from("trip-7")
        except (StateFailure, CompensationFailed) as err:
            say(f"resumed run failed: {err.message}; rollback done")
        left = await store.load_run("trip-7")
        say(f"rows left in the log: {len(left)}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "trips.db")
        env = {**os.environ, "SAGA_ROLE": "first"}
        print("process 1 books the flight and the hotel, then dies:")
        first = subprocess.Popen(
            [sys.executable, __file__, "--child", db, "first"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert first.stdout is not None
        for line in first.stdout:
            print(line, end="")
            if "about to be killed" in line:
                first.send_signal(signal.SIGKILL)
                break
        first.wait()
        first.stdout.close()
        print(f"  process 1 killed (exit {first.returncode})")
        print("process 2 resumes; the courier step fails; both bookings are undone:")
        subprocess.run(
            [sys.executable, __file__, "--child", db, "second"],
            env={**os.environ, "SAGA_ROLE": "second"},
            check=True,
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        anyio.run(child, sys.argv[2], sys.argv[3])
    else:
        main()
