"""The ``cano-dsl`` command: argument parsing and the subcommands."""

from __future__ import annotations

import argparse
import enum
import functools
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import attrs

from ..stores import CheckpointRow, RowKind
from ..testing import Cancelled, Checkpoint, RecordingObserver
from ..workflow import Workflow
from ._fleet import FLEET_COMMANDS, add_fleet_parsers, fleet_records, print_record, record_state
from ._graph import build_graph, render_dot, render_mermaid
from ._load import CliError, load_workflow, resolve_state, state_enum
from ._progress import Progress
from ._stores import (
    StoreUrl,
    has_fleet_tables,
    list_runs,
    open_store,
    parse_store_url,
    run_data_json,
)

__all__ = ["build_parser", "main"]

PROG = "cano-dsl"


_TARGET_HELP = (
    "the workflow: MODULE:ATTR (for example myflows:checkout) or path/to/file.py:ATTR, "
    "where ATTR is a Workflow or a function with no arguments that returns one; a file "
    "alone (path/to/file.py) works when it holds exactly one such workflow"
)
_STORE_HELP = (
    "checkpoint store: sqlite:PATH (for example sqlite:runs.db) or postgres:DSN "
    "(for example postgres:postgresql://user@host/db)"
)


def _version() -> str:
    from .. import __version__

    return f"{PROG} {__version__}"


def _sub(
    sub: Any, name: str, help_: str, description: str, *, target: bool = False
) -> argparse.ArgumentParser:
    epilog = f"TARGET: {_TARGET_HELP}." if target else None
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_, description=description, epilog=epilog
    )
    return parser


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="do not print a progress line per state (on standard error)",
    )


def _report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="also write an HTML run report (timeline, graph, errors) to FILE",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run, check, draw, report and resume cano_dsl workflows.",
        epilog=f"TARGET: {_TARGET_HELP}. Run `{PROG} COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = _sub(
        sub,
        "run",
        "run a workflow to an exit state",
        "Run TARGET from --initial STATE to an exit state, printing a line per state "
        "on standard error as the run leaves it, then the path and the exit state. "
        "Ctrl-C stops the run (exit status 130) and says how to resume it.",
        target=True,
    )
    run.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    run.add_argument(
        "--initial",
        required=True,
        metavar="STATE",
        help="the state to start in: a member name of the workflow's Enum "
        "(a unique case-insensitive match works too)",
    )
    _backend(run)
    run.add_argument(
        "--workflow-id",
        metavar="ID",
        help="the run's id: its checkpoint log is kept under it (needed with --store)",
    )
    run.add_argument("--store", metavar="URL", help=_STORE_HELP)
    _quiet(run)
    _report(run)

    val = _sub(
        sub,
        "validate",
        "check a workflow's shape",
        "Check TARGET's shape (Workflow.validate) and print its states; warnings (a "
        "state registered twice, a state both registered and an exit state) are "
        "printed without failing.",
        target=True,
    )
    val.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    val.add_argument("--initial", metavar="STATE", help="also check that STATE can start a run")

    graph = _sub(
        sub,
        "graph",
        "draw a workflow (Mermaid or Graphviz DOT)",
        "Print TARGET's states and transitions (read statically from each task's "
        "source) as a Mermaid flowchart or a Graphviz digraph.",
        target=True,
    )
    graph.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot"),
        default="mermaid",
        help="mermaid (default) or dot",
    )

    runs = _sub(
        sub,
        "runs",
        "list, show, report and resume checkpointed runs",
        "Read the checkpoint logs a store keeps for runs that failed or were interrupted.",
    )
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    lst = _sub(
        runs_sub,
        "list",
        "the fleet's runs and the runs with a checkpoint log",
        "List the fleet's run records (when the store's database has a fleet), then "
        "the runs with a checkpoint log that are not fleet runs.",
    )
    lst.add_argument("--store", required=True, metavar="URL", help=_STORE_HELP)
    _table_option(lst)
    show = _sub(
        runs_sub,
        "show",
        "a run's record and checkpoint rows",
        "Print one run: its fleet record (when it is a fleet run), then its "
        "checkpoint rows and run data (when it has a log).",
    )
    show.add_argument("workflow_id", metavar="ID", help="the run's id")
    show.add_argument("--store", required=True, metavar="URL", help=_STORE_HELP)
    _table_option(show)
    report = _sub(
        runs_sub,
        "report",
        "write a run's log as an HTML report",
        "Write one self-contained HTML page for the run logged under ID: the states it "
        "entered, its compensation stack and step cursors, in order (checkpoint rows "
        "carry no timestamps). With TARGET the page also draws the workflow's graph.",
        target=True,
    )
    report.add_argument("workflow_id", metavar="ID", help="the run's workflow id")
    report.add_argument(
        "target",
        metavar="TARGET",
        nargs="?",
        help=f"optional: {_TARGET_HELP}",
    )
    report.add_argument("--store", required=True, metavar="URL", help=_STORE_HELP)
    report.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the page (default: ID.html in the working directory)",
    )
    resume = _sub(
        runs_sub,
        "resume",
        "resume a run from its last checkpoint",
        "Resume the run logged under ID with TARGET (Workflow.resume_from), printing a "
        "line per state like run.",
        target=True,
    )
    resume.add_argument("workflow_id", metavar="ID", help="the run's workflow id")
    resume.add_argument("target", metavar="TARGET", help=_TARGET_HELP)
    resume.add_argument("--store", required=True, metavar="URL", help=_STORE_HELP)
    _backend(resume)
    _quiet(resume)
    _report(resume)
    add_fleet_parsers(sub, runs_sub)
    return parser


