"""PollTask: the poll loop, its error policy and its bounds (REFERENCE §3.2)."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    ConfigurationError,
    PollErrorPolicy,
    PollOutcome,
    PollTask,
    Resources,
    StateFailure,
    Task,
    TaskConfig,
    TaskExecutionError,
    TaskResult,
    Workflow,
    poll,
    task,
)
from cano_dsl.testing import MockClock, RecordingObserver


class Step(enum.Enum):
    WAIT = enum.auto()
    NEXT = enum.auto()
    DONE = enum.auto()


class Scripted(PollTask[Step]):
    """Plays a script of outcomes: "R" ready, "P" pending, "E" error, "Pn" pending n s."""

    def __init__(self, script: Iterable[str], policy: PollErrorPolicy | None = None) -> None:
        self.script = list(script)
        self.policy = policy or PollErrorPolicy.fail_fast()
        self.calls = 0

    def on_poll_error(self) -> PollErrorPolicy:
        return self.policy

    async def poll(self, res: Resources) -> PollOutcome[Step]:
        move = self.script[self.calls]
        self.calls += 1
        if move == "R":
            return PollOutcome.ready(Step.DONE)
        if move == "E":
            raise TaskExecutionError(f"poll {self.calls} failed")
        return PollOutcome.pending(float(move[1:] or 0))


def test_outcome_and_policy_values() -> None:
    assert PollOutcome.ready(Step.DONE).is_ready
    assert PollOutcome.pending(0).is_pending
    assert PollOutcome.pending(datetime.timedelta(milliseconds=250)).delay == 0.25
    assert PollOutcome.pending() == PollOutcome.pending(0)
    assert repr(PollOutcome.pending(1.5)) == "PollOutcome.pending(1.5)"
    assert PollErrorPolicy.fail_fast() == PollErrorPolicy()
    assert repr(PollErrorPolicy.retry_on_error(3)) == "PollErrorPolicy.retry_on_error(3)"
    with pytest.raises(ConfigurationError):
        PollOutcome.pending(-1)
    with pytest.raises(ConfigurationError):
        PollOutcome.pending(float("nan"))
    with pytest.raises(ConfigurationError):
        PollErrorPolicy.retry_on_error(-1)
    with pytest.raises(TypeError):
        PollOutcome.ready("DONE")  # type: ignore[arg-type]


def test_defaults_are_minimal_config_and_fail_fast() -> None:
    p = Scripted("R")
    assert PollTask.config(p) == TaskConfig.minimal()
    assert PollTask.on_poll_error(p) == PollErrorPolicy.fail_fast()
    assert "Scripted" in p.name()
    assert isinstance(p, Task)


def test_decorated_class_forwards_config_and_name() -> None:
    @poll(state=Step)
    class Custom:
        config = TaskConfig.minimal()

        def name(self) -> str:
            return "my-custom-poller"

        async def poll(self, res: Resources) -> PollOutcome[Step]:
            return PollOutcome.ready(Step.DONE)

    c = Custom()
    assert isinstance(c, PollTask)
    assert c.name() == "my-custom-poller"
    assert c.on_poll_error() == PollErrorPolicy.fail_fast()  # type: ignore[attr-defined]
    assert task.poll is poll


@pytest.mark.anyio
async def test_immediate_ready() -> None:
    assert await Scripted("R").poll(Resources()) == PollOutcome.ready(Step.DONE)
    assert await Scripted("R").run(Resources()) == Step.DONE


@pytest.mark.anyio
async def test_polls_until_ready() -> None:
    p = Scripted("PPR")
    assert await p.run(Resources()) == Step.DONE
    assert p.calls == 3


@pytest.mark.anyio
async def test_error_propagates_under_fail_fast() -> None:
    p = Scripted("PER")
    with pytest.raises(TaskExecutionError, match="poll 2 failed"):
        await p.run(Resources())
    assert p.calls == 2


@pytest.mark.anyio
async def test_split_ready_result_is_returned_by_run_and_rejected_by_the_engine() -> None:
    @poll
    class Splitter:
        async def poll(self, res: Resources) -> PollOutcome[Step]:
            return PollOutcome.ready(TaskResult.split([Step.WAIT, Step.NEXT]))

    assert await Splitter().run(Resources()) == TaskResult.split([Step.WAIT, Step.NEXT])  # type: ignore[attr-defined]
    wf = Workflow().register(Step.WAIT, Splitter()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure, match="register_split"):
        await wf.orchestrate(Step.WAIT)


@pytest.mark.anyio
async def test_poller_in_a_workflow() -> None:
    @task
    async def next_step() -> Step:
        return Step.DONE

    obs = RecordingObserver()
    p = Scripted("PR")
    wf = (
        Workflow()
        .register(Step.WAIT, p)
        .register(Step.NEXT, next_step)
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    assert await wf.orchestrate(Step.WAIT) == Step.DONE
    assert obs.states_entered() == ["WAIT", "DONE"]
    assert [type(e).__name__ for e in obs.events].count("TaskStarted") == 1


@pytest.mark.anyio
async def test_retry_on_error_within_budget_succeeds() -> None:
    p = Scripted("EER", PollErrorPolicy.retry_on_error(2))
    assert await p.run(Resources()) == Step.DONE
    assert p.calls == 3


@pytest.mark.anyio
async def test_retry_on_error_over_budget_fails() -> None:
    p = Scripted("EEER", PollErrorPolicy.retry_on_error(2))
    with pytest.raises(TaskExecutionError, match="poll 3 failed"):
        await p.run(Resources())
    assert p.calls == 3


@pytest.mark.anyio
async def test_pending_resets_the_error_counter() -> None:
    p = Scripted("EPER", PollErrorPolicy.retry_on_error(1))
    assert await p.run(Resources()) == Step.DONE
    assert p.calls == 4


@pytest.mark.anyio
async def test_retry_on_error_zero_fails_on_first_error() -> None:
    p = Scripted("ER", PollErrorPolicy.retry_on_error(0))
    with pytest.raises(TaskExecutionError):
        await p.run(Resources())


@pytest.mark.anyio
async def test_error_budget_resets_on_pending_and_kills_on_burst() -> None:
    # three consecutive errors, twice separated by a pending, survive; four do not
    p = Scripted("EEEPEEEPEEEE" + "R", PollErrorPolicy.retry_on_error(3))
    with pytest.raises(StateFailure) as info:
        await Workflow().register(Step.WAIT, p).add_exit_state(Step.DONE).orchestrate(Step.WAIT)
    assert p.calls == 12
    assert info.value.category == "task_execution"


@pytest.mark.anyio
async def test_errors_re_poll_immediately_without_sleeping() -> None:
    with MockClock() as clock:
        start = clock.now()
        p = Scripted("EEER", PollErrorPolicy.retry_on_error(5))
        await p.run(Resources())
        assert clock.now() == start


@pytest.mark.anyio
async def test_pending_delay_sleeps_on_the_library_clock() -> None:
    with MockClock() as clock:
        start = clock.now()
        p = Scripted(["P5", "P5", "P0", "R"])
        assert await p.run(Resources()) == Step.DONE
        assert clock.now() - start == pytest.approx(10.0)


@pytest.mark.anyio
async def test_eternal_pending_is_bounded_by_attempt_timeout() -> None:
    class Forever(PollTask[Step]):
        calls = 0

        def config(self) -> TaskConfig:
            return TaskConfig.minimal().with_attempt_timeout(0.03)

        async def poll(self, res: Resources) -> PollOutcome[Step]:
            self.calls += 1
            return PollOutcome.pending(0.002)

    p = Forever()
    wf = Workflow().register(Step.WAIT, p).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.WAIT)
    assert info.value.category == "timeout"
    assert p.calls >= 1


@pytest.mark.anyio
async def test_outer_retry_restarts_polling_from_scratch() -> None:
    class Flaky(Scripted):
        def config(self) -> TaskConfig:
            return TaskConfig.minimal().with_fixed_retry(1, 0)

    p = Flaky("PEPR")
    wf = Workflow().register(Step.WAIT, p).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.WAIT) == Step.DONE
    assert p.calls == 4


@pytest.mark.anyio
async def test_poll_is_cancellable_mid_sleep() -> None:
    token = CancellationToken()
    p = Scripted(["P3600"] * 3)

    async def cancel_when_blocked() -> None:
        await anyio.wait_all_tasks_blocked()
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_blocked)
        with pytest.raises(StateFailure) as info:
            await (
                Workflow()
                .register(Step.WAIT, p)
                .add_exit_state(Step.DONE)
                .orchestrate(Step.WAIT, cancel=token)
            )
    assert info.value.category == "cancelled"


@pytest.mark.anyio
async def test_wrong_return_type_is_a_task_error() -> None:
    @poll
    class Bad:
        async def poll(self, res: Resources) -> Step:
            return Step.DONE

    with pytest.raises(TaskExecutionError, match="must return a PollOutcome"):
        await Bad().run(Resources())  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_on_poll_error_may_be_a_plain_attribute() -> None:
    @poll
    class Attr:
        on_poll_error = PollErrorPolicy.retry_on_error(1)

        def __init__(self) -> None:
            self.calls = 0

        async def poll(self, res: Resources) -> PollOutcome[Step]:
            self.calls += 1
            if self.calls == 1:
                raise ValueError("transient")
            return PollOutcome.ready(Step.DONE)

    assert await Attr().run(Resources()) == Step.DONE  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_pending_zero_lets_other_tasks_run() -> None:
    """A poller re-polling at once must not starve the task it is waiting for."""
    import enum as _enum

    from cano_dsl import PollOutcome, Workflow, poll

    class St(_enum.Enum):
        WAIT = _enum.auto()
        DONE = _enum.auto()

    flag = {"ready": False}

    @poll(state=St)
    class Waiter:
        async def poll(self, res: Resources) -> PollOutcome:
            return PollOutcome.ready(St.DONE) if flag["ready"] else PollOutcome.pending(0)

    async def setter() -> None:
        await anyio.sleep(0)
        flag["ready"] = True

    wf = Workflow.bare().register(St.WAIT, Waiter()).add_exit_state(St.DONE)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(setter)
            assert await wf.orchestrate(St.WAIT) is St.DONE
