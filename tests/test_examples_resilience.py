"""The circuit_breaker and observer_metrics examples run to completion as scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECT = {
    "circuit_breaker": [
        "run failed in FETCH: category='circuit_open', attempt=0, cause=CircuitOpenError",
        "body calls during this run: 0",
        "body call #4 (breaker=CircuitState.HALF_OPEN)",
        "Final breaker state: CircuitState.CLOSED",
    ],
    "observer_metrics": [
        "run 2: stopped in GUARDED (circuit_open)",
        "retries 1",
        "circuit opens 1",
        "task failures 2",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_example_runs(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # compare with runs of whitespace collapsed, so column padding does not matter
    shown = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    for expected in EXPECT[name]:
        assert any(expected in line for line in shown), f"{expected!r} missing:\n{proc.stdout}"
