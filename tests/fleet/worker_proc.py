"""A worker process for the fleet tests: ``python -m tests.fleet.worker_proc URL
BACKEND CONCURRENCY LEASE`` serves `tests.fleet.flows.registry` until SIGTERM/SIGINT
(then it shuts down gracefully with a 0.5 s grace) or SIGKILL."""

from __future__ import annotations

import signal
import sys

import anyio

from cano_dsl.fleet import Fleet, Worker
from tests.fleet.conftest import make_store
from tests.fleet.flows import registry


async def main(url: str, concurrency: int, lease: float) -> None:
    store = make_store(url)
    fleet = Fleet(store)
    worker = Worker(fleet, registry, concurrency=concurrency, lease=lease, poll_interval=0.02)
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    worker.stop()
                    return

        tg.start_soon(on_signal)
        print("ready", flush=True)
        await worker.run(grace=0.5)
        tg.cancel_scope.cancel()
    await fleet.aclose()
    await store.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[3]), float(sys.argv[4]), backend=sys.argv[2])
