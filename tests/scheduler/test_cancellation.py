"""Cancelling scheduled runs (REFERENCE §8.2 cancel_flow, §8.5 graceful shutdown):
every schedule kind, saga drains, the 30 s bound. All on virtual time."""

from __future__ import annotations

import enum
from typing import Any

import anyio
import pytest

from cano_dsl import (
    BackoffPolicy,
    FlowInfo,
    FlowStatus,
    Resources,
    Scheduler,
    TaskConfig,
    Workflow,
    WorkflowError,
    compensatable,
    task,
)
from cano_dsl.scheduler import SHUTDOWN_TIMEOUT, Backoff
from cano_dsl.testing import MockClock

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    RESERVE = enum.auto()
    CHARGE = enum.auto()
    SHIP = enum.auto()
    WORK = enum.auto()
    DONE = enum.auto()


@task(state=Step, config=TaskConfig.minimal())
class Long:
    """Takes ``seconds`` of virtual time (cancellable unless ``shielded``)."""

    def __init__(self, clock: MockClock, seconds: float = 1000, shielded: bool = False) -> None:
        self.clock = clock
        self.seconds = seconds
        self.shielded = shielded
        self.started = anyio.Event()
        self.starts = 0
        self.completed = 0

    async def run(self, res: Resources) -> Step:
        self.starts += 1
        self.started.set()
        with anyio.CancelScope(shield=self.shielded):
            await self.clock.sleep(self.seconds)
        self.completed += 1
        return Step.DONE


@compensatable(state=Step)
class Booking:
    def __init__(self, label: str, nxt: Step, log: list[str], undo_fails: bool = False) -> None:
        self.label = label
        self.nxt = nxt
        self.log = log
        self.undo_fails = undo_fails

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    def name(self) -> str:
        return self.label

    async def run(self, res: Resources) -> tuple[Step, str]:
        self.log.append(f"run:{self.label}")
        return self.nxt, self.label

    async def compensate(self, res: Resources, output: Any) -> None:
        self.log.append(f"rollback:{output}")
        if self.undo_fails:
            raise RuntimeError(f"{self.label} rollback boom")


def saga(log: list[str], ship: Long, undo_fails: bool = False) -> Workflow[Step]:
    return (
        Workflow.bare()
        .register_with_compensation(Step.RESERVE, Booking("reserve", Step.CHARGE, log, undo_fails))
        .register_with_compensation(Step.CHARGE, Booking("charge", Step.SHIP, log))
        .register(Step.SHIP, ship)
        .add_exit_state(Step.DONE)
    )


def work(long: Long, resources: Resources | None = None) -> Workflow[Step]:
    return Workflow(resources).register(Step.WORK, long).add_exit_state(Step.DONE)


async def settle(running: Any, id: str, clock: MockClock) -> FlowInfo:
    """Let the cancelled run finish its drain (a few virtual ticks)."""
    for _ in range(100):
        info: FlowInfo = running.status(id)
        if info.status != FlowStatus.RUNNING:
            return info
        await clock.sleep(0.01)
    raise AssertionError(f"flow {id!r} never left Running")


async def test_cancel_flow_drains_a_scheduled_saga_and_returns_to_idle(clock: MockClock) -> None:
    log: list[str] = []
    ship = Long(clock)
    async with Scheduler().manual("order", saga(log, ship), Step.RESERVE).start() as running:
        await running.trigger("order")
        await ship.started.wait()
        await running.cancel_flow("order")
        info = await settle(running, "order", clock)
    assert log == ["run:reserve", "run:charge", "rollback:charge", "rollback:reserve"]
    assert ship.completed == 0
    assert info.status == FlowStatus.IDLE
    assert info.failure_streak == 0 and info.next_eligible is None and info.run_count == 1


async def test_cancel_flow_on_an_idle_flow_is_a_no_op(clock: MockClock) -> None:
    long = Long(clock, seconds=1)
    async with Scheduler().manual("m", work(long), Step.WORK).start() as running:
        await running.cancel_flow("m")
        assert running.status("m") == FlowInfo("m", FlowStatus.IDLE)
        await running.trigger("m")
        await clock.sleep(2)
        await running.cancel_flow("m")  # finished: nothing left to cancel
        info = running.status("m")
    assert info is not None and info.status == FlowStatus.COMPLETED and long.completed == 1


async def test_a_cancelled_interval_run_leaves_the_loop_going(clock: MockClock) -> None:
    long = Long(clock, seconds=5)
    async with Scheduler().every("e", work(long), Step.WORK, 10).start() as running:
        await long.started.wait()
        await running.cancel_flow("e")
        first = await settle(running, "e", clock)
        await clock.sleep(17)  # the next run starts 10 s after the cancelled one ended
        second = running.status("e")
    assert first.status == FlowStatus.IDLE
    assert long.starts == 2 and long.completed == 1
    assert second is not None and second.status == FlowStatus.COMPLETED and second.run_count == 2


async def test_a_cancelled_cron_run_returns_to_idle(clock: MockClock) -> None:
    long = Long(clock)
    async with Scheduler().cron("c", work(long), Step.WORK, "* * * * * *").start() as running:
        await long.started.wait()
        await running.cancel_flow("c")
        info = await settle(running, "c", clock)
    assert info.status == FlowStatus.IDLE and info.failure_streak == 0


