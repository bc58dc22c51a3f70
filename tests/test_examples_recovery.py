"""The recovery and saga examples run to completion as scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [
    "custom_checkpoint_store",
    "workflow_recovery",
    "saga_payment",
    "saga_recovery",
    "panic_safety",
    "processing_models_tour",
    "workflow_cancellation",
    "workflow_total_timeout",
]
EXPECT = {
    "custom_checkpoint_store": "resumed: DONE",
    "workflow_recovery": "fetch and the pages were not run again",
    "saga_payment": "undo reserve: release hold-17",
    "saga_recovery": "rows left in the log: 0",
    "panic_safety": "CompensationFailed with 2 errors",
    "processing_models_tour": "COMPENSATION_COMPLETION",
    "workflow_cancellation": "cancelled in CRUNCH",
    "workflow_total_timeout": "not cut, not timed out",
}


@pytest.mark.parametrize("name", EXAMPLES)
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
    assert EXPECT[name] in proc.stdout
