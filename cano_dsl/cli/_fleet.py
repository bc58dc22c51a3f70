"""The fleet's subcommands: ``cano-dsl worker`` and ``cano-dsl runs cancel``."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from typing import Any, TextIO

import anyio

from .._errors import CanoError
from ._load import CliError, _import
from ._stores import parse_store_url

__all__ = ["FLEET_COMMANDS", "add_fleet_parsers"]


def add_fleet_parsers(sub: Any, runs_sub: Any) -> None:
    """Add ``worker`` to the top-level subcommands and ``cancel`` to ``runs``."""
    worker = sub.add_parser(
        "worker",
        help="serve a fleet: claim and run queued runs (until SIGTERM/SIGINT)",
        description="Claim queued runs of the registry's workflows from the store's run "
        "queue and run them; SIGTERM or SIGINT stops claiming, lets runs finish within "
        "--grace seconds, then hands the rest back to the queue.",
    )
    worker.add_argument("target", metavar="MODULE:REGISTRY", help="a cano_dsl.fleet.Registry")
    _store_options(worker)
    worker.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="runs held at once (default 8)"
    )
    worker.add_argument(
        "--lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="lease per run: how long a dead worker's runs wait for another (default 30)",
    )
    worker.add_argument(
        "--heartbeat",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how often the leases are renewed (default lease / 3)",
    )
    worker.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long runs may finish before they are handed back (default 30)",
    )
    worker.add_argument(
        "--queue",
        action="append",
        default=None,
        metavar="NAME",
        help="serve only this queue (repeatable; default every queue)",
    )
    worker.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop to run on (default asyncio; trio needs the trio extra)",
    )
    cancel = runs_sub.add_parser("cancel", help="cancel a fleet run (queued or running)")
    cancel.add_argument("run_id", metavar="ID", help="the run's id")
    _store_options(cancel)


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="the fleet's store: sqlite:PATH or postgres:DSN (a postgresql:// URI works too)",
    )
    parser.add_argument(
        "--table",
        default="cano_checkpoints",
        metavar="NAME",
        help="PostgreSQL checkpoint table (the run table is NAME_runs)",
    )


def _open(args: argparse.Namespace) -> Any:
    url = parse_store_url(args.store)
    try:
        if url.kind == "sqlite":
            from ..stores.sqlite import SqliteCheckpointStore

            return SqliteCheckpointStore(url.location)
        from ..stores.postgres import PostgresCheckpointStore

        return PostgresCheckpointStore(url.location, table=args.table)
    except CanoError as exc:
        raise CliError(str(exc)) from exc


def _registry(target: str) -> Any:
    from ..fleet import Registry

    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:REGISTRY (for example `myflows:registry`), got {target!r}")
    obj: Any = _import(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Registry):
        raise CliError(f"{target} is not a cano_dsl.fleet.Registry (got {type(obj).__name__})")
    return obj


def cmd_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``cano-dsl worker``."""
    from ..fleet import Fleet, Worker

    registry = _registry(args.target)
    store = _open(args)
    try:
        fleet = Fleet(store)
        worker = Worker(
            fleet,
            registry,
            concurrency=args.concurrency,
            lease=args.lease,
            heartbeat=args.heartbeat,
            queues=args.queue,
        )
    except CanoError as exc:
        raise CliError(str(exc)) from exc

    async def serve() -> None:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        print(f"worker {worker.worker_id}: signal {signum}, stopping", file=out)
                        worker.stop()
                        return

            tg.start_soon(on_signal)
            print(f"worker {worker.worker_id}: serving {', '.join(registry.names)}", file=out)
            out.flush()
            try:
                await worker.run(grace=args.grace)
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await fleet.aclose()
                    await store.aclose()

    anyio.run(serve, backend=args.backend)
    print(f"worker {worker.worker_id}: stopped", file=out)
    return 0


def cmd_runs_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``cano-dsl runs cancel ID``."""
    from ..fleet import Fleet, RunNotFound

    store = _open(args)

    async def go() -> Any:
        try:
            async with Fleet(store) as fleet:
                return await fleet.cancel(args.run_id)
        finally:
            await store.aclose()

    try:
        record = anyio.run(go)
    except RunNotFound as exc:
        raise CliError(str(exc), code=1) from exc
    except CanoError as exc:
        raise CliError(str(exc)) from exc
    if record.status.value == "running":
        print(f"{record.run_id}: cancellation requested (running on {record.owner})", file=out)
    else:
        print(f"{record.run_id}: {record.status.value}", file=out)
    return 0


FLEET_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "worker": cmd_worker,
    "runs cancel": cmd_runs_cancel,
}
