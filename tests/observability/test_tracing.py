"""TracingObserver: task spans and run events, read back through the OpenTelemetry
SDK's in-memory span exporter."""

from __future__ import annotations

import enum
from typing import Any

import anyio
import pytest
from opentelemetry.trace import StatusCode

from cano_dsl import (
    CancellationToken,
    CircuitBreaker,
    CircuitPolicy,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)
from cano_dsl.observability import TracingObserver
from cano_dsl.testing import InMemoryCheckpointStore
from cano_dsl.workflow import JoinConfig, JoinStrategy

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    SPLIT = enum.auto()
    DONE = enum.auto()


def flaky(failures: int, name: str = "flaky", then: Step = Step.B) -> Any:
    left = {"n": failures}

    @task(config=TaskConfig().with_fixed_retry(3, 0), name=name)
    async def run() -> Step:
        if left["n"] > 0:
            left["n"] -= 1
            raise ConnectionError("not yet")
        return then

    return run


@task(config=TaskConfig.minimal(), name="finish")
async def finish() -> Step:
    return Step.DONE


@task(config=TaskConfig.minimal(), name="boom")
async def boom() -> Step:
    raise ValueError("kaboom")


def events(span: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes or {})) for e in span.events]


async def test_one_span_per_task_with_id_state_and_ok_status(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    wf = (
        Workflow.bare()
        .register(Step.A, flaky(0))
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    with obs.run_span("checkout", workflow_id="w1"):
        assert await wf.orchestrate(Step.A) is Step.DONE
    flaky_span, finish_span, run = spans.finished()
    assert [flaky_span.name, finish_span.name, run.name] == [
        "task flaky",
        "task finish",
        "checkout",
    ]
    assert dict(flaky_span.attributes) == {
        "cano.task_id": "flaky",
        "cano.state": "A",
        "cano.outcome": "completed",
    }
    assert finish_span.attributes["cano.state"] == "B"
    assert flaky_span.status.status_code is StatusCode.OK
    assert flaky_span.parent.span_id == run.context.span_id
    assert run.attributes["cano.workflow_id"] == "w1"
    assert events(run) == [
        ("workflow entered state", {"cano.state": "A"}),
        ("workflow entered state", {"cano.state": "B"}),
        ("workflow entered state", {"cano.state": "DONE"}),
    ]
    assert obs._open == {}


async def test_a_failed_task_span_has_error_status_and_the_exception(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    wf = Workflow.bare().register(Step.A, boom).add_exit_state(Step.DONE).with_observer(obs)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    [span] = spans.named("task boom")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: kaboom"
    assert span.attributes["cano.outcome"] == "failed"
    assert span.attributes["cano.error.category"] == "task_execution"
    [(_, attrs)] = [e for e in events(span) if e[0] == "exception"]
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "kaboom"


async def test_retries_are_events_on_the_task_span(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    wf = (
        Workflow.bare()
        .register(Step.A, flaky(2, then=Step.DONE))
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    await wf.orchestrate(Step.A)
    [span] = spans.named("task flaky")
    assert events(span) == [
        ("task retry", {"cano.task_id": "flaky", "cano.attempt": 1}),
        ("task retry", {"cano.task_id": "flaky", "cano.attempt": 2}),
    ]


async def test_a_breaker_rejection_is_an_event_then_an_error(spans: Any) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=60))
    breaker.try_acquire().record_failure()

    @task(config=TaskConfig.minimal().with_circuit_breaker(breaker), name="guarded")
    async def guarded() -> Step:
        return Step.DONE

    obs = TracingObserver(spans.tracer)
    wf = Workflow.bare().register(Step.A, guarded).add_exit_state(Step.DONE).with_observer(obs)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    [span] = spans.named("task guarded")
    assert events(span)[0] == ("circuit breaker rejected task", {"cano.task_id": "guarded"})
    assert span.attributes["cano.error.category"] == "circuit_open"
    assert span.status.status_code is StatusCode.ERROR


async def test_split_branches_get_one_span_each(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    wf = (
        Workflow.bare()
        .register_split(
            Step.SPLIT,
            [finish, boom, finish],
            JoinConfig(JoinStrategy.quorum(2), Step.DONE),
        )
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    assert await wf.orchestrate(Step.SPLIT) is Step.DONE
    got = {s.name: s for s in spans.finished() if s.name.startswith("task ")}
    assert sorted(got) == ["task boom[1]", "task finish[0]", "task finish[2]"]
    assert got["task finish[0]"].status.status_code is StatusCode.OK
    assert got["task boom[1]"].status.status_code is StatusCode.ERROR
    assert all(s.attributes["cano.state"] == "SPLIT" for s in got.values())


async def test_early_exit_branches_are_ended_as_abandoned(spans: Any) -> None:
    @task(config=TaskConfig.minimal(), name="slow")
    async def slow() -> Step:
        await anyio.sleep(5)
        return Step.DONE

    obs = TracingObserver(spans.tracer)
    wf = (
        Workflow.bare()
        .register_split(Step.SPLIT, [finish, slow], JoinConfig(JoinStrategy.any(), Step.DONE))
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    assert await wf.orchestrate(Step.SPLIT) is Step.DONE
    [slow_span] = spans.named("task slow[1]")
    assert slow_span.attributes["cano.outcome"] == "abandoned"
    assert slow_span.status.status_code is StatusCode.UNSET
    assert obs._open == {}


async def test_without_a_current_span_run_events_get_spans_of_their_own(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    wf = Workflow.bare().register(Step.A, finish).add_exit_state(Step.DONE).with_observer(obs)
    await wf.orchestrate(Step.A)
    entered = spans.named("workflow entered state")
    assert [s.attributes["cano.state"] for s in entered] == ["A", "DONE"]
    assert events(entered[0]) == [("workflow entered state", {"cano.state": "A"})]
    # the task span is a root span here
    [task_span] = spans.named("task finish")
    assert task_span.parent is None


async def test_checkpoint_and_resume_events(spans: Any) -> None:
    store = InMemoryCheckpointStore()
    obs = TracingObserver(spans.tracer)
    base = (
        Workflow.bare()
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("r1")
        .with_observer(obs)
    )
    with obs.run_span("first") as first, pytest.raises(StateFailure):
        await base.register(Step.A, boom).orchestrate(Step.A)
    with obs.run_span("second", workflow_id="r1"):
        await base.register(Step.A, finish).resume_from("r1")
    first_run, second_run = spans.named("first")[0], spans.named("second")[0]
    assert first is not None
    assert ("checkpoint appended", {"cano.workflow_id": "r1", "cano.sequence": 0}) in events(
        first_run
    )
    names = [name for name, _ in events(second_run)]
    assert names[0] == "workflow resumed from checkpoint"
    assert events(second_run)[0][1] == {"cano.workflow_id": "r1", "cano.sequence": 0}
    assert "checkpoint appended" in names


async def test_timeout_and_cancel_events(spans: Any) -> None:
    @task(config=TaskConfig.minimal(), name="slow")
    async def slow() -> Step:
        await anyio.sleep(5)
        return Step.DONE

    obs = TracingObserver(spans.tracer)
    base = Workflow.bare().register(Step.A, slow).add_exit_state(Step.DONE).with_observer(obs)
    with obs.run_span("timed"), pytest.raises(StateFailure):
        await base.with_total_timeout(0.05).orchestrate(Step.A)
    [(name, attrs)] = [e for e in events(spans.named("timed")[0]) if "timeout" in e[0]]
    assert name == "workflow total timeout exceeded"
    assert attrs["cano.limit_seconds"] == pytest.approx(0.05)
    assert attrs["cano.elapsed_seconds"] >= 0.05

    token = CancellationToken()

    @task(config=TaskConfig.minimal(), name="slow")
    async def cancels() -> Step:
        token.cancel()
        await anyio.sleep(5)
        return Step.DONE

    with obs.run_span("cancelled"), pytest.raises(StateFailure):
        await base.register(Step.A, cancels).orchestrate(Step.A, cancel=token)
    assert ("workflow cancelled", {"cano.state": "A"}) in events(spans.named("cancelled")[0])
    slow_spans = spans.named("task slow")
    assert [s.attributes["cano.error.category"] for s in slow_spans] == [
        "workflow_timeout",
        "cancelled",
    ]
    assert obs._open == {}


def test_clear_failed_and_unknown_state_events(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    with obs.run_span("run") as _:
        obs.on_checkpoint_clear_failed("w", OSError("read-only"))
        obs.on_unknown_resume_state("w", 3, "GONE")
    [run] = spans.named("run")
    assert events(run) == [
        (
            "checkpoint log clear failed",
            {"cano.workflow_id": "w", "cano.error": "OSError: read-only"},
        ),
        (
            "checkpoint row references a state not registered on the current workflow "
            "— dropped from rehydrated path",
            {"cano.workflow_id": "w", "cano.sequence": 3, "cano.unknown_state": "GONE"},
        ),
    ]


def test_a_failure_without_a_start_still_leaves_a_span(spans: Any) -> None:
    obs = TracingObserver(spans.tracer)
    obs.on_task_failure("ghost", RuntimeError("x"))
    [span] = spans.named("task ghost")
    assert span.status.status_code is StatusCode.ERROR


def test_without_a_tracer_the_global_tracer_is_used() -> None:
    obs = TracingObserver()
    obs.on_task_start("t")
    obs.on_task_success("t")
    assert obs._open == {}
