"""TimerTask: wait → one sleep → after_wait (REFERENCE §3.3)."""

from __future__ import annotations

import datetime
import enum

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    ConfigurationError,
    Resources,
    StateFailure,
    TaskConfig,
    TaskExecutionError,
    TaskResult,
    TimerOutcome,
    TimerTask,
    Workflow,
    task,
    timer,
)
from cano_dsl.testing import MockClock


class Step(enum.Enum):
    WAIT = enum.auto()
    NEXT = enum.auto()
    DONE = enum.auto()


class Timer(TimerTask[Step]):
    def __init__(self, outcome: TimerOutcome | None = None, *, fail_wait: bool = False) -> None:
        self.outcome = outcome or TimerOutcome.duration(0)
        self.fail_wait = fail_wait
        self.fired = 0

    async def wait(self, res: Resources) -> TimerOutcome:
        if self.fail_wait:
            raise ValueError("cannot compute the wait")
        return self.outcome

    async def after_wait(self, res: Resources) -> Step:
        self.fired += 1
        return Step.DONE


def test_outcome_values() -> None:
    assert TimerOutcome.duration(datetime.timedelta(seconds=2)).value == 2.0
    assert TimerOutcome.duration(0).remaining() == 0
    assert TimerOutcome.until(-1e9).value == -1e9
    assert repr(TimerOutcome.duration(1.5)) == "TimerOutcome.duration(1.5)"
    with pytest.raises(ConfigurationError):
        TimerOutcome.duration(-1)
    with pytest.raises(ConfigurationError):
        TimerOutcome.until(float("nan"))
    with pytest.raises(ConfigurationError):
        TimerOutcome.until("soon")  # type: ignore[arg-type]


def test_default_config_is_minimal() -> None:
    t = Timer()
    assert t.config() == TaskConfig.minimal()
    assert "Timer" in t.name()
    assert task.timer is timer


@pytest.mark.anyio
async def test_zero_duration_fires_at_once() -> None:
    t = Timer()
    assert await t.run(Resources()) == Step.DONE
    assert t.fired == 1


@pytest.mark.anyio
async def test_duration_sleeps_once_on_the_library_clock() -> None:
    with MockClock() as clock:
        start = clock.now()
        t = Timer(TimerOutcome.duration(30))
        wf = Workflow().register(Step.WAIT, t).add_exit_state(Step.DONE)
        assert await wf.orchestrate(Step.WAIT) == Step.DONE
        assert clock.now() - start == pytest.approx(30.0)


@pytest.mark.anyio
async def test_until_a_future_deadline_sleeps_the_remaining_time() -> None:
    with MockClock() as clock:
        start = clock.now()
        t = Timer(TimerOutcome.until(anyio.current_time() + 60))
        assert await t.run(Resources()) == Step.DONE
        assert 59.0 <= clock.now() - start <= 60.0


@pytest.mark.anyio
async def test_until_a_past_deadline_fires_at_once() -> None:
    with MockClock() as clock:
        start = clock.now()
        t = Timer(TimerOutcome.until(anyio.current_time() - 60))
        assert await t.run(Resources()) == Step.DONE
        assert clock.now() == start


@pytest.mark.anyio
async def test_wait_error_aborts_before_after_wait() -> None:
    t = Timer(fail_wait=True)
    with pytest.raises(ValueError):
        await t.run(Resources())
    assert t.fired == 0


@pytest.mark.anyio
async def test_after_wait_error_propagates() -> None:
    @timer(state=Step)
    class Failing:
        async def wait(self, res: Resources) -> TimerOutcome:
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources) -> Step:
            raise TaskExecutionError("after_wait failed")

    wf = Workflow().register(Step.WAIT, Failing()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure, match="after_wait failed"):
        await wf.orchestrate(Step.WAIT)


@pytest.mark.anyio
async def test_split_result_is_rejected_by_the_engine() -> None:
    @timer
    class Splitter:
        async def wait(self, res: Resources) -> TimerOutcome:
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources) -> TaskResult[Step]:
            return TaskResult.split([Step.WAIT, Step.NEXT])

    assert await Splitter().run(Resources()) == TaskResult.split([Step.WAIT, Step.NEXT])  # type: ignore[attr-defined]
    wf = Workflow().register(Step.WAIT, Splitter()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure, match="register_split"):
        await wf.orchestrate(Step.WAIT)


@pytest.mark.anyio
async def test_attempt_timeout_cancels_a_long_timer() -> None:
    class Long(Timer):
        def config(self) -> TaskConfig:
            return TaskConfig.minimal().with_attempt_timeout(0.02)

    t = Long(TimerOutcome.duration(3600))
    wf = Workflow().register(Step.WAIT, t).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.WAIT)
    assert info.value.category == "timeout"
    assert t.fired == 0


@pytest.mark.anyio
async def test_timer_is_cancellable_mid_sleep() -> None:
    token = CancellationToken()
    t = Timer(TimerOutcome.duration(3600))

    async def cancel_when_blocked() -> None:
        await anyio.wait_all_tasks_blocked()
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_blocked)
        with pytest.raises(StateFailure) as info:
            await (
                Workflow()
                .register(Step.WAIT, t)
                .add_exit_state(Step.DONE)
                .orchestrate(Step.WAIT, cancel=token)
            )
    assert info.value.category == "cancelled"
    assert t.fired == 0


@pytest.mark.anyio
async def test_wrong_wait_return_type_is_a_task_error() -> None:
    @timer
    class Bad:
        async def wait(self, res: Resources) -> float:
            return 1.0

        async def after_wait(self, res: Resources) -> Step:
            return Step.DONE

    with pytest.raises(TaskExecutionError, match="must return a TimerOutcome"):
        await Bad().run(Resources())  # type: ignore[attr-defined]
