"""The engine loop: validation, the order of §1.4, wrapping, observers, resources
lifecycle, total timeout and cancellation (REFERENCE §1, §11.1, §13)."""

from __future__ import annotations

import enum
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cano_dsl import (
    CancellationToken,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    StateFailure,
    TaskConfig,
    TaskResult,
    Workflow,
    WorkflowCancelled,
    WorkflowError,
    WorkflowObserver,
    WorkflowTimeout,
    task,
)
from cano_dsl.testing import RecordingObserver
from cano_dsl.testing._observer import (
    Cancelled,
    TaskFailed,
    TaskStarted,
)


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


def goto(state: Step, name: str | None = None, config: TaskConfig | None = None) -> Any:
    async def fn() -> Step:
        return state

    return task(config=config or TaskConfig.minimal(), name=name or f"to_{state.name}")(fn)


def failing(message: str = "boom", config: TaskConfig | None = None, name: str = "fail") -> Any:
    async def fn() -> Step:
        raise RuntimeError(message)

    return task(config=config or TaskConfig.minimal(), name=name)(fn)


def hanging(name: str = "hang") -> Any:
    async def fn() -> Step:
        await anyio.sleep_forever()
        raise AssertionError

    return task(config=TaskConfig.minimal(), name=name)(fn)


class Lifecycle:
    def __init__(self) -> None:
        self.setups = 0
        self.teardowns = 0

    async def setup(self) -> None:
        self.setups += 1

    async def teardown(self) -> None:
        self.teardowns += 1


# -- validation ----------------------------------------------------------------


