"""Careless input is refused at the call that receives it (issue 8, item 7), with a
`ConfigurationError` (`TaskDefinitionError` at decoration) whose message says what is
allowed; and ``with_attempt_timeout(0)`` is accepted, as in cano (issue 13, row 4)."""

from __future__ import annotations

import datetime
import enum
import math
import warnings
from typing import Any

import anyio
import pytest

from cano_dsl import (
    BatchTask,
    CircuitPolicy,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    Resources,
    RetryMode,
    Scheduler,
    StateFailure,
    TaskConfig,
    TaskDefinitionError,
    TaskTimeout,
    Workflow,
    WorkflowObserver,
    batch,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, RecordingObserver

INF = math.inf
NAN = math.nan


class Step(enum.Enum):
    START = enum.auto()
    DONE = enum.auto()


@task(state=Step, config=TaskConfig.minimal())
class Finish:
    async def run(self, res: Resources) -> Step:
        return Step.DONE


def workflow() -> Workflow[Step]:
    return Workflow.bare().register(Step.START, Finish()).add_exit_state(Step.DONE)


# -- retry policies ---------------------------------------------------------------


@pytest.mark.parametrize("delay", [INF, -INF, NAN, -0.5, datetime.timedelta(seconds=-1)], ids=repr)
def test_fixed_retry_delay_must_be_finite_and_non_negative(delay: Any) -> None:
    with pytest.raises(ConfigurationError, match="retry delay must be a"):
        TaskConfig().with_fixed_retry(3, delay)
    with pytest.raises(ConfigurationError, match="retry delay must be a"):
        RetryMode.fixed(3, delay)


@pytest.mark.parametrize("field", ["base_delay", "max_delay"])
@pytest.mark.parametrize("bad", [INF, NAN, -1.0])
def test_exponential_delays_must_be_finite_and_non_negative(field: str, bad: float) -> None:
    knobs: dict[str, Any] = {
        "max_retries": 3,
        "base_delay": 0.1,
        "multiplier": 2.0,
        "max_delay": 5.0,
        "jitter": 0.1,
    }
    knobs[field] = bad
    with pytest.raises(ConfigurationError, match=f"{field} must be a"):
        RetryMode.exponential_custom(**knobs)


@pytest.mark.parametrize("jitter", [1.5, -0.1, NAN, INF, -INF])
def test_jitter_outside_zero_one_is_refused_not_clamped(jitter: float) -> None:
    with pytest.raises(ConfigurationError, match=r"jitter must be a number in \[0, 1\]"):
        RetryMode.exponential_custom(3, 0.1, 2.0, 5.0, jitter)


@pytest.mark.parametrize("jitter", [0, 0.0, 0.5, 1, 1.0])
def test_jitter_in_zero_one_is_kept(jitter: float) -> None:
    assert RetryMode.exponential_custom(3, 0.1, 2.0, 5.0, jitter).jitter == jitter


@pytest.mark.parametrize("breaker", [CircuitPolicy(), "breaker", 5], ids=repr)
def test_circuit_breaker_must_be_a_breaker(breaker: Any) -> None:
    with pytest.raises(ConfigurationError, match="circuit_breaker must be a CircuitBreaker"):
        TaskConfig().with_circuit_breaker(breaker)


# -- with_attempt_timeout(0): accepted, as in cano ---------------------------------------


def test_attempt_timeout_zero_is_accepted() -> None:
    assert TaskConfig().with_attempt_timeout(0).attempt_timeout == 0.0
    assert TaskConfig().with_attempt_timeout(datetime.timedelta(0)).attempt_timeout == 0.0


@pytest.mark.parametrize("bad", [-0.001, NAN, True, "1"], ids=repr)
def test_attempt_timeout_still_refuses_negative_nan_and_non_numbers(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="attempt_timeout must be"):
        TaskConfig().with_attempt_timeout(bad)


@task(state=Step)
class AwaitsSomething:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal().with_attempt_timeout(0)

    async def run(self, res: Resources) -> Step:
        await anyio.sleep(0)
        return Step.DONE


@task(state=Step)
class NeverYields:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal().with_attempt_timeout(0)

    async def run(self, res: Resources) -> Step:
        return Step.DONE


@pytest.mark.anyio
async def test_attempt_timeout_zero_times_out_a_task_that_awaits() -> None:
    wf = Workflow.bare().register(Step.START, AwaitsSomething()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.START)
    assert isinstance(info.value.error, TaskTimeout)
    assert info.value.category == "timeout"


@pytest.mark.anyio
async def test_attempt_timeout_zero_lets_a_task_that_never_yields_finish() -> None:
    # cano: tokio's timeout polls the task first, so a task ready on its first poll wins
    wf = Workflow.bare().register(Step.START, NeverYields()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.START) is Step.DONE


# -- observers --------------------------------------------------------------------------


@pytest.mark.parametrize("obs", [None, 42, "x", object(), [RecordingObserver()]], ids=repr)
def test_with_observer_refuses_what_is_not_an_observer(obs: Any) -> None:
    with pytest.raises(ConfigurationError, match="is not an observer; pass an object with"):
        workflow().with_observer(obs)


def test_with_observer_refuses_a_class() -> None:
    with pytest.raises(ConfigurationError, match=r"pass an instance \(`RecordingObserver\(\)`\)"):
        workflow().with_observer(RecordingObserver)


class AsyncHooks(WorkflowObserver):
    def on_state_enter(self, state: str) -> None:
        pass

    async def on_task_failure(self, task_id: str, error: BaseException) -> None:  # type: ignore[override]
        pass


class DuckAsync:
    async def on_state_enter(self, state: str) -> None:
        pass


@pytest.mark.parametrize("obs", [AsyncHooks(), DuckAsync()], ids=lambda o: type(o).__name__)
def test_with_observer_refuses_async_hooks(obs: Any) -> None:
    with pytest.raises(ConfigurationError, match="is `async def`; observer hooks are synchronous"):
        workflow().with_observer(obs)


@pytest.mark.anyio
async def test_with_observer_accepts_a_duck_typed_sync_observer() -> None:
    class Entered:
        def __init__(self) -> None:
            self.states: list[str] = []

        def on_state_enter(self, state: str) -> None:
            self.states.append(state)

    obs = Entered()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        assert await workflow().with_observer(obs).orchestrate(Step.START) is Step.DONE
    assert obs.states == ["START", "DONE"]


# -- @batch concurrency ---------------------------------------------------------------------


@pytest.mark.parametrize("conc", [None, 1.5, INF, "4", True, 4.0], ids=repr)
def test_batch_concurrency_must_be_an_int_at_decoration(conc: Any) -> None:
    with pytest.raises(TaskDefinitionError, match="`concurrency` must be an int"):

        @batch(state=Step)
        class Bad:
            concurrency = conc

            async def load(self, res: Resources) -> list[int]:
                return [1]

            async def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_batch_concurrency_checked_on_the_base_class_form_too() -> None:
    with pytest.raises(TaskDefinitionError, match="`concurrency` must be an int"):

        class Bad(BatchTask[Step, int, int]):
            concurrency = None  # type: ignore[assignment]

            async def load(self, res: Resources) -> list[int]:
                return [1]

            async def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


@pytest.mark.anyio
async def test_batch_concurrency_method_giving_a_float_fails_before_load() -> None:
    loads: list[int] = []

    @batch(state=Step, config=TaskConfig.minimal())
    class Bad:
        def concurrency(self) -> Any:
            return 2.5

        async def load(self, res: Resources) -> list[int]:
            loads.append(1)
            return [1]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            return Step.DONE

    wf = Workflow.bare().register(Step.START, Bad()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.START)
    assert isinstance(info.value.error, TaskDefinitionError)
    assert "concurrency must be an int" in str(info.value.error)
    assert loads == []


# -- scheduler intervals and flows ------------------------------------------------------------


@pytest.mark.parametrize(
    "interval", [0, 0.0, datetime.timedelta(0), -1, NAN, INF, True, "5"], ids=repr
)
def test_every_refuses_zero_negative_nan_infinite_and_non_numbers(interval: Any) -> None:
    with pytest.raises(ConfigurationError, match="Flow 'sync' interval must be"):
        Scheduler().every("sync", workflow(), Step.START, interval)


@pytest.mark.parametrize("method", ["every_seconds", "every_minutes", "every_hours"])
@pytest.mark.parametrize("n", [0, -2, NAN, INF], ids=repr)
def test_every_unit_variants_refuse_bad_intervals(method: str, n: float) -> None:
    with pytest.raises(ConfigurationError, match="Flow 'sync' interval"):
        getattr(Scheduler(), method)("sync", workflow(), Step.START, n)


@pytest.mark.parametrize("method", ["every_minutes", "every_hours"])
def test_every_unit_variants_refuse_an_interval_that_overflows(method: str) -> None:
    with pytest.raises(ConfigurationError, match="got inf"):
        getattr(Scheduler(), method)("sync", workflow(), Step.START, 1e308)


def test_every_accepts_positive_intervals() -> None:
    sched = Scheduler().every("a", workflow(), Step.START, 0.5)
    sched.every("b", workflow(), Step.START, datetime.timedelta(minutes=1))
    sched.every_minutes("c", workflow(), Step.START, 0.5)
    assert repr(sched) == "Scheduler({'a': every 0.5s, 'b': every 60s, 'c': every 30s})"


def test_flow_id_must_be_non_empty_and_initial_an_enum_member() -> None:
    with pytest.raises(ConfigurationError, match="non-empty str"):
        Scheduler().manual("", workflow(), Step.START)
    with pytest.raises(ConfigurationError, match="initial state must be a member"):
        Scheduler().manual("adhoc", workflow(), "START")


# -- split joins ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "hint"),
    [
        (JoinStrategy.all, r"`JoinStrategy.all\(\)`"),
        (JoinStrategy.any, r"`JoinStrategy.any\(\)`"),
        (JoinStrategy.quorum, r"`JoinStrategy.quorum\(...\)`"),
        (JoinStrategy.partial_timeout, r"`JoinStrategy.partial_timeout\(\)`"),
    ],
)
def test_join_config_refuses_an_uncalled_strategy_factory(factory: Any, hint: str) -> None:
    with pytest.raises(ConfigurationError, match=hint):
        JoinConfig(factory, Step.DONE)


