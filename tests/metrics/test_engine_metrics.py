"""Always-on metrics of the engine (REFERENCE §11.3): workflow runs, task durations and
attempts, split branches, checkpoints and compensation drains."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    JoinConfig,
    JoinStrategy,
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    Workflow,
    compensatable,
    router,
    stepped,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, RecordingMetricsSink

pytestmark = pytest.mark.anyio

MINIMAL = TaskConfig.minimal()


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    DONE = enum.auto()


def goto(state: Step, config: TaskConfig = MINIMAL, name: str | None = None) -> Any:
    async def fn() -> Step:
        return state

    return task(config=config, name=name or f"to_{state.name}")(fn)


def failing(config: TaskConfig = MINIMAL, name: str = "fail") -> Any:
    async def fn() -> Step:
        raise RuntimeError("boom")

    return task(config=config, name=name)(fn)


@router(state=Step, config=MINIMAL, name="route")
class Route:
    async def route(self, res: Resources) -> Step:
        return Step.DONE


def linear() -> Workflow[Step]:
    return (
        Workflow(Resources())
        .register(Step.A, goto(Step.B))
        .register_router(Step.B, Route())
        .add_exit_state(Step.DONE)
    )


async def test_completed_run_counts_one_completed_run_with_a_duration(
    sink: RecordingMetricsSink,
) -> None:
    assert await linear().orchestrate(Step.A) is Step.DONE
    assert sink.counter_value("cano_workflow_runs_total", outcome="completed") == 1
    assert sink.counter_value("cano_workflow_runs_total", outcome="failed") == 0
    (duration,) = sink.histogram_values("cano_workflow_duration_seconds", outcome="completed")
    assert duration >= 0
    assert sink.gauge_value("cano_workflow_active") == 0


async def test_failed_run_counts_failed(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register(Step.A, failing()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert sink.counter_value("cano_workflow_runs_total", outcome="failed") == 1
    assert len(sink.histogram_values("cano_workflow_duration_seconds", outcome="failed")) == 1
    assert sink.gauge_value("cano_workflow_active") == 0


async def test_active_gauge_is_one_while_the_run_is_in_flight(sink: RecordingMetricsSink) -> None:
    seen: list[float] = []

    @task(config=MINIMAL, name="peek")
    async def peek() -> Step:
        seen.append(sink.gauge_value("cano_workflow_active"))
        return Step.DONE

    await Workflow(Resources()).register(Step.A, peek).add_exit_state(Step.DONE).orchestrate(Step.A)
    assert seen == [1]
    assert sink.gauge_value("cano_workflow_active") == 0


async def test_validation_errors_are_not_runs(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register(Step.A, goto(Step.B))
    with pytest.raises(Exception):
        await wf.orchestrate(Step.A)
    assert "cano_workflow_runs_total" not in sink.names()


async def test_scheduler_entry_point_records_no_run(sink: RecordingMetricsSink) -> None:
    await linear().execute_flow(Step.A)
    assert "cano_workflow_runs_total" not in sink.names()
    assert "cano_workflow_active" not in sink.names()


async def test_task_duration_by_state_and_kind(sink: RecordingMetricsSink) -> None:
    await linear().orchestrate(Step.A)
    assert len(sink.histogram_values("cano_task_duration_seconds", state="A", kind="single")) == 1
    assert len(sink.histogram_values("cano_task_duration_seconds", state="B", kind="router")) == 1
    assert len(sink.histogram_values("cano_task_duration_seconds")) == 2


async def test_task_duration_recorded_for_a_failed_dispatch(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register(Step.A, failing()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert len(sink.histogram_values("cano_task_duration_seconds", state="A", kind="single")) == 1


async def test_attempts_count_every_retry_loop_attempt(sink: RecordingMetricsSink) -> None:
    calls = 0

    @task(config=TaskConfig.minimal().with_fixed_retry(3, 0), name="flaky")
    async def flaky() -> Step:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("not yet")
        return Step.DONE

    await (
        Workflow(Resources()).register(Step.A, flaky).add_exit_state(Step.DONE).orchestrate(Step.A)
    )
    assert sink.counter_value("cano_task_attempts_total", outcome="failed") == 2
    assert sink.counter_value("cano_task_attempts_total", outcome="completed") == 1


async def test_open_breaker_counts_a_rejection_and_no_attempt(sink: RecordingMetricsSink) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=60))
    config = TaskConfig.minimal().with_circuit_breaker(breaker)
    wf = Workflow(Resources()).register(Step.A, failing(config)).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert sink.counter_value("cano_circuit_rejections_total") == 1
    assert sink.counter_value("cano_task_attempts_total", outcome="failed") == 1


async def test_split_branch_results(sink: RecordingMetricsSink) -> None:
    wf = (
        Workflow(Resources())
        .register_split(
            Step.A,
            [goto(Step.B, name="x"), goto(Step.B, name="y"), failing(name="z")],
            JoinConfig(JoinStrategy.quorum(2), Step.DONE),
        )
        .add_exit_state(Step.DONE)
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert sink.counter_value("cano_split_branch_results_total", result="success") == 2
    assert sink.counter_value("cano_split_branch_results_total", result="failure") == 1
    assert ("result", "cancelled") not in {
        pair for labels in sink.series("cano_split_branch_results_total") for pair in labels
    }
    assert len(sink.histogram_values("cano_task_duration_seconds", kind="split")) == 1


async def test_stepped_iterations_more_and_done(sink: RecordingMetricsSink) -> None:
    @stepped(state=Step, config=MINIMAL, name="pages")
    class Pages:
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
            page = cursor or 0
            if page == 2:
                return StepOutcome.done(Step.DONE)
            return StepOutcome.more(page + 1)

    wf = Workflow(Resources()).register_stepped(Step.A, Pages()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert sink.counter_value("cano_step_iterations_total", outcome="more") == 2
    assert sink.counter_value("cano_step_iterations_total", outcome="done") == 1
    assert len(sink.histogram_values("cano_task_duration_seconds", kind="stepped")) == 1


async def test_checkpoint_appends_and_clear(sink: RecordingMetricsSink) -> None:
    store = InMemoryCheckpointStore()
    wf = linear().with_checkpoint_store(store).with_workflow_id("run-1")
    await wf.orchestrate(Step.A)
    # A and DONE get a row; the router B does not
    assert sink.counter_value("cano_checkpoint_appends_total", result="ok") == 2
    assert sink.counter_value("cano_checkpoint_clears_total", result="ok") == 1
    assert sink.counter_value("cano_checkpoint_appends_total", result="err") == 0


async def test_checkpoint_append_failure_counts_err(sink: RecordingMetricsSink) -> None:
    class Broken(InMemoryCheckpointStore):
        async def append(self, workflow_id: str, row: Any) -> None:
            raise OSError("disk full")

    wf = linear().with_checkpoint_store(Broken()).with_workflow_id("run-2")
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert sink.counter_value("cano_checkpoint_appends_total", result="err") == 1
    assert sink.counter_value("cano_workflow_runs_total", outcome="failed") == 1


def booking(name: str, nxt: Step, undo_error: Exception | None = None) -> Any:
    @compensatable(state=Step, config=MINIMAL, name=name)
    class Booking:
        async def run(self, res: Resources) -> tuple[Step, int]:
            return nxt, 1

        async def compensate(self, res: Resources, output: int) -> None:
            if undo_error is not None:
                raise undo_error

    return Booking()


async def test_clean_rollback_counts_runs_ok_and_a_clean_drain(sink: RecordingMetricsSink) -> None:
    wf = (
        Workflow(Resources())
        .register_with_compensation(Step.A, booking("a", Step.B))
        .register_with_compensation(Step.B, booking("b", Step.C))
        .register(Step.C, failing())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert sink.counter_value("cano_compensations_run_total", result="ok") == 2
    assert sink.counter_value("cano_compensation_drains_total", outcome="clean") == 1
    assert sink.counter_value("cano_compensation_drains_total", outcome="partial") == 0
    assert len(sink.histogram_values("cano_task_duration_seconds", kind="compensatable")) == 2


async def test_dirty_rollback_counts_err_and_a_partial_drain(sink: RecordingMetricsSink) -> None:
    wf = (
        Workflow(Resources())
        .register_with_compensation(Step.A, booking("a", Step.B))
        .register_with_compensation(Step.B, booking("b", Step.C, RuntimeError("stuck")))
        .register(Step.C, failing())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(Exception):
        await wf.orchestrate(Step.A)
    assert sink.counter_value("cano_compensations_run_total", result="ok") == 1
    assert sink.counter_value("cano_compensations_run_total", result="err") == 1
    assert sink.counter_value("cano_compensation_drains_total", outcome="partial") == 1


async def test_failure_with_an_empty_stack_records_no_drain(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register(Step.A, failing()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert "cano_compensation_drains_total" not in sink.names()


async def test_resume_counts_a_run(sink: RecordingMetricsSink) -> None:
    store = InMemoryCheckpointStore()
    broken = (
        Workflow(Resources())
        .register(Step.A, goto(Step.B))
        .register(Step.B, failing())
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("r")
    )
    with pytest.raises(StateFailure):
        await broken.orchestrate(Step.A)
    fixed = (
        Workflow(Resources())
        .register(Step.A, goto(Step.B))
        .register(Step.B, goto(Step.DONE))
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
    )
    assert await fixed.resume_from("r") is Step.DONE
    assert sink.counter_value("cano_workflow_runs_total", outcome="failed") == 1
    assert sink.counter_value("cano_workflow_runs_total", outcome="completed") == 1
