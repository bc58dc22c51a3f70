"""cano_dsl.testing: RecordingObserver, TestResources, assert_compensation_ran and the
pytest plugin's fixtures."""

from __future__ import annotations

import enum

import pytest

from cano_dsl import MemoryStore, Resources, TaskConfig, Workflow, task
from cano_dsl.testing import RecordingObserver, TestResources, assert_compensation_ran
from cano_dsl.testing._observer import StateEntered, TaskStarted, TaskSucceeded


class Step(enum.Enum):
    A = 1
    B = 2
    DEAD = 3
    DONE = 4


@task(config=TaskConfig.minimal(), name="a")
async def to_b() -> Step:
    return Step.B


@task(config=TaskConfig.minimal(), name="b")
async def to_done() -> Step:
    return Step.DONE


def workflow(obs: RecordingObserver) -> Workflow[Step]:
    return (
        Workflow.bare()
        .register(Step.A, to_b)
        .register(Step.B, to_done)
        .register(Step.DEAD, to_done)
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )


@pytest.mark.anyio
async def test_recording_observer_records_in_order(recording_observer: RecordingObserver) -> None:
    await workflow(recording_observer).orchestrate(Step.A)
    assert recording_observer.events[:3] == [
        StateEntered("A"),
        TaskStarted("a"),
        TaskSucceeded("a"),
    ]
    assert recording_observer.states_entered() == ["A", "B", "DONE"]
    recording_observer.assert_path([Step.A, "B", Step.DONE])
    recording_observer.assert_completed_with(Step.DONE)
    recording_observer.assert_all_states_entered([Step.A, Step.B, Step.A])
    with pytest.raises(AssertionError, match="DEAD"):
        recording_observer.assert_registered_states_entered(workflow(recording_observer))
    with pytest.raises(AssertionError, match="expected"):
        recording_observer.assert_path(["A"])
    with pytest.raises(AssertionError, match="ends? in|end in"):
        recording_observer.assert_completed_with("B")
    taken = recording_observer.take()
    assert len(taken) == 7 and recording_observer.events == []


def test_test_resources_builds_fresh_resources(test_resources: TestResources) -> None:
    sentinel = object()
    builder = test_resources.with_store("store").with_resource("thing", sentinel)
    res = builder.build()
    assert isinstance(res, Resources)
    assert isinstance(res.get("store"), MemoryStore) and res.get("thing") is sentinel
    assert len(test_resources.build()) == 0  # builders are immutable


def test_assert_compensation_ran() -> None:
    assert_compensation_ran(["charge", "reserve"], ["charge", "reserve"])
    with pytest.raises(AssertionError, match="first difference at index 0"):
        assert_compensation_ran(["reserve", "charge"], ["charge", "reserve"])
    with pytest.raises(AssertionError, match="index 1"):
        assert_compensation_ran(["charge"], ["charge", "reserve"])


@pytest.mark.anyio
async def test_plugin_fixtures_for_store_and_clock(
    in_memory_checkpoint_store: object, mock_clock: object
) -> None:
    from cano_dsl import CheckpointRow, CheckpointStore, _clock
    from cano_dsl.testing import MockClock

    assert isinstance(in_memory_checkpoint_store, CheckpointStore)
    await in_memory_checkpoint_store.append("id", CheckpointRow(0, "A", "t"))
    assert [r.sequence for r in await in_memory_checkpoint_store.load_run("id")] == [0]
    assert isinstance(mock_clock, MockClock) and _clock.get_clock() is mock_clock
    before = mock_clock.now()
    await _clock.sleep(3600)  # virtual: returns at once
    assert mock_clock.now() - before >= 3600 - 1e-6  # float readings


@pytest.mark.anyio
async def test_panic_on_attempt_fails_fast_by_default_and_recovers_with_retries() -> None:
    from cano_dsl import RetryExhausted, StateFailure, TaskExecutionError
    from cano_dsl.testing import panic_on_attempt

    failing = panic_on_attempt(1, Step.DONE)
    wf = Workflow.bare().register(Step.A, failing).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, TaskExecutionError)
    assert "panic_on_attempt: forced panic on attempt 1" in str(info.value.error)
    assert failing.attempts() == 1 and failing.name() == "PanicOnAttempt"

    flaky = panic_on_attempt(2, Step.DONE).with_config(TaskConfig().with_fixed_retry(3, 0))
    assert await wf.register(Step.A, flaky).orchestrate(Step.A) is Step.DONE
    assert flaky.attempts() == 3

    stubborn = panic_on_attempt(5, Step.DONE).with_config(TaskConfig().with_fixed_retry(1, 0))
    with pytest.raises(StateFailure) as info:
        await wf.register(Step.A, stubborn).orchestrate(Step.A)
    assert isinstance(info.value.error, RetryExhausted) and info.value.attempt == 2


@pytest.mark.anyio
async def test_disabled_token_never_fires() -> None:
    from cano_dsl import CancellationToken

    token = CancellationToken.disabled()
    token.cancel()
    assert token.is_cancelled is False and token.is_disabled
    wf = Workflow.bare().register(Step.A, to_b).register(Step.B, to_done).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.A, cancel=token) is Step.DONE