def test_validation_checks_in_order_with_exact_messages() -> None:
    with pytest.raises(ConfigurationError, match="Workflow has no registered state handlers"):
        Workflow.bare().validate()
    with pytest.raises(ConfigurationError, match="no exit states"):
        Workflow.bare().register(Step.A, goto(Step.DONE)).validate()
    dangling = (
        Workflow.bare()
        .register_split(Step.A, [goto(Step.B)], JoinConfig(JoinStrategy.all(), Step.C))
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(ConfigurationError, match="Split join_state C is neither registered"):
        dangling.validate()
    no_timeout = (
        Workflow.bare()
        .register_split(
            Step.A, [goto(Step.B)], JoinConfig(JoinStrategy.partial_timeout(), Step.DONE)
        )
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(ConfigurationError, match="requires a timeout"):
        no_timeout.validate()


def test_initial_state_must_be_known() -> None:
    wf = Workflow.bare().register(Step.A, goto(Step.DONE)).add_exit_state(Step.DONE)
    wf.validate_initial_state(Step.A)
    wf.validate_initial_state(Step.DONE)
    with pytest.raises(ConfigurationError, match="Initial state B is neither registered"):
        wf.validate_initial_state(Step.B)


@pytest.mark.anyio
async def test_validation_errors_are_raw_and_come_before_setup() -> None:
    life = Lifecycle()
    wf = Workflow(Resources().insert("life", life)).register(Step.A, goto(Step.DONE))
    with pytest.raises(ConfigurationError):
        await wf.orchestrate(Step.A)
    with pytest.raises(ConfigurationError):
        await wf.add_exit_state(Step.DONE).orchestrate(Step.B)
    assert life.setups == 0


@pytest.mark.anyio
async def test_setup_failure_is_raw_and_rolls_back() -> None:
    life = Lifecycle()

    class Broken:
        async def setup(self) -> None:
            raise OSError("no db")

    res = Resources().insert("life", life).insert("broken", Broken())
    wf = Workflow(res).register(Step.A, goto(Step.DONE)).add_exit_state(Step.DONE)
    with pytest.raises(OSError, match="no db"):
        await wf.orchestrate(Step.A)
    assert (life.setups, life.teardowns) == (1, 1)


# -- builder -------------------------------------------------------------------


def test_builder_is_immutable() -> None:
    base = Workflow.bare()
    one = base.register(Step.A, goto(Step.DONE))
    two = one.add_exit_state(Step.DONE)
    assert base.registered_states() == [] and one.exit_states == ()
    assert two.registered_states() == [Step.A] and two.exit_states == (Step.DONE,)
    assert two.add_exit_states([Step.DONE, Step.FAILED]).exit_states == (Step.DONE, Step.FAILED)
    assert two.with_observer(RecordingObserver())._observers != two._observers


@pytest.mark.anyio
async def test_linear_run_and_loops(anyio_backend: str) -> None:
    visits = {"n": 0}

    @task(config=TaskConfig.minimal())
    async def looper() -> Step:
        visits["n"] += 1
        return Step.A if visits["n"] < 3 else Step.B

    obs = RecordingObserver()
    wf = (
        Workflow.bare()
        .register(Step.A, looper)
        .register(Step.B, goto(Step.DONE))
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    obs.assert_path([Step.A, Step.A, Step.A, Step.B, Step.DONE])
    obs.assert_completed_with("DONE")


@pytest.mark.anyio
async def test_initial_exit_state_runs_nothing() -> None:
    called = {"n": 0}

    @task
    async def never() -> Step:
        called["n"] += 1
        return Step.DONE

    wf = Workflow.bare().register(Step.A, never).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.DONE) is Step.DONE
    assert called["n"] == 0


# -- failures and wrapping -----------------------------------------------------


@pytest.mark.anyio
async def test_task_failure_is_wrapped_with_state_and_path() -> None:
    wf = (
        Workflow.bare()
        .register(Step.A, goto(Step.B))
        .register(Step.B, failing("kaput"))
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    err = info.value
    assert err.state is Step.B and err.attempt == 1 and err.path == [Step.A, Step.B]
    assert isinstance(err.error, RuntimeError) and err.__cause__ is err.error
    assert err.category == "task_execution"


@pytest.mark.anyio
async def test_retry_exhausted_reports_true_attempt_count() -> None:
    wf = (
        Workflow.bare()
        .register(Step.A, failing(config=TaskConfig().with_fixed_retry(2, 0)))
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.attempt == 3 and info.value.category == "retry_exhausted"


@pytest.mark.anyio
async def test_transition_to_unregistered_state() -> None:
    wf = Workflow.bare().register(Step.A, goto(Step.C)).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, WorkflowError)
    assert info.value.error.message == "No task registered for state: C"
    assert info.value.path == [Step.A, Step.C]


@pytest.mark.anyio
async def test_split_result_from_single_task_is_rejected() -> None:
    @task(config=TaskConfig.minimal())
    async def splitter() -> TaskResult[Step]:
        return TaskResult.split([Step.B, Step.C])

    @task(config=TaskConfig.minimal())
    async def wrong_type() -> str:
        return "B"

    wf = Workflow.bare().register(Step.A, splitter).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure, match="use register_split"):
        await wf.orchestrate(Step.A)
    with pytest.raises(StateFailure, match="expected a Step member"):
        await wf.register(Step.A, wrong_type).orchestrate(Step.A)


@pytest.mark.anyio
async def test_task_result_single_is_accepted() -> None:
    @task
    async def t() -> TaskResult[Step]:
        return TaskResult.single(Step.DONE)

    assert (
        await Workflow.bare().register(Step.A, t).add_exit_state(Step.DONE).orchestrate(Step.A)
        is Step.DONE
    )


# -- observers -----------------------------------------------------------------


@pytest.mark.anyio
async def test_observer_order_with_retry() -> None:
    calls = {"n": 0}

    @task(config=TaskConfig().with_fixed_retry(2, 0), name="flaky")
    async def flaky() -> Step:
        calls["n"] += 1
        if calls["n"] < 2:
            raise ValueError("once")
        return Step.DONE

    obs = RecordingObserver()
    wf = Workflow.bare().register(Step.A, flaky).add_exit_state(Step.DONE).with_observer(obs)
    await wf.orchestrate(Step.A)
    names = [type(e).__name__ for e in obs.events]
    assert names == ["StateEntered", "TaskStarted", "Retry", "TaskSucceeded", "StateEntered"]


@pytest.mark.anyio
async def test_raising_observer_never_changes_the_run() -> None:
    class Exploding(WorkflowObserver):
        def on_state_enter(self, state: str) -> None:
            raise RuntimeError("observer bug")

    obs = RecordingObserver()
    wf = (
        Workflow.bare()
        .register(Step.A, goto(Step.DONE))
        .add_exit_state(Step.DONE)
        .with_observer(Exploding())
        .with_observer(obs)
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert obs.states_entered() == ["A", "DONE"]


@pytest.mark.anyio
async def test_failure_hook_gets_the_underlying_error() -> None:
    seen: list[BaseException] = []

    class Obs(WorkflowObserver):
        def on_task_failure(self, task_id: str, error: BaseException) -> None:
            seen.append(error)

    wf = Workflow.bare().register(Step.A, failing()).add_exit_state(Step.DONE).with_observer(Obs())
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert len(seen) == 1 and type(seen[0]) is RuntimeError


# -- total timeout -------------------------------------------------------------


@pytest.mark.anyio
async def test_total_timeout_trips_with_hooks_in_order() -> None:
    events: list[Any] = []

    class Obs(RecordingObserver):
        def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
            events.append(("timeout", limit))

        def on_task_failure(self, task_id: str, error: BaseException) -> None:
            events.append(("failure", task_id, type(error).__name__))

    life = Lifecycle()
    wf = (
        Workflow(Resources().insert("life", life))
        .register(Step.A, goto(Step.B))
        .register(Step.B, hanging("slow"))
        .add_exit_state(Step.DONE)
        .with_total_timeout(0.5)  # room for a stall before B's task starts
        .with_observer(Obs())
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    err = info.value
    assert isinstance(err.error, WorkflowTimeout)
    assert err.attempt == 0 and err.category == "workflow_timeout" and err.state is Step.B
    assert err.error.limit == 0.5 and err.error.elapsed >= 0.5
    assert events == [("failure", "slow", "WorkflowTimeout"), ("timeout", 0.5)]
    assert (life.setups, life.teardowns) == (1, 1)


# -- cancellation --------------------------------------------------------------


@pytest.mark.anyio
async def test_pre_cancelled_token_runs_nothing() -> None:
    called = {"n": 0}

    @task
    async def t() -> Step:
        called["n"] += 1
        return Step.DONE

    token = CancellationToken()
    token.cancel()
    token.cancel()  # idempotent
    obs = RecordingObserver()
    wf = Workflow.bare().register(Step.A, t).add_exit_state(Step.DONE).with_observer(obs)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A, cancel=token)
    err = info.value
    assert err.path == [] and err.state is Step.A and err.attempt == 0
    assert err.category == "cancelled" and isinstance(err.error, WorkflowCancelled)
    assert called["n"] == 0
    assert obs.events == [Cancelled("A")]


@pytest.mark.anyio
async def test_mid_task_cancel_reports_then_drains() -> None:
    token = CancellationToken()
    life = Lifecycle()

    @task(config=TaskConfig.minimal(), name="ship")
    async def ship() -> Step:
        token.cancel()
        await anyio.sleep_forever()
        raise AssertionError

    obs = RecordingObserver()
    wf = (
        Workflow(Resources().insert("life", life))
        .register(Step.A, goto(Step.B))
        .register(Step.B, ship)
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A, cancel=token)
    assert info.value.category == "cancelled" and info.value.attempt == 0
    assert info.value.path == [Step.A, Step.B]
    tail = obs.events[-3:]
    assert tail == [
        TaskStarted("ship"),
        TaskFailed("ship", "Workflow cancelled", "cancelled"),
        Cancelled("B"),
    ]
    assert (life.setups, life.teardowns) == (1, 1)


@pytest.mark.anyio
async def test_token_wait() -> None:
    token = CancellationToken()
    async with anyio.create_task_group() as tg:
        tg.start_soon(token.wait)
        await anyio.sleep(0)
        token.cancel()
    assert token.is_cancelled
    await token.wait()


@pytest.mark.anyio
async def test_enclosing_scope_cancel_propagates_after_teardown() -> None:
    life = Lifecycle()
    obs = RecordingObserver()
    wf = (
        Workflow(Resources().insert("life", life))
        .register(Step.A, hanging("hang"))
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    with anyio.move_on_after(0.02) as scope:
        await wf.orchestrate(Step.A)
    assert scope.cancelled_caught
    assert (life.setups, life.teardowns) == (1, 1)
    assert obs.of_type(Cancelled) == [Cancelled("A")]
    assert obs.of_type(TaskFailed) == [TaskFailed("hang", "Workflow cancelled", "cancelled")]


@pytest.mark.anyio
async def test_concurrent_runs_share_one_workflow() -> None:
    store = MemoryStore()

    @task(config=TaskConfig.minimal())
    async def count(res: Resources) -> Step:
        await anyio.sleep(0)
        res.get("store", MemoryStore).append("runs", 1)
        return Step.DONE

    wf = (
        Workflow(Resources().insert("store", store))
        .register(Step.A, count)
        .add_exit_state(Step.DONE)
    )
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(wf.orchestrate, Step.A)
    assert len(store.get("runs")) == 20


def test_run_sync_defaults_to_asyncio_and_accepts_trio() -> None:
    wf = Workflow.bare().register(Step.A, goto(Step.DONE)).add_exit_state(Step.DONE)
    assert wf.run_sync(Step.A) is Step.DONE
    assert wf.run_sync(Step.A, backend="trio") is Step.DONE


# -- resources exactly once per run, whatever the outcome -------------------------

OUTCOMES = ["ok", "fail", "retry_fail", "hang_timeout", "token_cancel", "scope_cancel", "bad_state"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=4))
def test_resources_set_up_and_torn_down_exactly_once_per_run(plan: list[str]) -> None:
    for backend in ("asyncio", "trio"):
        life = Lifecycle()
        token = CancellationToken()
        states = [Step.A, Step.B, Step.C]

        def make(i: int, outcome: str) -> Any:
            nxt = states[i + 1] if i + 1 < len(plan) and i + 1 < 3 else Step.DONE

            @task(config=TaskConfig().with_fixed_retry(1, 0), name=f"t{i}")
            async def t() -> Step:
                if outcome == "fail":
                    raise ValueError("fail")
                if outcome == "retry_fail":
                    raise KeyError("again")
                if outcome in ("hang_timeout", "scope_cancel"):
                    await anyio.sleep_forever()
                if outcome == "token_cancel":
                    token.cancel()
                    await anyio.sleep(0)
                if outcome == "bad_state":
                    return Step.FAILED
                return nxt

            return t

        wf: Workflow[Step] = Workflow(Resources().insert("life", life)).add_exit_state(Step.DONE)
        for i, outcome in enumerate(plan[:3]):
            wf = wf.register(states[i], make(i, outcome))
        wf = wf.with_total_timeout(0.5 if "scope_cancel" in plan else 0.02)

        async def go() -> None:
            with anyio.move_on_after(0.05):
                try:
                    await wf.orchestrate(Step.A, cancel=token)
                except StateFailure:
                    pass

        anyio.run(go, backend=backend)
        assert (life.setups, life.teardowns) == (1, 1), (plan, backend)


@pytest.mark.anyio
async def test_token_cancelled_from_another_thread() -> None:
    import threading

    token = CancellationToken()

    @task(config=TaskConfig.minimal(), name="wait")
    async def wait_forever() -> Step:
        threading.Timer(0.01, token.cancel).start()
        await anyio.sleep_forever()
        raise AssertionError

    wf = Workflow.bare().register(Step.A, wait_forever).add_exit_state(Step.DONE)
    with anyio.fail_after(5), pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A, cancel=token)
    assert info.value.category == "cancelled"


class Ping(enum.Enum):
    PING = enum.auto()
    PONG = enum.auto()
    DONE = enum.auto()


def _busy_loop() -> Workflow[Ping]:
    @task(config=TaskConfig.minimal(), name="ping")
    async def ping() -> Ping:  # never awaits anything
        return Ping.PONG

    @task(config=TaskConfig.minimal(), name="pong")
    async def pong() -> Ping:
        return Ping.PING

    return (
        Workflow.bare()
        .register(Ping.PING, ping)
        .register(Ping.PONG, pong)
        .add_exit_state(Ping.DONE)
    )


@pytest.mark.anyio
async def test_a_machine_that_never_awaits_can_still_be_cancelled_by_its_token() -> None:
    token = CancellationToken()

    async def cancel_soon() -> None:
        await anyio.sleep(0.01)
        token.cancel()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            with pytest.raises(StateFailure) as info:
                await _busy_loop().orchestrate(Ping.PING, cancel=token)
    assert info.value.category == "cancelled"


@pytest.mark.anyio
async def test_a_machine_that_never_awaits_still_times_out() -> None:
    with anyio.fail_after(5), pytest.raises(StateFailure) as info:
        await _busy_loop().with_total_timeout(0.02).orchestrate(Ping.PING)
    assert info.value.category == "workflow_timeout" and info.value.attempt == 0


@pytest.mark.anyio
async def test_a_machine_that_never_awaits_yields_to_an_enclosing_scope() -> None:
    with anyio.fail_after(5), anyio.move_on_after(0.02) as scope:
        await _busy_loop().orchestrate(Ping.PING)
    assert scope.cancelled_caught
