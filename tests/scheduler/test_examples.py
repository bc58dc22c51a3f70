"""The scheduler examples run to completion (exit status 0, "Done")."""

from __future__ import annotations

import os
import signal
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


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_example_stops_on_a_signal_from_outside(
    backend: str, signum: signal.Signals
) -> None:
    root = EXAMPLES.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "scheduler_graceful_shutdown.py"),
            "--backend",
            backend,
            "--no-demo-signal",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("queue job in flight"):
                break
        else:
            pytest.fail("".join(seen))
        proc.send_signal(signum)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest
    assert proc.returncode == 0, out
    assert f"received {signum.name}" in out
    assert out.index("queue-job cancelled") < out.index("teardown queue")
    assert out.index("teardown queue") < out.index("teardown database")
    assert "Done" in out
