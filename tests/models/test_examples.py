"""The processing-model examples run as scripts, print what happens and exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

EXPECTED = {
    "poll_task.py": "finished in DONE",
    "poll_retry_on_error.py": "failed after 4 polls: probe 4 failed",
    "timer_task.py": "reached DONE",
    "stepped_task.py": "log cleared: True",
    "stream_task.py": "CALM  source closed (EXHAUSTED)",
}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert EXPECTED[script] in proc.stdout
