"""MetricsObserver: cano's observer-emitted metric names, labels and values, read back
through the OpenTelemetry SDK's in-memory reader."""

from __future__ import annotations

import enum
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CircuitBreaker,
    CircuitPolicy,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)
from cano_dsl.observability import METRIC_NAMES, MetricsObserver
from cano_dsl.stores import CheckpointRow
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    DONE = enum.auto()


def flaky(failures: int) -> Any:
    left = {"n": failures}

    @task(config=TaskConfig().with_fixed_retry(3, 0), name="flaky")
    async def run() -> Step:
        if left["n"] > 0:
            left["n"] -= 1
            raise ConnectionError("not yet")
        return Step.B

    return run


@task(config=TaskConfig.minimal(), name="finish")
async def finish() -> Step:
    return Step.DONE


@task(config=TaskConfig.minimal(), name="boom")
async def boom() -> Step:
    raise ValueError("boom")


def one(points: dict[Any, Any]) -> Any:
    assert list(points) == [()], points
    return points[()]


async def test_state_enters_runs_and_retries_are_counted(metrics: Any) -> None:
    wf = (
        Workflow.bare()
        .register(Step.A, flaky(2))
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_observer(MetricsObserver(metrics.meter))
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    got = metrics.collect()
    assert got["cano_state_enters_total"] == {
        (("state", "A"),): 1,
        (("state", "B"),): 1,
        (("state", "DONE"),): 1,
    }
    assert got["cano_observed_task_runs_total"] == {
        (("outcome", "completed"), ("task", "flaky")): 1,
        (("outcome", "completed"), ("task", "finish")): 1,
    }
    assert got["cano_task_retries_total"] == {(("task", "flaky"),): 2}


async def test_a_failed_task_counts_as_failed(metrics: Any) -> None:
    wf = (
        Workflow.bare()
        .register(Step.A, boom)
        .add_exit_state(Step.DONE)
        .with_observer(MetricsObserver(metrics.meter))
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert metrics.points("cano_observed_task_runs_total") == {
        (("outcome", "failed"), ("task", "boom")): 1
    }


async def test_an_open_breaker_counts_a_circuit_open_event_and_a_failure(metrics: Any) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=60))
    breaker.try_acquire().record_failure()

    @task(config=TaskConfig.minimal().with_circuit_breaker(breaker), name="guarded")
    async def guarded() -> Step:
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.A, guarded)
        .add_exit_state(Step.DONE)
        .with_observer(MetricsObserver(metrics.meter))
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    got = metrics.collect()
    assert got["cano_circuit_open_events_total"] == {(("task", "guarded"),): 1}
    assert got["cano_observed_task_runs_total"] == {(("outcome", "failed"), ("task", "guarded")): 1}


async def test_checkpoints_and_resumes_are_counted(metrics: Any) -> None:
    store = InMemoryCheckpointStore()
    observer = MetricsObserver(metrics.meter)
    base = (
        Workflow.bare()
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("m1")
        .with_observer(observer)
    )
    failing = base.register(Step.A, flaky(0)).register(Step.B, boom)
    with pytest.raises(StateFailure):
        await failing.orchestrate(Step.A)
    assert one(metrics.points("cano_checkpoints_observed_total")) == 2  # rows for A and B
    fixed = base.register(Step.A, flaky(0)).register(Step.B, finish)
    assert await fixed.resume_from("m1") is Step.DONE
    got = metrics.collect()
    assert one(got["cano_resumes_total"]) == 1
    # the resumed run writes B again and DONE
    assert one(got["cano_checkpoints_observed_total"]) == 4


async def test_unknown_resume_states_are_counted(metrics: Any) -> None:
    store = InMemoryCheckpointStore()
    await store.append("old", CheckpointRow(0, "GONE", "x"))
    await store.append("old", CheckpointRow(1, "B", "finish"))
    wf = (
        Workflow.bare()
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_observer(MetricsObserver(metrics.meter))
    )
    assert await wf.resume_from("old") is Step.DONE
    assert one(metrics.points("cano_observed_unknown_resume_states_total")) == 1


