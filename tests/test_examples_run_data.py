"""The run data examples and the demo, run as scripts; their output is checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_resumes_with_the_order_data(tmp_path: Path) -> None:
    out = run("demo.py", "--db", str(tmp_path / "d.sqlite3"))
    starts = [line for line in out.splitlines() if "EXPRESS starts with the run data" in line]
    # the crashed attempt and the resumed one start from the same order data, from the log
    assert len(starts) == 2 and starts[0] == starts[1]
    assert "order A-42: 4 lines, total 484.8, charge ch_A-42_3, shipping express" in starts[0]
    assert "tracking None" in starts[0]  # the failed attempt's tracking id was dropped
    assert "final run data: order A-42: 4 lines, total 484.8, charge ch_A-42_3" in out
    assert "tracking EXP-A-42" in out
    assert "run data carried by each row (what changed): LOAD " in out
    assert "path: EXPRESS -> SHIPPED" in out


def test_saga_compensate_sees_the_completion_data() -> None:
    out = run("run_data_saga.py")
    assert "charged 420.0 to ada (pay_ada)" in out
    assert "refund pay_ada: 420.0 to ada; notes then: []" in out
    assert "run failed in BOOK: no rooms left" in out


def test_split_branches_merge_and_conflicts_are_named() -> None:
    out = run("run_data_split.py")
    assert (
        "merged run data: {'customer': 'ada', 'credit_score': 710, 'fraud_flags': [], "
        "'approved': True}" in out
    )
    assert "branches 0 (credit) and 2 (greedy) both changed run data field `credit_score`" in out


def test_stepped_and_batch_resume_with_the_cursor_data() -> None:
    out = run("run_data_batch.py")
    assert "run 1 failed: lost the connection on page 2" in out
    assert "pages 4, items [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]" in out
    assert f"score {sum(i * i for i in range(12))}" in out
