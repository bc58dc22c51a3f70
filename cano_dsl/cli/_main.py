"""The ``cano-dsl`` command: argument parsing and the subcommands."""

from __future__ import annotations

import argparse
import enum
import functools
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import anyio

from ..stores import CheckpointRow, RowKind
from ..testing import RecordingObserver
from ..workflow import Workflow
from ._graph import build_graph, render_dot, render_mermaid
from ._load import CliError, load_workflow, resolve_state, state_enum
from ._stores import StoreUrl, list_runs, open_store, parse_store_url, run_data_json

__all__ = ["build_parser", "main"]

PROG = "cano-dsl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run, check, draw and resume cano_dsl workflows.",
        epilog="TARGET is MODULE:ATTR (or path/to/file.py:ATTR); ATTR names a Workflow "
        "or a function with no arguments that returns one.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a workflow to an exit state")
    run.add_argument("target", metavar="TARGET")
    run.add_argument("--initial", required=True, metavar="STATE", help="the state to start in")
    _backend(run)
    run.add_argument("--workflow-id", metavar="ID", help="the run's id (needed with --store)")
    run.add_argument("--store", metavar="URL", help="checkpoint store: sqlite:PATH or postgres:DSN")

    val = sub.add_parser("validate", help="check a workflow's shape")
    val.add_argument("target", metavar="TARGET")
    val.add_argument("--initial", metavar="STATE", help="also check this initial state")

    graph = sub.add_parser("graph", help="draw a workflow (Mermaid or Graphviz DOT)")
    graph.add_argument("target", metavar="TARGET")
    graph.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")

    runs = sub.add_parser("runs", help="list, show and resume checkpointed runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    lst = runs_sub.add_parser("list", help="the runs with a checkpoint log")
    lst.add_argument("--store", required=True, metavar="URL")
    show = runs_sub.add_parser("show", help="a run's checkpoint rows")
    show.add_argument("workflow_id", metavar="ID")
    show.add_argument("--store", required=True, metavar="URL")
    resume = runs_sub.add_parser("resume", help="resume a run from its last checkpoint")
    resume.add_argument("workflow_id", metavar="ID")
    resume.add_argument("target", metavar="TARGET")
    resume.add_argument("--store", required=True, metavar="URL")
    _backend(resume)
    return parser


def _backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop to run on"
    )


# -- helpers ---------------------------------------------------------------------------


def _check_backend(backend: str) -> None:
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise CliError("--backend trio needs trio: pip install 'cano-dsl[trio]'")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    for line in (headers, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)


def _path(recorder: RecordingObserver) -> str:
    return " -> ".join(recorder.states_entered()) or "(no state entered)"


def _drive(
    wf: Workflow[Any],
    store: Any,
    backend: str,
    start: Callable[[Workflow[Any]], Any],
) -> enum.Enum:
    async def go() -> enum.Enum:
        try:
            result: enum.Enum = await start(wf)
            return result
        finally:
            if store is not None:
                with anyio.CancelScope(shield=True):
                    await store.aclose()

    return anyio.run(go, backend=backend)


def _finish(
    recorder: RecordingObserver,
    attempt: Callable[[], enum.Enum],
    out: TextIO,
    err: TextIO,
    on_failure: str = "",
) -> int:
    try:
        final = attempt()
    except Exception as exc:
        print(f"path: {_path(recorder)}", file=out)
        print(f"{PROG}: run failed: {_describe(exc)}", file=err)
        if on_failure:
            print(on_failure, file=err)
        return 1
    print(f"path: {_path(recorder)}", file=out)
    print(f"exit state: {final.name}", file=out)
    return 0


