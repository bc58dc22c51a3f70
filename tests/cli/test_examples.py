"""examples/workflow_observer.py and examples/cli_demo.py run to completion, and the
demo module works as a `cano-dsl` target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("CLI_DEMO_FAIL", None)
    env.pop("CLI_DEMO_REJECT", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_workflow_observer_prints_events_and_health() -> None:
    proc = run(str(EXAMPLES / "workflow_observer.py"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "observer > retry  task  load (attempt 2 failed)" in out
    assert "-> workflow finished in state DONE" in out
    assert "observer > circuit open, rejecting probe" in out
    assert "-> workflow errored as expected" in out
    assert "Observer saw 10 events (1 failures)." in out
    assert "replica: degraded (replication lag 8s)" in out
    assert "-> aggregate health: unhealthy (503 from gateway)" in out


def test_cli_demo_walks_every_subcommand() -> None:
    proc = run(str(EXAMPLES / "cli_demo.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'CHECKS ==>|"join: All"| SHIP' in out
    assert "path: RECEIVE -> ROUTE -> EXPRESS -> CHECKS -> SHIP -> SHIPPED" in out
    assert "order-7      4     3         SHIP" in out
    assert "path: SHIP -> SHIPPED" in out
    assert out.rstrip().endswith("Done")
    assert "carrier API unreachable" in proc.stderr


def test_cli_demo_is_a_cano_dsl_target() -> None:
    target = f"{EXAMPLES / 'cli_demo.py'}:workflow"
    proc = run("-m", "cano_dsl", "run", target, "--initial", "RECEIVE")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "exit state: SHIPPED"
    proc = run("-m", "cano_dsl", "graph", target, "--format", "dot")
    assert '"ROUTE" -> "STANDARD";' in proc.stdout