def _table_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        default="cano_checkpoints",
        metavar="NAME",
        help="PostgreSQL checkpoint table (default cano_checkpoints; the fleet's run "
        "table is NAME_runs)",
    )


def _backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop to run on (default asyncio; trio needs the trio extra)",
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


class _Interrupted(Exception):
    """Ctrl-C stopped the run."""


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

    try:
        return anyio.run(go, backend=backend)
    except BaseException as exc:
        if _is_interrupt(exc):
            raise _Interrupted from None
        raise


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C: a `KeyboardInterrupt`, or one inside the exception group of a task group
    (trio delivers it to whichever task it reaches, a split branch for one)."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    inner = getattr(exc, "exceptions", None)
    return isinstance(inner, tuple) and any(
        isinstance(e, BaseException) and _is_interrupt(e) for e in inner
    )


@attrs.define
class _Session:
    """What `_finish` needs to report a run: who watched it and how to resume it."""

    wf: Workflow[Any]
    recorder: RecordingObserver
    progress: Progress | None
    resume_hint: str = ""
    """The ``runs resume`` command, when the run has a checkpoint log."""
    log_existed: bool = False
    """Resuming: the log was there before this run wrote anything."""
    report: str | None = None
    workflow_id: str | None = None


def _watch(wf: Workflow[Any], quiet: bool, err: TextIO) -> tuple[Workflow[Any], _Session]:
    recorder = RecordingObserver()
    progress = None
    wf = wf.with_observer(recorder)
    if not quiet:
        names = [m.name for m in state_enum(wf)]
        progress = Progress(err, {s.name for s in wf.exit_states}, max(map(len, names)))
        wf = wf.with_observer(progress)
    return wf, _Session(wf, recorder, progress)


def _last_state(recorder: RecordingObserver) -> str:
    cancelled = recorder.of_type(Cancelled)
    if cancelled:
        return str(cancelled[-1].state)
    states = recorder.states_entered()
    return states[-1] if states else "(none)"


def _logged(session: _Session) -> bool:
    """Whether the store holds a log this run can be resumed from."""
    return session.log_existed or bool(session.recorder.of_type(Checkpoint))


def _write_report(
    session: _Session, out: TextIO, err: TextIO, error: BaseException | None, final: Any
) -> None:
    if session.report is None:
        return
    from ..report import render

    html = render(
        session.recorder,
        workflow=session.wf,
        workflow_id=session.workflow_id,
        error=error,
        final_state=final,
    )
    try:
        Path(session.report).write_text(html, encoding="utf-8")
    except OSError as exc:
        print(f"{PROG}: cannot write the report: {exc}", file=err)
        return
    print(f"report: {session.report}", file=out)


def _finish(session: _Session, attempt: Callable[[], enum.Enum], out: TextIO, err: TextIO) -> int:
    recorder = session.recorder
    try:
        final = attempt()
    except _Interrupted:
        if session.progress is not None:
            session.progress.finish(interrupted=True)
        print(f"path: {_path(recorder)}", file=out)
        line = f"interrupted in state {_last_state(recorder)}"
        if session.resume_hint and _logged(session):
            line += f"; resume with: {session.resume_hint}"
        out.flush()
        print(line, file=err)
        _write_report(session, out, err, None, None)
        return 130
    except Exception as exc:
        if session.progress is not None:
            session.progress.finish(failed=True)
        print(f"path: {_path(recorder)}", file=out)
        print(f"{PROG}: run failed: {_describe(exc)}", file=err)
        if session.resume_hint and _logged(session):
            print(f"its checkpoint log is kept; resume it with: {session.resume_hint}", file=err)
        _write_report(session, out, err, exc, None)
        return 1
    if session.progress is not None:
        session.progress.finish()
    print(f"path: {_path(recorder)}", file=out)
    print(f"exit state: {final.name}", file=out)
    _write_report(session, out, err, None, final)
    return 0


