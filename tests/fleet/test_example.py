"""examples/fleet_local.py runs to completion as a script."""

from __future__ import annotations

import subprocess
import sys

from .support import ROOT, child_env


def test_fleet_local_example_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "fleet_local.py")],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "enqueue order-0 again: created=False" in proc.stdout
    assert "order-2: failed in CHECK" in proc.stdout
    assert "succeeded: ['order-0', 'order-1']" in proc.stdout