async def test_cancel_leaves_an_existing_failure_streak_alone(clock: MockClock) -> None:
    class Flaky:
        calls = 0

    long = Long(clock)

    @task(state=Step, config=TaskConfig.minimal())
    async def maybe_fail() -> Step:
        Flaky.calls += 1
        if Flaky.calls == 1:
            raise RuntimeError("first run fails")
        return Step.SHIP

    wf = (
        Workflow.bare()
        .register(Step.WORK, maybe_fail)
        .register(Step.SHIP, long)
        .add_exit_state(Step.DONE)
    )
    sched = Scheduler().manual("m", wf, Step.WORK).set_backoff("m", BackoffPolicy(jitter=0))
    async with sched.start() as running:
        await running.trigger("m")
        await clock.sleep(0.1)
        failed = running.status("m")
        await running.trigger("m")  # bypasses the backoff window
        await long.started.wait()
        await running.cancel_flow("m")
        info = await settle(running, "m", clock)
    assert failed is not None and isinstance(failed.status, Backoff)
    assert info.status == FlowStatus.IDLE
    assert info.failure_streak == 1 and info.next_eligible == failed.next_eligible


async def test_a_dirty_cancel_counts_as_a_failure(clock: MockClock) -> None:
    log: list[str] = []
    ship = Long(clock)
    sched = Scheduler().manual("order", saga(log, ship, undo_fails=True), Step.RESERVE)
    async with sched.start() as running:
        await running.trigger("order")
        await ship.started.wait()
        await running.cancel_flow("order")
        info = await settle(running, "order", clock)
    assert log[-2:] == ["rollback:charge", "rollback:reserve"]
    assert isinstance(info.status, Backoff) and info.failure_streak == 1
    assert "reserve rollback boom" in info.status.last_error


async def test_leaving_the_block_cancels_in_flight_runs_of_every_kind(clock: MockClock) -> None:
    log: list[str] = []
    ship = Long(clock)
    every, cron = Long(clock), Long(clock)
    sched = (
        Scheduler()
        .every("every", work(every), Step.WORK, 1)
        .cron("cron", work(cron), Step.WORK, "* * * * * *")
        .manual("saga", saga(log, ship), Step.RESERVE)
    )
    async with sched.start() as running:
        await running.trigger("saga")
        for long in (every, cron, ship):
            await long.started.wait()
        assert running.has_running_flows()
    assert not running.has_running_flows()
    assert [i.status for i in running.list()] == [FlowStatus.IDLE] * 3
    assert (every.completed, cron.completed, ship.completed) == (0, 0, 0)
    assert log == ["run:reserve", "run:charge", "rollback:charge", "rollback:reserve"]
    assert clock.now() < SHUTDOWN_TIMEOUT  # cancelled at once, not waited out


async def test_shutdown_tears_down_after_runs_settle_in_reverse_order(clock: MockClock) -> None:
    log: list[str] = []

    class Tracked:
        def __init__(self, name: str) -> None:
            self.name = name

        async def setup(self) -> None:
            log.append(f"setup:{self.name}")

        async def teardown(self) -> None:
            log.append(f"teardown:{self.name}")

    class Recording(Long):
        async def run(self, res: Resources) -> Step:
            try:
                return await super().run(res)
            finally:
                log.append("run ended")

    a = Recording(clock)
    sched = (
        Scheduler()
        .every("a", work(a, Resources().insert("a", Tracked("a"))), Step.WORK, 1)
        .manual("b", work(Long(clock), Resources().insert("b", Tracked("b"))), Step.WORK)
    )
    async with sched.start():
        await a.started.wait()
    assert log == ["setup:a", "setup:b", "run ended", "teardown:b", "teardown:a"]


async def test_runs_ignoring_cancellation_are_waited_for_30_seconds_then_cut(
    clock: MockClock,
) -> None:
    log: list[str] = []

    class Tracked:
        async def teardown(self) -> None:
            log.append("teardown")

    stubborn = Long(clock, seconds=200, shielded=True)
    sched = Scheduler().manual("m", work(stubborn, Resources().insert("r", Tracked())), Step.WORK)
    with pytest.raises(WorkflowError) as info:
        async with sched.start() as running:
            await running.trigger("m")
            await stubborn.started.wait()
    assert info.value.message == "Timeout waiting for workflows to complete"
    assert log == ["teardown"]
    assert running.status("m").status == FlowStatus.IDLE  # type: ignore[union-attr]


async def test_stop_inside_the_block_stops_dispatch(clock: MockClock) -> None:
    long = Long(clock, seconds=1)
    async with Scheduler().every("e", work(long), Step.WORK, 5).start() as running:
        await clock.sleep(6.5)  # runs at 0 (done at 1) and 6 (in flight)
        await running.stop()
        await running.stop()  # idempotent
        assert not running.is_running
        await clock.sleep(30)
        with pytest.raises(WorkflowError, match="not running"):
            await running.trigger("e")
    assert long.starts == 2 and long.completed == 1


async def test_stop_reports_the_timeout(clock: MockClock) -> None:
    stubborn = Long(clock, seconds=100, shielded=True)
    with pytest.raises(WorkflowError):
        async with Scheduler().manual("m", work(stubborn), Step.WORK).start() as running:
            await running.trigger("m")
            await stubborn.started.wait()
            with pytest.raises(WorkflowError, match="Timeout waiting for workflows to complete"):
                await running.stop()