# -- commands ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wf = load_workflow(args.target)
    initial = resolve_state(wf, args.initial)
    _check_backend(args.backend)
    store = None
    hint = ""
    workflow_id = args.workflow_id
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
        hint = f"{PROG} runs resume {workflow_id} {args.target} --store {url.text}"
    elif workflow_id is not None:
        wf = wf.with_workflow_id(workflow_id)
    for warning in wf.warnings():
        print(f"{PROG}: warning: {warning}", file=err)
    wf, session = _watch(wf, args.quiet, err)
    session.resume_hint, session.report, session.workflow_id = hint, args.report, workflow_id
    attempt = functools.partial(_drive, wf, store, args.backend, lambda w: w.orchestrate(initial))
    return _finish(session, attempt, out, err)


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
    for warning in wf.warnings():
        print(f"{PROG}: warning: {warning}", file=err)
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


def _print_logs(runs: Sequence[Any], out: TextIO) -> None:
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


def cmd_runs_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = parse_store_url(args.store)
    runs = list_runs(url, args.table)
    records = fleet_records(url, args.table) if has_fleet_tables(url, args.table) else []
    if not runs and not records:
        print(f"no runs in {url.text}", file=out)
        return 0
    if records:
        logged = {r.workflow_id: r.last_state for r in runs}
        print(f"fleet runs ({len(records)}):", file=out)
        _table(
            ("RUN_ID", "STATUS", "WORKFLOW", "QUEUE", "PRIORITY", "RECOVERIES", "STATE"),
            [
                (
                    r.run_id,
                    r.status.value,
                    r.workflow_name,
                    r.queue,
                    str(r.priority),
                    str(r.recoveries),
                    record_state(r, logged.get(r.run_id)),
                )
                for r in records
            ],
            out,
        )
        fleet_ids = {r.run_id for r in records}
        runs = [r for r in runs if r.workflow_id not in fleet_ids]
        if runs:
            print(f"checkpoint logs of other runs ({len(runs)}):", file=out)
    if runs:
        _print_logs(runs, out)
    return 0


def _blob(row: CheckpointRow, limit: int = 60) -> str:
    if row.output_blob is None:
        return "-"
    text = row.output_blob.decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_rows(
    url: StoreUrl, workflow_id: str, table: str = "cano_checkpoints"
) -> list[CheckpointRow]:
    store = open_store(url, must_exist=True, table=table)

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
    records = (
        fleet_records(url, args.table, args.workflow_id)
        if has_fleet_tables(url, args.table)
        else []
    )
    rows = _load_rows(url, args.workflow_id, args.table)
    if records:
        print_record(records[0], out)
        if not rows:
            return 0
    elif not rows:
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
    wf = wf.with_checkpoint_store(store).with_workflow_id(workflow_id)
    wf, session = _watch(wf, args.quiet, err)
    session.resume_hint = f"{PROG} runs resume {workflow_id} {args.target} --store {url.text}"
    session.log_existed, session.report, session.workflow_id = True, args.report, workflow_id
    print(f"resuming: {workflow_id}", file=out)
    attempt = functools.partial(
        _drive, wf, store, args.backend, lambda w: w.resume_from(workflow_id)
    )
    return _finish(session, attempt, out, err)


def _report_path(workflow_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in workflow_id)
    return f"{safe or 'run'}.html"


def cmd_runs_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    url = parse_store_url(args.store)
    wf = load_workflow(args.target) if args.target is not None else None
    rows = _load_rows(url, args.workflow_id)
    if not rows:
        raise CliError(
            f"no checkpoint log for workflow id {args.workflow_id!r} in {url.text} (a run "
            "that reached an exit state clears its log; use `run --report FILE` to keep "
            "a report of every run)",
            1,
        )
    from ..report import render

    html = render(rows=rows, workflow=wf, workflow_id=args.workflow_id)
    path = args.output or _report_path(args.workflow_id)
    try:
        Path(path).write_text(html, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}", 1) from exc
    print(f"report: {path} ({len(rows)} rows)", file=out)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "run": cmd_run,
    "validate": cmd_validate,
    "graph": cmd_graph,
    "runs list": cmd_runs_list,
    "runs show": cmd_runs_show,
    "runs resume": cmd_runs_resume,
    "runs report": cmd_runs_report,
    **FLEET_COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 a failed workflow or
    check, 2 bad input, 130 interrupted by Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command == "runs":
        command = f"runs {args.runs_command}"
    out, err = sys.stdout, sys.stderr
    # the commands print Workflow.warnings() themselves; without a logging setup of the
    # caller's, validate()'s log records would print them a second time
    workflow_log = logging.getLogger("cano_dsl.workflow")
    if not workflow_log.hasHandlers():
        workflow_log.addHandler(logging.NullHandler())
    try:
        return _COMMANDS[command](args, out, err)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return exc.code
    except BaseException as exc:
        if not _is_interrupt(exc):
            raise
        print(f"{PROG}: interrupted", file=err)
        return 130
