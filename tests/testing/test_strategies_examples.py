"""The examples' properties (examples/property_*.py) hold, within a bounded number of
examples (`workflow_settings`: 25 by default, derandomised under CI), and they are not
vacuous: the drawn plans do reorder completions, and a broken variant fails them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import property_batch  # noqa: E402
import property_saga  # noqa: E402

from cano_dsl import MemoryStore  # noqa: E402
from cano_dsl.testing.strategies import Delay, Fault, Plan, run_plan_sync  # noqa: E402


@pytest.mark.parametrize(
    "prop",
    [*property_saga.PROPERTIES, *property_batch.PROPERTIES],
    ids=lambda p: p.__name__,
)
def test_example_property_holds(prop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    prop()


def test_drawn_delays_reorder_the_batch_and_it_still_lines_up() -> None:
    store = MemoryStore()
    plan = Plan(delays=[Delay("FETCH", i, 10.0 - i) for i in range(5)])
    history = run_plan_sync(
        property_batch.workflow(store), property_batch.batch_task.Step.PARSE, plan
    )
    fetch = next(b for b in history.batches if b.state == "FETCH")
    assert fetch.completed[:4] != sorted(fetch.completed[:4])  # not the input order
    property_batch.assert_batch_order(history)
    assert all(size == len(url) * 100 for url, size in store.get("sizes").items())


def test_saga_property_catches_an_order_left_charged() -> None:
    """never_left_charged fails when a charge that ran is not undone on a failed run."""
    wf = property_saga.saga_payment.workflow(False)
    history = run_plan_sync(wf, property_saga.saga_payment.Pay.RESERVE, Plan())
    property_saga.never_left_charged(history, "charge")
    history.effects = [e for e in history.effects if e.name != "compensate:charge"]
    with pytest.raises(AssertionError, match="charge ran 1 time"):
        property_saga.never_left_charged(history, "charge")
    history = run_plan_sync(wf, property_saga.saga_payment.Pay.RESERVE, Plan([Fault("SHIP", 1)]))
    history.effects += [e for e in history.effects if e.name == "compensate:charge"]
    with pytest.raises(AssertionError, match="charge ran 1 time.*undone 2"):
        property_saga.undone_at_most_once_per_run(history, "charge")


@pytest.mark.parametrize("script", ["property_saga.py", "property_batch.py"])
def test_example_script_runs(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "CANO_DSL_MAX_EXAMPLES": "5"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\nok  ") + proc.stdout.startswith("ok  ") >= 1