async def test_a_total_timeout_records_the_counter_and_both_histograms(metrics: Any) -> None:
    @task(config=TaskConfig.minimal(), name="slow")
    async def slow() -> Step:
        await anyio.sleep(5)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.A, slow)
        .add_exit_state(Step.DONE)
        .with_total_timeout(0.05)
        .with_observer(MetricsObserver(metrics.meter))
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.category == "workflow_timeout"
    got = metrics.collect()
    assert one(got["cano_observed_workflow_timeouts_total"]) == 1
    count, total = one(got["cano_observed_workflow_timeout_limit_seconds"])
    assert (count, total) == (1, pytest.approx(0.05))
    count, elapsed = one(got["cano_observed_workflow_timeout_elapsed_seconds"])
    assert count == 1 and elapsed >= 0.05
    assert got["cano_observed_task_runs_total"] == {(("outcome", "failed"), ("task", "slow")): 1}


async def test_a_cancelled_run_is_counted_once(metrics: Any) -> None:
    token = CancellationToken()

    @task(config=TaskConfig.minimal(), name="waits")
    async def waits() -> Step:
        token.cancel()
        await anyio.sleep(5)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.A, waits)
        .add_exit_state(Step.DONE)
        .with_observer(MetricsObserver(metrics.meter))
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A, cancel=token)
    assert info.value.category == "cancelled"
    assert one(metrics.points("cano_observed_cancellations_total")) == 1


async def test_a_failed_log_clear_counts_as_a_clear_error(metrics: Any) -> None:
    class NoClear(InMemoryCheckpointStore):
        async def clear(self, workflow_id: str) -> None:
            raise OSError("read-only")

    wf = (
        Workflow.bare()
        .register(Step.A, finish)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(NoClear())
        .with_workflow_id("c")
        .with_observer(MetricsObserver(metrics.meter))
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert metrics.points("cano_checkpoint_clears_total") == {(("result", "err"),): 1}


def test_every_hook_maps_to_its_metric_and_task_start_to_none(metrics: Any) -> None:
    obs = MetricsObserver(metrics.meter)
    obs.on_task_start("t")
    assert metrics.collect() == {}
    obs.on_state_enter("S")
    obs.on_task_success("t")
    obs.on_task_failure("t", ValueError("x"))
    obs.on_retry("t", 1)
    obs.on_circuit_open("t")
    obs.on_checkpoint("w", 0)
    obs.on_resume("w", 3)
    obs.on_workflow_timeout(1.5, 1.0)
    obs.on_cancelled("S")
    obs.on_checkpoint_clear_failed("w", OSError("x"))
    obs.on_unknown_resume_state("w", 0, "GONE")
    got = metrics.collect()
    assert sorted(got) == sorted(METRIC_NAMES)
    assert got == {
        "cano_state_enters_total": {(("state", "S"),): 1},
        "cano_observed_task_runs_total": {
            (("outcome", "completed"), ("task", "t")): 1,
            (("outcome", "failed"), ("task", "t")): 1,
        },
        "cano_task_retries_total": {(("task", "t"),): 1},
        "cano_circuit_open_events_total": {(("task", "t"),): 1},
        "cano_checkpoints_observed_total": {(): 1},
        "cano_resumes_total": {(): 1},
        "cano_observed_workflow_timeouts_total": {(): 1},
        "cano_observed_workflow_timeout_limit_seconds": {(): (1, 1.0)},
        "cano_observed_workflow_timeout_elapsed_seconds": {(): (1, 1.5)},
        "cano_observed_unknown_resume_states_total": {(): 1},
        "cano_observed_cancellations_total": {(): 1},
        "cano_checkpoint_clears_total": {(("result", "err"),): 1},
    }


def test_histograms_are_in_seconds_and_counters_are_monotonic(metrics: Any) -> None:
    obs = MetricsObserver(metrics.meter)
    obs.on_workflow_timeout(2.0, 1.0)
    obs.on_checkpoint("w", 0)
    data = metrics.reader.get_metrics_data()
    found = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert found["cano_observed_workflow_timeout_limit_seconds"].unit == "s"
    assert found["cano_checkpoints_observed_total"].data.is_monotonic


def test_without_a_meter_the_global_meter_is_used() -> None:
    obs = MetricsObserver()
    obs.on_state_enter("A")  # a no-op proxy until a provider is installed
    assert obs.meter is not None