# -- commands ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wf = load_workflow(args.target)
    initial = resolve_state(wf, args.initial)
    _check_backend(args.backend)
    recorder = RecordingObserver()
    wf = wf.with_observer(recorder)
    store = None
    hint = ""
    if args.store is not None:
        url = parse_store_url(args.store)
        workflow_id = args.workflow_id if args.workflow_id is not None else wf.workflow_id
        if workflow_id is None:
            raise CliError(
                "--store needs --workflow-id ID: the id the run is logged (and resumed) under"
            )
        store = open_store(url)
        wf = wf.with_checkpoint_store(store).with_workflow_id(workflow_id)
        print(f"workflow id: {workflow_id}", file=out)
        hint = (
            f"its checkpoint log is kept; resume it with: {PROG} runs resume "
            f"{workflow_id} {args.target} --store {url.text}"
        )
    elif args.workflow_id is not None:
        wf = wf.with_workflow_id(args.workflow_id)
    attempt = functools.partial(_drive, wf, store, args.backend, lambda w: w.orchestrate(initial))
    return _finish(recorder, attempt, out, err, hint)


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wf = load_workflow(args.target)
    initial = resolve_state(wf, args.initial) if args.initial is not None else None
    try:
        wf.validate()
        if initial is not None:
            wf.validate_initial_state(initial)
    except Exception as exc:
        print(f"{PROG}: invalid workflow: {exc}", file=err)
        return 1
    states = ", ".join(s.name for s in wf.registered_states())
    exits = ", ".join(s.name for s in wf.exit_states)
    print(f"ok: {state_enum(wf).__name__} workflow", file=out)
    print(f"states: {states}", file=out)
    print(f"exit states: {exits}", file=out)
    if initial is not None:
        print(f"initial state: {initial.name}", file=out)
    return 0


def cmd_graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    graph = build_graph(load_workflow(args.target))
    render = render_dot if args.format == "dot" else render_mermaid
    out.write(render(graph))
    return 0


def _kind_name(kind: int) -> str:
    try:
        return RowKind(kind).name.lower()
    except ValueError:
        return str(kind)


def cmd_runs_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = parse_store_url(args.store)
    runs = list_runs(url)
    if not runs:
        print(f"no runs in {url.text}", file=out)
        return 0
    _table(
        ("WORKFLOW_ID", "ROWS", "LAST_SEQ", "LAST_STATE", "LAST_KIND", "VERSION"),
        [
            (
                r.workflow_id,
                str(r.rows),
                str(r.last_sequence),
                r.last_state,
                _kind_name(r.last_kind),
                str(r.workflow_version),
            )
            for r in runs
        ],
        out,
    )
    return 0


def _blob(row: CheckpointRow, limit: int = 60) -> str:
    if row.output_blob is None:
        return "-"
    text = row.output_blob.decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_rows(url: StoreUrl, workflow_id: str) -> list[CheckpointRow]:
    store = open_store(url, must_exist=True)

    async def go() -> list[CheckpointRow]:
        try:
            rows: list[CheckpointRow] = await store.load_run(workflow_id)
            return rows
        finally:
            await store.aclose()

    try:
        return anyio.run(go)
    except Exception as exc:
        raise CliError(_describe(exc), 1) from exc


def cmd_runs_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = parse_store_url(args.store)
    rows = _load_rows(url, args.workflow_id)
    if not rows:
        raise CliError(f"no checkpoint log for workflow id {args.workflow_id!r} in {url.text}", 1)
    print(f"workflow id: {args.workflow_id} ({len(rows)} rows)", file=out)
    _table(
        ("SEQ", "KIND", "STATE", "TASK_ID", "VERSION", "OUTPUT"),
        [
            (
                str(r.sequence),
                r.kind.name.lower(),
                r.state,
                r.task_id or "-",
                str(r.workflow_version),
                _blob(r),
            )
            for r in rows
        ],
        out,
    )
    data = run_data_json(rows)
    if data is not None:
        print("run data (as of the last row):", file=out)
        print(data, file=out)
    return 0


def cmd_runs_resume(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = parse_store_url(args.store)
    wf = load_workflow(args.target)
    _check_backend(args.backend)
    workflow_id = args.workflow_id
    if not _load_rows(url, workflow_id):
        raise CliError(f"no checkpoint log for workflow id {workflow_id!r} in {url.text}", 1)
    store = open_store(url, must_exist=True)
    recorder = RecordingObserver()
    wf = wf.with_observer(recorder).with_checkpoint_store(store).with_workflow_id(workflow_id)
    print(f"resuming: {workflow_id}", file=out)
    attempt = functools.partial(
        _drive, wf, store, args.backend, lambda w: w.resume_from(workflow_id)
    )
    return _finish(recorder, attempt, out, err)


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "run": cmd_run,
    "validate": cmd_validate,
    "graph": cmd_graph,
    "runs list": cmd_runs_list,
    "runs show": cmd_runs_show,
    "runs resume": cmd_runs_resume,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 a failed workflow or
    check, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command == "runs":
        command = f"runs {args.runs_command}"
    out, err = sys.stdout, sys.stderr
    try:
        return _COMMANDS[command](args, out, err)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return exc.code
