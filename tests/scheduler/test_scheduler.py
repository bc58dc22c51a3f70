"""Scheduler (REFERENCE §8.1-8.4): registration, start-up, interval / cron / manual
dispatch, overlap prevention, backoff and trip. All on virtual time."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import cano_dsl
from cano_dsl import (
    BackoffPolicy,
    ConfigurationError,
    FlowInfo,
    FlowStatus,
    Resources,
    RunningScheduler,
    Scheduler,
    TaskConfig,
    Workflow,
    WorkflowError,
    task,
)
from cano_dsl.scheduler import Backoff, Tripped
from cano_dsl.testing import MockClock

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(2024, 1, 1, tzinfo=UTC)
Utc = Callable[[], datetime.datetime]


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()
    ERROR = enum.auto()


@task(state=Step, config=TaskConfig.minimal())
class Probe:
    """Records each run's start on the library clock; takes ``duration`` virtual
    seconds; fails while ``fail(run_index)`` says so."""

    def __init__(
        self, clock: MockClock, duration: float = 0.0, fail: Callable[[int], bool] | None = None
    ) -> None:
        self.clock = clock
        self.duration = duration
        self.fail = fail
        self.starts: list[float] = []
        self.started = anyio.Event()

    async def run(self, res: Resources) -> Step:
        index = len(self.starts)
        self.starts.append(self.clock.now())
        self.started.set()
        if self.duration:
            await self.clock.sleep(self.duration)
        if self.fail is not None and self.fail(index):
            raise RuntimeError(f"run {index} failed")
        return Step.DONE


def flow(probe: Probe, resources: Resources | None = None) -> Workflow[Step]:
    return Workflow(resources).register(Step.START, probe).add_exit_state(Step.DONE)


class Lifecycle:
    """A resource writing its setup/teardown into a shared log."""

    def __init__(self, name: str, log: list[str], fail_setup: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_setup = fail_setup

    async def setup(self) -> None:
        if self.fail_setup:
            raise RuntimeError(f"{self.name} setup failed")
        self.log.append(f"setup:{self.name}")

    async def teardown(self) -> None:
        self.log.append(f"teardown:{self.name}")


def res(name: str, log: list[str], fail_setup: bool = False) -> Resources:
    return Resources().insert(name, Lifecycle(name, log, fail_setup))


def always(_: int) -> bool:
    return True


NO_JITTER = BackoffPolicy(jitter=0)


# -- registration --------------------------------------------------------------------


def test_exports_from_the_top_level_package() -> None:
    assert cano_dsl.Scheduler is Scheduler
    assert FlowStatus.Idle() == cano_dsl.FlowStatus.IDLE
    assert cano_dsl.RunningScheduler is RunningScheduler
    assert cano_dsl.FlowInfo is FlowInfo


def test_registration_chains_and_counts(clock: MockClock) -> None:
    wf = flow(Probe(clock))
    sched = Scheduler()
    assert sched.is_empty() and len(sched) == 0
    out = (
        sched.every("a", wf, Step.START, 30)
        .every_seconds("b", wf, Step.START, 5)
        .every_minutes("c", wf, Step.START, 2)
        .every_hours("d", wf, Step.START, 1)
        .cron("e", wf, Step.START, "0 0 9 * * *")
        .manual("f", wf, Step.START)
    )
    assert out is sched
    assert len(sched) == 6 and not sched.is_empty()
    assert sched.contains("c") and "f" in sched and "zzz" not in sched
    assert sched.ids() == ["a", "b", "c", "d", "e", "f"]
    assert sched._flows["c"].interval == 120.0 and sched._flows["d"].interval == 3600.0
    assert sched.backoff("a") == BackoffPolicy() and sched.backoff("nope") is None


def test_duplicate_id_is_rejected(clock: MockClock) -> None:
    wf = flow(Probe(clock))
    sched = Scheduler().manual("x", wf, Step.START)
    with pytest.raises(ConfigurationError) as info:
        sched.every("x", wf, Step.START, 1)
    assert info.value.message == "Flow 'x' already exists"


def test_set_backoff_on_unknown_id_is_rejected() -> None:
    with pytest.raises(ConfigurationError) as info:
        Scheduler().set_backoff("ghost", BackoffPolicy())
    assert info.value.message == "Flow 'ghost' not found — cannot set backoff"


def test_set_backoff_replaces_the_policy(clock: MockClock) -> None:
    sched = Scheduler().manual("x", flow(Probe(clock)), Step.START)
    sched.set_backoff("x", BackoffPolicy.with_trip(2))
    assert sched.backoff("x") == BackoffPolicy(streak_limit=2)


def test_invalid_cron_is_rejected_at_registration(clock: MockClock) -> None:
    with pytest.raises(ConfigurationError, match="^Configuration error: Invalid cron expression: "):
        Scheduler().cron("c", flow(Probe(clock)), Step.START, "invalid cron")


def test_negative_interval_is_rejected(clock: MockClock) -> None:
    with pytest.raises(ConfigurationError):
        Scheduler().every("c", flow(Probe(clock)), Step.START, -1)


def test_a_non_workflow_is_rejected(clock: MockClock) -> None:
    with pytest.raises(ConfigurationError, match="expected a Workflow"):
        Scheduler().manual("c", Probe(clock), Step.START)


def test_repr_lists_the_flows(clock: MockClock) -> None:
    sched = (
        Scheduler()
        .every("a", flow(Probe(clock)), Step.START, 1.5)
        .manual("b", flow(Probe(clock)), Step.START)
    )
    assert repr(sched) == "Scheduler({'a': every 1.5s, 'b': manual})"


# -- start-up ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_start_validates_before_any_setup(clock: MockClock) -> None:
    log: list[str] = []
    good = flow(Probe(clock), res("r1", log))
    bad_state = (
        Workflow(res("r2", log)).register(Step.START, Probe(clock)).add_exit_state(Step.DONE)
    )
    sched = Scheduler().every("good", good, Step.START, 1).manual("bad", bad_state, Step.ERROR)
    with pytest.raises(ConfigurationError):
        async with sched.start():
            pytest.fail("must not start")
    assert log == []


@pytest.mark.anyio
async def test_start_rejects_a_misconfigured_workflow_raw(clock: MockClock) -> None:
    no_exit = Workflow.bare().register(Step.START, Probe(clock))
    with pytest.raises(ConfigurationError):
        async with Scheduler().every("bad", no_exit, Step.START, 60).start():
            pass


@pytest.mark.anyio
async def test_setup_failure_tears_earlier_flows_down_in_reverse_and_runs_nothing(
    clock: MockClock,
) -> None:
    log: list[str] = []
    probes = [Probe(clock) for _ in range(4)]
    sched = (
        Scheduler()
        .every("a", flow(probes[0], res("a", log)), Step.START, 1)
        .cron("b", flow(probes[1], res("b", log)), Step.START, "* * * * * *")
        .every("c", flow(probes[2], res("c", log, fail_setup=True)), Step.START, 1)
        .manual("d", flow(probes[3], res("d", log)), Step.START)
    )
    with pytest.raises(RuntimeError, match="c setup failed"):
        async with sched.start():
            pytest.fail("must not start")
    assert log == ["setup:a", "setup:b", "teardown:b", "teardown:a"]
    assert all(p.starts == [] for p in probes)


@pytest.mark.anyio
async def test_resources_are_set_up_once_and_torn_down_in_reverse_registration_order(
    clock: MockClock,
) -> None:
    log: list[str] = []
    probe = Probe(clock)
    sched = (
        Scheduler()
        .every("a", flow(probe, res("a", log)), Step.START, 1)
        .manual("b", flow(Probe(clock), res("b", log)), Step.START)
        .cron("c", flow(Probe(clock), res("c", log)), Step.START, "* * * * * *")
    )
    async with sched.start():
        await clock.sleep(5.5)
        assert log == ["setup:a", "setup:b", "setup:c"]
    assert log == ["setup:a", "setup:b", "setup:c", "teardown:c", "teardown:b", "teardown:a"]
    assert len(probe.starts) == 6  # many runs, one setup


@pytest.mark.anyio
async def test_a_scheduler_runs_one_start_block_at_a_time(clock: MockClock) -> None:
    sched = Scheduler().manual("m", flow(Probe(clock)), Step.START)
    async with sched.start():
        with pytest.raises(WorkflowError, match="already running"):
            async with sched.start():
                pass
    async with sched.start() as again:  # fine once the first block closed
        assert again.status("m") == FlowInfo("m", FlowStatus.IDLE)


# -- every -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_runs_at_once_then_interval_after_each_run_ends(clock: MockClock) -> None:
    probe = Probe(clock, duration=2)
    async with Scheduler().every("e", flow(probe), Step.START, 10).start() as running:
        await clock.sleep(30)
        info = running.status("e")
    assert probe.starts == [0, 12, 24]
    assert info is not None and info.run_count == 3


@pytest.mark.anyio
async def test_status_snapshots_track_a_run(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock, duration=5)
    async with Scheduler(utc_now=utc).every("e", flow(probe), Step.START, 100).start() as running:
        await probe.started.wait()
        during = running.status("e")
        assert running.has_running_flows()
        await clock.sleep(6)
        after = running.status("e")
        assert not running.has_running_flows()
        assert running.list() == [after]
        assert running.status("nope") is None
    assert during == FlowInfo("e", FlowStatus.RUNNING, run_count=1, last_run=EPOCH)
    assert after == FlowInfo("e", FlowStatus.COMPLETED, run_count=1, last_run=EPOCH)


@pytest.mark.anyio
async def test_default_wall_clock_follows_the_mock_clock(clock: MockClock) -> None:
    probe = Probe(clock)
    async with Scheduler().every("e", flow(probe), Step.START, 60).start() as running:
        await clock.sleep(61)
        info = running.status("e")
    assert info is not None and info.run_count == 2
    assert info.last_run is not None and info.last_run.tzinfo is not None


# -- cron ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cron_fires_on_its_schedule(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock)
    sched = Scheduler(utc_now=utc).cron("c", flow(probe), Step.START, "*/10 * * * * *")
    async with sched.start():
        await clock.sleep(35)
    assert probe.starts == [10, 20, 30]


@pytest.mark.anyio
async def test_five_field_cron_fires_each_minute(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock)
    async with Scheduler(utc_now=utc).cron("c", flow(probe), Step.START, "* * * * *").start():
        await clock.sleep(185)
    assert probe.starts == [60, 120, 180]


@pytest.mark.anyio
async def test_cron_skips_ticks_while_a_run_is_in_flight(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock, duration=2.5)
    async with Scheduler(utc_now=utc).cron("c", flow(probe), Step.START, "* * * * * *").start():
        await clock.sleep(10.5)
    assert probe.starts == [1, 4, 7, 10]


@pytest.mark.anyio
async def test_cron_without_future_firings_ends_its_loop_quietly(
    clock: MockClock, utc: Utc
) -> None:
    probe = Probe(clock)
    sched = Scheduler(utc_now=utc).cron("c", flow(probe), Step.START, "0 0 0 1 1 * 2020")
    async with sched.start() as running:
        await clock.sleep(10)
        await running.trigger("c")  # still triggerable by hand
        await clock.sleep(1)
    assert probe.starts == [10]


@pytest.mark.anyio
async def test_cron_ticks_inside_a_backoff_window_are_skipped(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock, fail=always)
    sched = (
        Scheduler(utc_now=utc)
        .cron("c", flow(probe), Step.START, "* * * * * *")
        .set_backoff("c", BackoffPolicy(initial=5, multiplier=2, jitter=0))
    )
    async with sched.start():
        await clock.sleep(20)
    # fails at 1 -> backoff until 6; fails at 6 -> until 16; fails at 16 -> until 36
    assert probe.starts == [1, 6, 16]


# -- manual ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_manual_flow_runs_only_when_triggered(clock: MockClock) -> None:
    probe = Probe(clock)
    async with Scheduler().manual("m", flow(probe), Step.START).start() as running:
        await clock.sleep(100)
        assert probe.starts == []
        await running.trigger("m")
        await clock.sleep(1)
        info = running.status("m")
    assert probe.starts == [100]
    assert info is not None and info.status == FlowStatus.COMPLETED and info.run_count == 1


@pytest.mark.anyio
async def test_trigger_unknown_id(clock: MockClock) -> None:
    async with Scheduler().manual("m", flow(Probe(clock)), Step.START).start() as running:
        for command in (running.trigger, running.reset_flow, running.cancel_flow):
            with pytest.raises(WorkflowError) as info:
                await command("ghost")
            assert info.value.message == "No workflow registered with id 'ghost'"


@pytest.mark.anyio
async def test_commands_after_shutdown_say_not_running(clock: MockClock) -> None:
    async with Scheduler().manual("m", flow(Probe(clock)), Step.START).start() as running:
        pass
    for command, name in (
        (running.trigger, "trigger"),
        (running.reset_flow, "reset_flow"),
        (running.cancel_flow, "cancel_flow"),
    ):
        with pytest.raises(WorkflowError) as info:
            await command("m")
        assert info.value.message == f"Scheduler not running — call start() before {name}()"
    assert running.status("m") == FlowInfo("m", FlowStatus.IDLE)


@pytest.mark.anyio
async def test_a_flow_never_runs_twice_at_once(clock: MockClock) -> None:
    probe = Probe(clock, duration=50)
    async with Scheduler().every("e", flow(probe), Step.START, 1).start() as running:
        await probe.started.wait()
        with pytest.raises(WorkflowError) as info:
            await running.trigger("e")
        assert info.value.message == "Flow 'e' is already running"
        await clock.sleep(20)  # the loop's wake-ups during the run are skipped too
        assert probe.starts == [0]
        status = running.status("e")
        assert status is not None and status.run_count == 1


@pytest.mark.anyio
async def test_triggered_run_blocks_the_interval_loop(clock: MockClock) -> None:
    probe = Probe(clock, duration=15)
    async with Scheduler().every("e", flow(probe), Step.START, 10).start() as running:
        await clock.sleep(16)  # first run 0..15
        await running.trigger("e")  # second run 16..31; the loop wakes at 25 and skips
        await clock.sleep(20)
    assert probe.starts == [0, 16, 35]


# -- backoff and trip ---------------------------------------------------------------


@pytest.mark.anyio
async def test_failures_back_off_exponentially_then_trip(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock, fail=always)
    sched = (
        Scheduler(utc_now=utc)
        .every("e", flow(probe), Step.START, 0.5)
        .set_backoff("e", BackoffPolicy(initial=1, multiplier=2, jitter=0).with_trip(4))
    )
    async with sched.start() as running:
        await clock.sleep(0.1)
        first = running.status("e")
        await clock.sleep(100)
        last = running.status("e")
    assert probe.starts == [0, 1, 3, 7]
    assert first is not None and first.status == Backoff(
        until=EPOCH + datetime.timedelta(seconds=1),
        streak=1,
        last_error="state=START attempt=1 path=[START] caused by: run 0 failed",
    )
    assert first.next_eligible == EPOCH + datetime.timedelta(seconds=1)
    assert last is not None
    assert isinstance(last.status, Tripped) and last.status.streak == 4
    assert "run 3 failed" in last.status.last_error
    assert last.failure_streak == 4 and last.next_eligible is None and last.run_count == 4


@pytest.mark.anyio
async def test_interval_wins_over_a_shorter_backoff(clock: MockClock) -> None:
    probe = Probe(clock, fail=always)
    sched = Scheduler().every("e", flow(probe), Step.START, 5).set_backoff("e", NO_JITTER)
    async with sched.start():
        await clock.sleep(16)
    assert probe.starts == [0, 5, 10, 15]  # backoff 1, 2, 4 s never exceeds 5 s


@pytest.mark.anyio
async def test_default_policy_applies_to_every_flow(clock: MockClock) -> None:
    probe = Probe(clock, fail=always)
    async with Scheduler().every("e", flow(probe), Step.START, 0.01).start() as running:
        await clock.sleep(0.5)
        info = running.status("e")
    assert probe.starts == [0]  # the default 1 s (±10 %) backoff holds the next try
    assert info is not None and isinstance(info.status, Backoff)
    assert 0.9 <= (info.status.until - info.last_run).total_seconds() <= 1.1  # type: ignore[operator]


@pytest.mark.anyio
async def test_tripped_flow_refuses_triggers_until_reset(clock: MockClock) -> None:
    probe = Probe(clock, fail=lambda i: i < 2)
    sched = (
        Scheduler()
        .manual("m", flow(probe), Step.START)
        .set_backoff("m", BackoffPolicy.with_trip(2))
    )
    async with sched.start() as running:
        await running.trigger("m")
        await clock.sleep(0.1)
        await running.trigger("m")  # manual triggers bypass the backoff window
        await clock.sleep(0.1)
        info = running.status("m")
        assert info is not None and isinstance(info.status, Tripped)
        with pytest.raises(WorkflowError) as err:
            await running.trigger("m")
        assert err.value.message == "Flow 'm' is tripped — call reset_flow before triggering"
        await running.reset_flow("m")
        assert running.status("m") == FlowInfo(
            "m", FlowStatus.IDLE, run_count=2, last_run=info.last_run, failure_streak=0
        )
        await running.trigger("m")
        await clock.sleep(0.1)
        done = running.status("m")
    assert done is not None and done.status == FlowStatus.COMPLETED and done.run_count == 3


@pytest.mark.anyio
async def test_reset_flow_lets_a_tripped_interval_flow_run_again(clock: MockClock) -> None:
    probe = Probe(clock, fail=lambda i: i == 0)
    sched = (
        Scheduler()
        .every("e", flow(probe), Step.START, 10)
        .set_backoff("e", BackoffPolicy.with_trip(1))
    )
    async with sched.start() as running:
        await clock.sleep(35)
        assert probe.starts == [0]  # tripped: the loop idles
        await running.reset_flow("e")
        await clock.sleep(10)
        info = running.status("e")
    assert probe.starts == [0, 40]
    assert info is not None and info.status == FlowStatus.COMPLETED and info.failure_streak == 0


@pytest.mark.anyio
async def test_success_clears_the_streak_and_window(clock: MockClock) -> None:
    probe = Probe(clock, fail=lambda i: i < 2)
    sched = Scheduler().every("e", flow(probe), Step.START, 0.1).set_backoff("e", NO_JITTER)
    async with sched.start() as running:
        await clock.sleep(1.5)
        mid = running.status("e")
        await clock.sleep(2)
        info = running.status("e")
    assert mid is not None and mid.failure_streak == 2 and mid.next_eligible is not None
    assert probe.starts[:3] == [0, 1, 3]
    assert info is not None and info.status == FlowStatus.COMPLETED
    assert info.failure_streak == 0 and info.next_eligible is None


@pytest.mark.anyio
async def test_reset_flow_keeps_a_running_flow_running(clock: MockClock) -> None:
    probe = Probe(clock, duration=10)
    async with Scheduler().manual("m", flow(probe), Step.START).start() as running:
        await running.trigger("m")
        await probe.started.wait()
        await running.reset_flow("m")
        info = running.status("m")
        assert info is not None and info.status == FlowStatus.RUNNING


# -- structure -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_error_in_the_block_propagates_unwrapped_after_a_graceful_stop(
    clock: MockClock,
) -> None:
    log: list[str] = []
    probe = Probe(clock, duration=100)
    with pytest.raises(ValueError, match="user error"):
        async with (
            Scheduler().every("e", flow(probe, res("r", log)), Step.START, 1).start() as running
        ):
            await probe.started.wait()
            raise ValueError("user error")
    assert log == ["setup:r", "teardown:r"]
    assert running.status("e") == FlowInfo(
        "e", FlowStatus.IDLE, run_count=1, last_run=running.status("e").last_run
    )  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_serve_runs_until_cancelled_then_tears_down(clock: MockClock) -> None:
    log: list[str] = []
    probe = Probe(clock)
    sched = Scheduler().every("e", flow(probe, res("r", log)), Step.START, 10)
    with anyio.move_on_after(5):  # real-time bound only as a safety net
        async with anyio.create_task_group() as tg:
            tg.start_soon(sched.serve)
            await clock.sleep(25)
            tg.cancel_scope.cancel()
    assert probe.starts == [0, 10, 20]
    assert log == ["setup:r", "teardown:r"]


@pytest.mark.anyio
async def test_outer_cancellation_never_leaves_a_flow_running(clock: MockClock) -> None:
    probe = Probe(clock, duration=1000)
    running: Any = None
    with anyio.CancelScope() as scope:
        async with Scheduler().every("e", flow(probe), Step.START, 1).start() as running:
            await probe.started.wait()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert running is not None and not running.has_running_flows()
    assert running.status("e").status == FlowStatus.IDLE


@pytest.mark.anyio
async def test_cron_sleeps_again_when_the_wall_clock_steps_back(clock: MockClock) -> None:
    def wall() -> datetime.datetime:
        # the wall clock is stepped back 3 s at virtual second 5 (an NTP correction)
        shift = 3 if clock.now() >= 5 else 0
        return EPOCH + datetime.timedelta(seconds=clock.now() - shift)

    probe = Probe(clock)
    sched = Scheduler(utc_now=wall).cron("c", flow(probe), Step.START, "*/10 * * * * *")
    async with sched.start():
        await clock.sleep(14)
    assert probe.starts == [13]  # wall 00:00:10 is reached at virtual 13, not 10


@pytest.mark.anyio
async def test_cron_long_waits_reread_the_wall_clock_daily(clock: MockClock, utc: Utc) -> None:
    probe = Probe(clock)
    sched = Scheduler(utc_now=utc).cron("c", flow(probe), Step.START, "0 0 0 1 * *")
    async with sched.start():
        await clock.sleep(31 * 86400 + 1)  # 2024-01-01 -> the firing on 2024-02-01
    assert probe.starts == [31 * 86400]
