"""Worker processes for the fleet tests: ``cano-dsl worker`` in a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .support import child_env


def store_args(url: str) -> list[str]:
    """``--store``/``--table`` for a `store_url`."""
    if url.startswith("sqlite:"):
        return ["--store", url]
    dsn, table = url.rsplit("#", 1)
    return ["--store", dsn, "--table", table]


def start_worker(
    url: str,
    log: Path,
    *,
    backend: str = "asyncio",
    concurrency: int = 4,
    lease: float = 1.0,
    grace: float = 0.5,
    sleep: float = 0.0,
) -> subprocess.Popen[bytes]:
    """``cano-dsl worker tests.fleet.flows:registry`` writing task lines to ``log``."""
    cmd = [
        sys.executable,
        "-m",
        "cano_dsl",
        "worker",
        "tests.fleet.flows:registry",
        *store_args(url),
        "--concurrency",
        str(concurrency),
        "--lease",
        str(lease),
        "--grace",
        str(grace),
        "--backend",
        backend,
    ]
    env = child_env(CANO_FLEET_TEST_LOG=str(log), CANO_FLEET_TEST_SLEEP=str(sleep))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def log_lines(log: Path) -> list[tuple[str, str, int]]:
    """``(run_id, what, pid)`` for every line the tasks wrote."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        rid, what, pid = line.split()
        out.append((rid, what, int(pid)))
    return out


def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 20 ms until true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def counts(log: Path) -> Counter[tuple[str, str]]:
    """How often each ``(run_id, what)`` was logged."""
    return Counter((rid, what) for rid, what, _ in log_lines(log))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def pids_alive(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    """The pids of ``procs`` that still run."""
    return [p.pid for p in procs if p.poll() is None and os.path.exists(f"/proc/{p.pid}")]
