"""A real process SIGKILLed inside SHIP: `cano-dsl runs show` prints the run data as of
SHIP's entry, and a resume in this process continues with the data intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cano_dsl.stores import SqliteCheckpointStore

from .crash_flow import Order, build

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)])
    return env


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
async def test_sigkill_in_ship_resumes_with_the_order_data(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "crash_flow.py"), str(db), "order-17"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "READY", line + (child.stderr.read() if child.stderr else "")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    shown = subprocess.run(
        [sys.executable, "-m", "cano_dsl", "runs", "show", "order-17", "--store", f"sqlite:{db}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "run data (as of the last row):" in out
    data = json.loads(out.split("run data (as of the last row):", 1)[1])
    assert data == {
        "order_id": "A-17",
        "items": ["book", "lamp"],
        "total": 25.0,
        "charge_id": "ch_A-17",
        "tracking": None,
    }

    async with SqliteCheckpointStore(db) as store:
        result = await build(store, False).resume("order-17")
        assert result.data == Order("A-17", ["book", "lamp"], 25.0, "ch_A-17", "trk_ch_A-17")
        assert await store.load_run("order-17") == []
