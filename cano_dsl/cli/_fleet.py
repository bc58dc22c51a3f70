"""The fleet's subcommands: ``cano-dsl worker`` and ``cano-dsl runs cancel``."""

from __future__ import annotations

import argparse
import datetime
import json
import signal
from collections.abc import Callable
from typing import Any, TextIO

import anyio

from .._errors import CanoError
from ._load import CliError, _import
from ._stores import StoreUrl, parse_store_url

__all__ = ["FLEET_COMMANDS", "add_fleet_parsers", "fleet_records", "print_record"]


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


def fleet_records(url: StoreUrl, table: str, run_id: str | None = None) -> list[Any]:
    """The fleet's run records (`Fleet.list`, every page, oldest enqueued first), or
    with ``run_id`` the one record `Fleet.get` finds (an empty list when none)."""
    from ..fleet import Fleet, RunNotFound
    from ._stores import open_store

    store = open_store(url, must_exist=True, table=table)

    async def go() -> list[Any]:
        try:
            async with Fleet(store) as fleet:
                if run_id is not None:
                    try:
                        return [await fleet.get(run_id)]
                    except RunNotFound:
                        return []
                records: list[Any] = []
                while True:
                    page = await fleet.list(limit=1000, offset=len(records))
                    records.extend(page)
                    if len(page) < 1000:
                        return records
        finally:
            await store.aclose()

    try:
        return anyio.run(go)
    except CanoError as exc:
        raise CliError(str(exc), 1) from exc


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_state(record: Any, last_logged: str | None = None) -> str:
    """What ``runs list`` shows in ``STATE``: the exit state of a run that succeeded,
    the state a failed run failed in, else the last state in the run's checkpoint log
    (``last_logged``, when it has one), else the state it was queued at."""
    return str(record.exit_state or record.error_state or last_logged or record.initial_state)


def print_record(record: Any, out: TextIO) -> None:
    """``runs show`` of a fleet run: its record, one ``field: value`` line each."""
    version = "newest" if record.workflow_version is None else str(record.workflow_version)
    lines = [
        ("run id", record.run_id),
        ("status", record.status.value),
        ("workflow", f"{record.workflow_name} (version {version})"),
        ("queue", f"{record.queue} (priority {record.priority})"),
        ("initial state", record.initial_state),
        ("created", _when(record.created_at)),
        ("started", _when(record.started_at)),
        ("finished", _when(record.finished_at)),
        ("owner", record.owner or "-"),
        ("lease expires", _when(record.lease_expires)),
        ("epoch", str(record.epoch)),
        ("recoveries", str(record.recoveries)),
    ]
    if record.cancel_requested:
        lines.append(("cancel requested", "yes"))
    if record.exit_state is not None:
        lines.append(("exit state", record.exit_state))
    if record.error_category is not None:
        lines.append(("error", f"{record.error_category}: {record.error_message}"))
        lines.append(("error state", record.error_state or "-"))
    width = max(len(k) for k, _ in lines) + 1
    for key, value in lines:
        print(f"{key + ':':<{width}} {value}", file=out)
    print("data:", file=out)
    print(json.dumps(record.data, indent=2, ensure_ascii=False, sort_keys=True), file=out)
    if record.status.value == "succeeded":
        print("result data:", file=out)
        print(
            json.dumps(record.result_data, indent=2, ensure_ascii=False, sort_keys=True),
            file=out,
        )


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
