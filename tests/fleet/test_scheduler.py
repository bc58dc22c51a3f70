"""The scheduler once per fleet: each tick fires in one process only."""

from __future__ import annotations

import datetime
import enum
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import ConfigurationError, Scheduler, TaskConfig, Workflow, task
from cano_dsl.fleet import Fleet

from .support import child_env, make_store


class S(enum.Enum):
    GO = enum.auto()
    DONE = enum.auto()


@pytest.mark.anyio
async def test_take_fire_succeeds_once_per_flow_and_tick(fleet: Fleet, store_url: str) -> None:
    other = Fleet(make_store(store_url))
    at = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    try:
        assert await fleet.take_fire("f", at)
        assert not await other.take_fire("f", at)
        assert not await fleet.take_fire("f", at.replace(tzinfo=None))  # naive is UTC
        assert await other.take_fire("g", at)
        assert await other.take_fire("f", at + datetime.timedelta(seconds=1))
    finally:
        await other.aclose()
        await other.store.aclose()


@pytest.mark.anyio
async def test_two_schedulers_in_one_loop_fire_each_tick_once(fleet: Fleet, store_url: str) -> None:
    fired: list[tuple[str, float]] = []

    def flow(who: str) -> Workflow[S]:
        @task(config=TaskConfig.minimal(), name="tick")
        async def run(res: Any) -> S:
            fired.append((who, time.time()))
            return S.DONE

        return Workflow.bare().register(S.GO, run).add_exit_state(S.DONE)

    other = Fleet(make_store(store_url))
    try:
        a = Scheduler().every("tick", flow("a"), S.GO, 0.5).once_per_fleet(fleet)
        b = Scheduler().every("tick", flow("b"), S.GO, 0.5).once_per_fleet(other)
        async with a.start(), b.start():
            await anyio.sleep(2.6)
    finally:
        await other.aclose()
        await other.store.aclose()
    slots = Counter(round(t * 2) for _, t in fired)  # one slot per half second
    assert 4 <= len(fired) <= 6
    assert all(n == 1 for n in slots.values()), fired


def test_once_per_fleet_needs_fire_records() -> None:
    with pytest.raises(ConfigurationError, match="take_fire"):
        Scheduler().once_per_fleet(object())  # type: ignore[arg-type]


def test_three_scheduler_processes_fire_each_tick_once(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "fires.log"
    seconds = 5.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.fleet.sched_proc", store_url, str(seconds), backend],
            env=child_env(CANO_FLEET_TEST_LOG=str(log)),
            stderr=subprocess.PIPE,
        )
        for backend in ("asyncio", "trio", "asyncio")
    ]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    lines = [line.split() for line in log.read_text().splitlines()]
    for name in ("tick", "cron"):
        times = sorted(float(t) for n, _, t in lines if n == name)
        ticks = Counter(int(t) for t in times)  # both fire on whole seconds
        assert all(n == 1 for n in ticks.values()), (name, times)  # never 2 for one tick
        # every second of the window fired (the processes' start-up times blur the edges)
        assert len(ticks) >= seconds - 3, (name, times)
        assert max(ticks) - min(ticks) + 1 == len(ticks), (name, times)  # no gap
    pids = {pid for _, pid, _ in lines}
    assert len(pids) >= 2  # the fires were shared out, not one process's own schedule
