"""The CLI talks: --version, help for every argument, a progress line per state,
Ctrl-C (a real SIGINT to the child) and resume hints only where a log was written,
examples as targets, and run reports. Every test runs `python -m cano_dsl` as a
subprocess, as a user does."""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import cano_dsl
from cano_dsl.cli._main import build_parser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLES = ROOT / "examples"
PROGRESS = re.compile(r"^  (\w+) +(?:attempt (\d+) +(\S+ \S+)(?:  (.*))?|exit +total \S+ \S+)$")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    for key in ("CANO_CLI_FAIL", "CANO_CLI_SLOW", "CANO_CLI_HANG"):
        full.pop(key, None)
    full["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cano_dsl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def fails(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


def progress(stderr: str) -> list[tuple[str, str, str]]:
    """(state, attempt or "exit", status) per progress line."""
    found = []
    for line in stderr.splitlines():
        m = PROGRESS.match(line)
        if m:
            found.append((m.group(1), m.group(2) or "exit", m.group(4) or ""))
    return found


# -- --version and help --------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    assert ok(cli("--version")).strip() == f"cano-dsl {cano_dsl.__version__}"


def _parsers(parser: argparse.ArgumentParser, name: str = "") -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _parsers(sub, f"{name} {sub_name}".strip())
    return found


def test_every_argument_has_a_help_text() -> None:
    missing = []
    for name, parser in _parsers(build_parser()):
        assert isinstance(parser, argparse.ArgumentParser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{name or 'cano-dsl'}: {action.dest}")
    assert not missing, missing


@pytest.mark.parametrize(
    "command",
    [["run"], ["validate"], ["graph"], ["runs", "resume"], ["runs", "report"]],
)
def test_each_subcommand_taking_a_target_explains_it(command: list[str]) -> None:
    out = ok(cli(*command, "--help"))
    flat = " ".join(out.split())
    assert "TARGET: the workflow: MODULE:ATTR" in flat
    assert "a function with no arguments that returns one" in flat


# -- progress lines ------------------------------------------------------------------------


def test_run_prints_a_progress_line_per_state_on_stderr() -> None:
    proc = cli("run", "flows:pipeline", "--initial", "START")
    assert ok(proc).splitlines()[-1] == "exit state: DONE"
    assert progress(proc.stderr) == [
        ("START", "1", ""),
        ("CHECK", "1", ""),
        ("FAST", "1", ""),
        ("FAN", "1", "split x2"),
        ("MERGE", "1", ""),
        ("DONE", "exit", ""),
    ]


def test_a_retried_state_shows_the_attempt_it_succeeded_on() -> None:
    proc = cli("run", "flows:retrying", "--initial", "START")
    ok(proc)
    assert progress(proc.stderr) == [("START", "1", ""), ("CHARGE", "3", ""), ("DONE", "exit", "")]


def test_a_failed_state_is_marked_failed() -> None:
    proc = cli("run", "flows:payments", "--initial", "START", env={"CANO_CLI_FAIL": "1"})
    fails(proc, 1, "payment gateway down")
    assert progress(proc.stderr) == [("START", "1", ""), ("CHARGE", "1", "failed")]


def test_quiet_silences_the_progress_lines() -> None:
    proc = cli("run", "flows:pipeline", "--initial", "START", "--quiet")
    ok(proc)
    assert proc.stderr == ""


def test_resume_prints_progress_lines_too(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'r.db'}"
    args = ("--store", store, "--workflow-id", "r-1")
    fails(cli("run", "flows:payments", "--initial", "START", *args, env={"CANO_CLI_FAIL": "1"}), 1)
    proc = cli("runs", "resume", "r-1", "flows:payments", "--store", store)
    assert ok(proc).splitlines()[-1] == "exit state: DONE"
    assert progress(proc.stderr) == [("CHARGE", "1", ""), ("DONE", "exit", "")]


# -- Ctrl-C --------------------------------------------------------------------------------


def first_line(stream: Any, deadline: float = 60.0) -> str:
    """The first line of a child's pipe, or "" when none comes within ``deadline`` s."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout=deadline):
            return ""
    line: str = stream.readline()
    return line


def interrupt(*args: str) -> subprocess.CompletedProcess[str]:
    """Start the CLI on a run that hangs in CHARGE, wait for START's progress line, send
    SIGINT (what Ctrl-C sends) and collect the result."""
    env = dict(os.environ)
    env.pop("CANO_CLI_FAIL", None)
    env["CANO_CLI_HANG"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    child = subprocess.Popen(
        [sys.executable, "-m", "cano_dsl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stderr is not None
        first = first_line(child.stderr)
        assert first.startswith("  START"), first
        time.sleep(0.3)  # well inside CHARGE's 600 s sleep
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, out, first + err)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_exits_130_with_one_line_and_a_resume_hint(tmp_path: Path, backend: str) -> None:
    store = f"sqlite:{tmp_path / 'c.db'}"
    proc = interrupt(
        "run", "flows:payments", "--initial", "START", "--store", store,
        "--workflow-id", "c-1", "--backend", backend,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    hint = f"cano-dsl runs resume c-1 flows:payments --store {store}"
    assert proc.stderr.splitlines()[-1] == f"interrupted in state CHARGE; resume with: {hint}"
    assert ("CHARGE", "1", "interrupted") in progress(proc.stderr)
    # the hint works: the log was kept, and resuming finishes the run
    assert ok(cli("runs", "resume", "c-1", "flows:payments", "--store", store)).endswith(
        "exit state: DONE\n"
    )


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ctrl_c_in_a_split_exits_130_without_a_traceback(backend: str) -> None:
    # trio raises KeyboardInterrupt in whichever task it reaches: here a split branch,
    # whose task group wraps it in an exception group
    proc = interrupt("run", "flows:hanging_split", "--initial", "START", "--backend", backend)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "interrupted in state FAN"
    assert ("FAN", "1", "split x2, interrupted") in progress(proc.stderr)


def test_ctrl_c_without_a_store_gives_no_resume_hint() -> None:
    proc = interrupt("run", "flows:payments", "--initial", "START")
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1] == "interrupted in state CHARGE"
    assert "Traceback" not in proc.stderr


def test_ctrl_c_during_resume_repeats_the_resume_hint(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'r.db'}"
    args = ("--store", store, "--workflow-id", "r-2")
    fails(cli("run", "flows:payments", "--initial", "START", *args, env={"CANO_CLI_FAIL": "1"}), 1)
    env = dict(os.environ, CANO_CLI_HANG="1", PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    child = subprocess.Popen(
        [sys.executable, "-m", "cano_dsl", "runs", "resume", "r-2", "flows:payments", "--store",
         store],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert first_line(child.stdout) == "resuming: r-2\n"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, out + err
    assert err.splitlines()[-1] == (
        "interrupted in state CHARGE; resume with: cano-dsl runs resume r-2 flows:payments "
        f"--store {store}"
    )


def test_a_corrupt_store_gets_no_resume_hint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    proc = cli(
        "run", "flows:payments", "--initial", "START", "--store", f"sqlite:{junk}",
        "--workflow-id", "j",
    )  # fmt: skip
    fails(proc, 1, "not a SQLite database")
    assert "resume" not in proc.stderr


def test_an_unreachable_store_gets_no_resume_hint() -> None:
    proc = cli(
        "run", "flows:payments", "--initial", "START", "--store",
        "postgres:postgresql://nobody@127.0.0.1:1/none?connect_timeout=5", "--workflow-id", "u",
    )  # fmt: skip
    if "psycopg" in proc.stderr and "pip install" in proc.stderr:
        pytest.skip("psycopg is not installed")
    fails(proc, 1, "cannot connect")
    assert "resume" not in proc.stderr


# -- examples as targets ---------------------------------------------------------------------


def test_an_example_file_alone_runs_its_only_workflow() -> None:
    proc = cli("run", str(EXAMPLES / "cli_demo.py"), "--initial", "RECEIVE")
    assert ok(proc).splitlines()[-1] == "exit state: SHIPPED"


def test_an_example_factory_with_arguments_says_how_to_expose_one() -> None:
    target = f"{EXAMPLES / 'saga_payment.py'}:workflow"
    fails(
        cli("run", target, "--initial", "X"),
        2,
        f"{target} takes arguments (carrier_up: bool) and the CLI calls a factory with none",
        "def cli_workflow(): return workflow(carrier_up=...)",
        f"pass {EXAMPLES / 'saga_payment.py'}:cli_workflow",
    )


def test_an_example_file_without_a_factory_at_module_level_says_so() -> None:
    target = str(EXAMPLES / "workflow_simple.py")
    fails(
        cli("run", target, "--initial", "X"),
        2,
        f"{target} has no module-level Workflow and no function returning one",
    )
    fails(cli("run", str(EXAMPLES / "demo.py"), "--initial", "X"), 2, "build takes arguments")


# -- reports ---------------------------------------------------------------------------------


def test_runs_report_writes_a_page_from_the_log(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'p.db'}"
    args = ("--store", store, "--workflow-id", "pay-9")
    fails(cli("run", "flows:payments", "--initial", "START", *args, env={"CANO_CLI_FAIL": "1"}), 1)
    page = tmp_path / "pay.html"
    out = ok(cli("runs", "report", "pay-9", "flows:payments", "--store", store, "-o", str(page)))
    assert out.strip() == f"report: {page} (2 rows)"
    html = page.read_text("utf-8")
    assert 'id="graph"' in html and "id='timeline'" in html
    assert "Not finished: the log stops in state CHARGE" in html
    assert "no timestamps" in html
    # without TARGET, only the states the log names are drawn
    ok(cli("runs", "report", "pay-9", "--store", store, "-o", str(tmp_path / "bare.html")))
    assert 'data-state="DONE"' in html
    assert 'data-state="DONE"' not in (tmp_path / "bare.html").read_text("utf-8")


def test_runs_report_of_an_unknown_run_exits_1(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'p.db'}"
    ok(cli("run", "flows:payments", "--initial", "START", "--store", store, "--workflow-id", "a"))
    fails(cli("runs", "report", "ghost", "--store", store), 1, "no checkpoint log")


def test_run_report_writes_a_timed_page(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    proc = cli("run", "flows:retrying", "--initial", "START", "--quiet", "--report", str(page))
    assert ok(proc).splitlines()[-1] == f"report: {page}"
    html = page.read_text("utf-8")
    assert "Completed in exit state DONE" in html
    assert html.count('class="seg failed"') == 2  # CHARGE's two failed attempts
    assert html.count('class="seg wait"') == 2  # and the waits before its retries


# -- validate warnings -----------------------------------------------------------------------


def test_validate_prints_warnings_and_still_passes() -> None:
    proc = cli("validate", "flows:twice")
    assert ok(proc).splitlines()[0] == "ok: Step workflow"
    assert proc.stderr.splitlines() == [
        "cano-dsl: warning: CHARGE was registered twice: charge replaced by done",
        "cano-dsl: warning: DONE is both registered and an exit state: a run stops when it "
        "enters it and its task never runs",
    ]


def test_run_prints_the_warnings_once_before_the_progress_lines() -> None:
    proc = cli("run", "flows:twice", "--initial", "START")
    ok(proc)
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert proc.stderr.splitlines()[:2] == warnings