@pytest.mark.parametrize("strategy", ["all", None, 3], ids=repr)
def test_join_config_refuses_what_is_not_a_strategy(strategy: Any) -> None:
    with pytest.raises(ConfigurationError, match="strategy must be a JoinStrategy"):
        JoinConfig(strategy, Step.DONE)


def test_join_config_refuses_a_join_state_that_is_not_a_state() -> None:
    with pytest.raises(ConfigurationError, match="join_state must be a member"):
        JoinConfig(JoinStrategy.all(), "DONE")


def test_register_split_refuses_a_single_task_for_the_list() -> None:
    with pytest.raises(ConfigurationError, match="tasks must be a list of tasks"):
        Workflow.bare().register_split(
            Step.START, Finish(), JoinConfig(JoinStrategy.all(), Step.DONE)
        )


# -- workflow builder -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "value", "message"),
    [
        ("with_total_timeout", -1, "non-negative"),
        ("with_total_timeout", NAN, "non-negative"),
        ("with_total_timeout", True, "float seconds or a datetime.timedelta"),
        ("with_total_timeout", "30", "float seconds or a datetime.timedelta"),
        ("with_total_timeout", datetime.timedelta(seconds=-1), "non-negative"),
        ("with_compensation_timeout", -0.5, "non-negative"),
        ("with_compensation_timeout", NAN, "non-negative"),
        ("with_compensation_timeout", False, "float seconds or a datetime.timedelta"),
    ],
    ids=repr,
)
def test_workflow_timeouts_refuse_bad_values(method: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        getattr(workflow(), method)(value)


def test_with_checkpoint_store_refuses_the_class() -> None:
    with pytest.raises(ConfigurationError, match=r"`InMemoryCheckpointStore\(...\)`"):
        workflow().with_checkpoint_store(InMemoryCheckpointStore)


@pytest.mark.parametrize("states", [Step.DONE, "DONE", 3], ids=repr)
def test_add_exit_states_refuses_what_is_not_an_iterable_of_states(states: Any) -> None:
    with pytest.raises(ConfigurationError, match="add_exit_states takes an iterable of states"):
        Workflow.bare().add_exit_states(states)
