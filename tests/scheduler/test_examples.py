"""The scheduler examples run to completion (exit status 0, "Done")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "name",
    [
        "scheduler_scheduling.py",
        "scheduler_backoff.py",
        "scheduler_cancellation.py",
        "scheduler_graceful_shutdown.py",
        "scheduler_duration_scheduling.py",
    ],
)
def test_example_exits_zero(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Done" in result.stdout
