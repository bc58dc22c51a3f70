"""The cano-dsl command line, driven as users drive it: `python -m cano_dsl ...` in a
subprocess, on the workflows of flows.py and a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    for key in ("CANO_CLI_FAIL", "CANO_CLI_SLOW"):
        full.pop(key, None)
    full["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cano_dsl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        cwd=cwd,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def fails(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    return proc.stderr


# -- run -----------------------------------------------------------------------------------


def test_run_prints_the_path_and_the_exit_state() -> None:
    out = ok(cli("run", "flows:pipeline", "--initial", "START"))
    assert out.splitlines() == [
        "path: START -> CHECK -> FAST -> FAN -> MERGE -> DONE",
        "exit state: DONE",
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_takes_a_factory_a_backend_and_a_case_insensitive_state(backend: str) -> None:
    out = ok(
        cli(
            "run",
            "flows:build_pipeline",
            "--initial",
            "start",
            "--backend",
            backend,
            env={"CANO_CLI_SLOW": "1"},
        )
    )
    assert "path: START -> CHECK -> SLOW -> FAN -> MERGE -> DONE" in out


def test_run_accepts_a_file_path_target(tmp_path: Path) -> None:
    out = ok(cli("run", f"{HERE / 'flows.py'}:payments", "--initial", "START", cwd=tmp_path))
    assert "exit state: DONE" in out


def test_a_failing_run_exits_1_with_the_error_and_the_path_so_far() -> None:
    proc = cli("run", "flows:payments", "--initial", "START", env={"CANO_CLI_FAIL": "1"})
    fails(proc, 1, "run failed: StateFailure", "payment gateway down")
    assert proc.stdout.splitlines() == ["path: START -> CHARGE"]


def test_run_without_workflow_id_on_a_store_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    fails(
        cli("run", "flows:payments", "--initial", "START", "--store", f"sqlite:{db}"),
        2,
        "--store needs --workflow-id",
    )


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("flowspipeline", "expected MODULE:ATTR"),
        ("no_such_module:wf", "cannot import module 'no_such_module'"),
        (
            "flows:nope",
            "module 'flows' has no attribute 'nope'; workflows there: hanging_split, no_exit",
        ),
        ("flows:not_a_workflow", "is not a Workflow or a function returning one (got int)"),
        (
            "flows:needs_argument",
            "flows:needs_argument takes arguments (x: int) and the CLI calls a factory with "
            "none; expose one in flows, for example `def cli_workflow(): return "
            "needs_argument(x=...)`, and pass flows:cli_workflow",
        ),
        ("flows:returns_other", "did not return a Workflow (got int)"),
        ("missing/file.py:wf", "no such file"),
    ],
)
def test_a_bad_target_exits_2_saying_why(target: str, needle: str) -> None:
    fails(cli("run", target, "--initial", "START"), 2, "cano-dsl: error:", needle)


def test_an_unknown_state_exits_2_listing_the_states() -> None:
    fails(
        cli("run", "flows:pipeline", "--initial", "BOGUS"),
        2,
        "unknown state 'BOGUS' for Step; states: START, CHECK, FAST",
    )


@pytest.mark.parametrize("url", ["mysql:db", "sqlite:", "runs.db", "postgres:"])
def test_a_bad_store_url_exits_2(url: str) -> None:
    fails(
        cli("run", "flows:payments", "--initial", "START", "--store", url, "--workflow-id", "x"),
        2,
        f"bad store URL {url!r}",
    )


def test_missing_arguments_are_usage_errors() -> None:
    fails(cli("run", "flows:pipeline"), 2, "--initial")
    fails(cli(), 2, "COMMAND")


# -- validate ------------------------------------------------------------------------------


def test_validate_reports_the_states() -> None:
    out = ok(cli("validate", "flows:pipeline", "--initial", "CHECK"))
    assert out.splitlines() == [
        "ok: Step workflow",
        "states: START, CHECK, FAST, SLOW, FAN, MERGE",
        "exit states: DONE, FAILED",
        "initial state: CHECK",
    ]


def test_validate_fails_with_the_configuration_error() -> None:
    fails(cli("validate", "flows:no_exit"), 1, "invalid workflow", "no exit states")


def test_validate_rejects_an_unregistered_initial_state() -> None:
    fails(
        cli("validate", "flows:payments", "--initial", "FAN"),
        1,
        "Initial state FAN is neither registered nor an exit state",
    )


# -- graph ---------------------------------------------------------------------------------


def test_graph_mermaid_draws_inferred_edges_splits_routers_and_exits() -> None:
    out = ok(cli("graph", "flows:pipeline"))
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == "flowchart TD"
    for expected in [
        'START["START"]',
        'CHECK{"CHECK"}',
        'FAN[["FAN<br/><i>split x2</i>"]]',
        'DONE(["DONE"])',
        'FAILED(["FAILED"])',
        "START --> CHECK",  # function body
        "CHECK --> FAST",  # router method
        "CHECK --> SLOW",
        "FAST --> FAN",  # state held in the task's attributes
        "SLOW --> FAN",
        'FAN ==>|"join: All"| MERGE',  # split -> join
        "MERGE --> DONE",  # class method
        "MERGE --> FAILED",
        "class CHECK router",
        "class FAN split",
        "class DONE,FAILED exit",
    ]:
        assert expected in lines, f"{expected!r} not in:\n{out}"
    # split branches do not route, and CHARGE is not part of this workflow
    assert "FAN --> MERGE" not in lines
    assert not any("CHARGE" in line for line in lines)


def test_graph_dot_is_a_digraph_with_the_same_edges() -> None:
    out = ok(cli("graph", "flows:pipeline", "--format", "dot"))
    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == 'digraph "Step" {'
    assert lines[-1] == "}"
    for expected in [
        '"CHECK" [shape=diamond, style=filled, fillcolor="#fff4cc"];',
        '"DONE" [shape=doublecircle, style=filled, fillcolor="#d4f4dd"];',
        '"START" -> "CHECK";',
        '"CHECK" -> "SLOW";',
        '"FAN" -> "MERGE" [style=bold, label="join: All"];',
        '"MERGE" -> "FAILED";',
    ]:
        assert expected in lines, f"{expected!r} not in:\n{out}"


def test_graph_rejects_an_unknown_format() -> None:
    fails(cli("graph", "flows:pipeline", "--format", "svg"), 2, "invalid choice")


# -- runs: a real SQLite file ----------------------------------------------------------------


def test_runs_list_show_and_resume_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = f"sqlite:{db}"
    failed = cli(
        "run",
        "flows:payments",
        "--initial",
        "START",
        "--store",
        store,
        "--workflow-id",
        "pay-1",
        env={"CANO_CLI_FAIL": "1"},
    )
    fails(
        failed,
        1,
        "payment gateway down",
        f"cano-dsl runs resume pay-1 flows:payments --store {store}",
    )
    assert failed.stdout.splitlines()[0] == "workflow id: pay-1"

    listed = ok(cli("runs", "list", "--store", store)).splitlines()
    assert listed[0].split() == [
        "WORKFLOW_ID",
        "ROWS",
        "LAST_SEQ",
        "LAST_STATE",
        "LAST_KIND",
        "VERSION",
    ]
    assert listed[1].split() == ["pay-1", "2", "1", "CHARGE", "state_entry", "0"]

    shown = ok(cli("runs", "show", "pay-1", "--store", store)).splitlines()
    assert shown[0] == "workflow id: pay-1 (2 rows)"
    assert [line.split() for line in shown[1:]] == [
        ["SEQ", "KIND", "STATE", "TASK_ID", "VERSION", "OUTPUT"],
        ["0", "state_entry", "START", "reserve", "0", "-"],
        ["1", "state_entry", "CHARGE", "charge", "0", "-"],
    ]

    resumed = ok(cli("runs", "resume", "pay-1", "flows:payments", "--store", store))
    assert resumed.splitlines() == ["resuming: pay-1", "path: CHARGE -> DONE", "exit state: DONE"]
    # a completed run clears its log
    assert ok(cli("runs", "list", "--store", store)).strip() == f"no runs in {store}"
    fails(
        cli("runs", "show", "pay-1", "--store", store),
        1,
        "no checkpoint log for workflow id 'pay-1'",
    )


def test_a_successful_run_on_a_store_leaves_no_log(tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'ok.db'}"  # sqlite:///abs/path form
    out = ok(
        cli("run", "flows:payments", "--initial", "START", "--store", store, "--workflow-id", "p")
    )
    assert out.splitlines() == [
        "workflow id: p",
        "path: START -> CHARGE -> DONE",
        "exit state: DONE",
    ]
    assert "no runs" in ok(cli("runs", "list", "--store", store))


def test_resume_of_an_unknown_id_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    ok(
        cli(
            "run",
            "flows:payments",
            "--initial",
            "START",
            "--store",
            f"sqlite:{db}",
            "--workflow-id",
            "a",
        )
    )
    fails(
        cli("runs", "resume", "ghost", "flows:payments", "--store", f"sqlite:{db}"),
        1,
        "no checkpoint log for workflow id 'ghost'",
    )


def test_runs_on_a_missing_or_foreign_file_fail_clearly(tmp_path: Path) -> None:
    fails(
        cli("runs", "list", "--store", f"sqlite:{tmp_path / 'none.db'}"),
        2,
        "no such SQLite checkpoint file",
    )
    fails(
        cli("runs", "show", "x", "--store", f"sqlite:{tmp_path / 'none.db'}"), 2, "no such SQLite"
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    fails(
        cli("runs", "list", "--store", f"sqlite:{junk}"),
        1,
        "not a readable cano_dsl checkpoint database",
    )
    fails(cli("runs", "show", "x", "--store", f"sqlite:{junk}"), 1, "CheckpointStoreError")


# -- runs: PostgreSQL (when a server is configured) -----------------------------------------


@pytest.mark.postgres
def test_runs_list_show_and_resume_on_postgres() -> None:
    dsn = os.environ.get("CANO_DSL_TEST_POSTGRES_DSN")
    if not dsn:
        pytest.skip("set CANO_DSL_TEST_POSTGRES_DSN (bash .ci/run starts a server)")
    store = f"postgres:{dsn}"
    wid = f"cli-{uuid.uuid4().hex[:12]}"
    fails(
        cli(
            "run",
            "flows:payments",
            "--initial",
            "START",
            "--store",
            store,
            "--workflow-id",
            wid,
            env={"CANO_CLI_FAIL": "1"},
        ),
        1,
        "payment gateway down",
    )
    rows = [line.split() for line in ok(cli("runs", "list", "--store", store)).splitlines()]
    assert [wid, "2", "1", "CHARGE", "state_entry", "0"] in rows
    assert "CHARGE" in ok(cli("runs", "show", wid, "--store", dsn))
    out = ok(cli("runs", "resume", wid, "flows:payments", "--store", store))
    assert "exit state: DONE" in out
    assert wid not in ok(cli("runs", "list", "--store", store))


# -- entry points ---------------------------------------------------------------------------


def test_help_lists_the_subcommands() -> None:
    out = ok(cli("--help"))
    for word in ("run", "validate", "graph", "runs"):
        assert word in out


def test_main_returns_the_exit_status_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(HERE))
    try:
        from cano_dsl.cli import main

        assert main(["validate", "flows:pipeline"]) == 0
        assert main(["validate", "flows:no_exit"]) == 1
        assert main(["run", "flows:pipeline", "--initial", "NOPE"]) == 2
    finally:
        sys.path.remove(str(HERE))
    captured = capsys.readouterr()
    assert "ok: Step workflow" in captured.out
    assert "unknown state 'NOPE'" in captured.err


def test_the_console_script_is_declared_and_runs(tmp_path: Path) -> None:
    import shutil
    from importlib import metadata

    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    if "cano-dsl" not in scripts:
        pytest.skip("cano-dsl is not installed (pip install -e .)")
    assert scripts["cano-dsl"] == "cano_dsl.cli:main"
    exe = shutil.which("cano-dsl")
    if exe is None:
        pytest.skip("the cano-dsl script is not on PATH")
    (tmp_path / "here.py").write_text((HERE / "flows.py").read_text())
    proc = subprocess.run(
        [exe, "run", "here:payments", "--initial", "START"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # a console script imports from the working directory too
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "exit state: DONE"
