"""Automatic tracing: cano's span tree (names, parents, attributes), read back through
the OpenTelemetry SDK's in-memory exporter installed as the global tracer provider."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    ConfigurationError,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore
from cano_dsl.workflow import JoinConfig, JoinStrategy

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    SPLIT = enum.auto()
    DONE = enum.auto()


class Tree:
    """The finished spans of one test, with lookups by name and by parent."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[Any]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> Any:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.all()]
        return found[0]

    def children(self, parent: Any, name: str | None = None) -> list[Any]:
        sid = parent.context.span_id
        return [
            s
            for s in self.all()
            if s.parent is not None and s.parent.span_id == sid and (name is None or s.name == name)
        ]


def _set_global(provider: Any) -> None:
    # what opentelemetry's own test utilities do to swap the once-only global provider
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def tree() -> Iterator[Tree]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = trace._TRACER_PROVIDER  # type: ignore[attr-defined]
    _set_global(provider)
    try:
        yield Tree(exporter)
    finally:
        _set_global(saved)


def flaky(failures: int, then: Step = Step.B, delay: float = 0.0) -> Any:
    left = {"n": failures}

    @task(config=TaskConfig().with_fixed_retry(3, delay), name="flaky")
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


async def test_a_run_is_a_workflow_span_with_a_span_per_state_and_per_attempt(tree: Tree) -> None:
    wf = (
        Workflow()
        .register(Step.A, flaky(1, delay=0.01))
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_workflow_id("order-7")
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    root = tree.one("workflow_orchestrate")
    assert root.parent is None
    assert root.attributes["workflow_id"] == "order-7"
    assert root.attributes["final_state"] == "DONE"
    states = tree.children(root, "single_task_execution")
    assert [(s.attributes["state"], s.attributes["kind"]) for s in states] == [
        ("A", "single"),
        ("B", "single"),
    ]
    a, b = states
    (retries,) = tree.children(a, "run_with_retries")
    assert retries.attributes["max_attempts"] == 4
    attempts = tree.children(retries, "task_attempt")
    assert [dict(s.attributes) for s in attempts] == [
        {"attempt": 1, "max_attempts": 4, "outcome": "failed", "retry_delay_seconds": 0.01},
        {"attempt": 2, "max_attempts": 4, "outcome": "completed"},
    ]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert [e.name for e in attempts[0].events] == ["exception"]
    # the delay before the next attempt is between the two attempt spans
    assert attempts[1].start_time - attempts[0].end_time >= 0.009e9
    (b_retries,) = tree.children(b, "run_with_retries")
    assert b_retries.attributes["max_attempts"] == 1
    assert len(tree.children(b_retries, "task_attempt")) == 1
    # nothing else: 1 root + 2 states + 2 loops + 3 attempts
    assert len(tree.all()) == 8


async def test_a_failed_run_marks_the_attempt_state_and_workflow_spans(tree: Tree) -> None:
    wf = Workflow().register(Step.A, boom).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    root = tree.one("workflow_orchestrate")
    assert "workflow_id" not in root.attributes
    state = tree.one("single_task_execution")
    attempt = tree.one("task_attempt")
    assert attempt.attributes["outcome"] == "failed"
    assert "retry_delay_seconds" not in attempt.attributes
    for span in (attempt, state, root):
        assert span.status.status_code is StatusCode.ERROR
    assert "kaboom" in attempt.events[0].attributes["exception.message"]


async def test_split_branches_are_split_task_spans_under_the_workflow_span(tree: Tree) -> None:
    @task(config=TaskConfig.minimal(), name="ok")
    async def ok() -> int:
        return 1

    @task(config=TaskConfig.minimal(), name="bad")
    async def bad() -> int:
        raise ValueError("bad branch")

    wf = (
        Workflow()
        .register_split(Step.SPLIT, [ok, bad, ok], JoinConfig(JoinStrategy.quorum(2), Step.DONE))
        .add_exit_state(Step.DONE)
    )
    assert await wf.orchestrate(Step.SPLIT) is Step.DONE
    root = tree.one("workflow_orchestrate")
    assert tree.named("single_task_execution") == []
    branches = sorted(tree.children(root, "split_task"), key=lambda s: s.attributes["task_id"])
    assert [dict(s.attributes) for s in branches] == [
        {"task_id": i, "state": "SPLIT", "kind": "split", "outcome": outcome}
        for i, outcome in enumerate(["completed", "failed", "completed"])
    ]
    assert branches[1].status.status_code is StatusCode.ERROR
    for branch in branches:
        (retries,) = tree.children(branch, "run_with_retries")
        assert len(tree.children(retries, "task_attempt")) == 1


async def test_branches_cut_by_an_early_join_end_as_cancelled(tree: Tree) -> None:
    @task(config=TaskConfig.minimal(), name="fast")
    async def fast() -> int:
        return 1

    @task(config=TaskConfig.minimal(), name="slow")
    async def slow() -> int:
        await anyio.sleep(30)
        return 2

    wf = (
        Workflow()
        .register_split(Step.SPLIT, [fast, slow], JoinConfig(JoinStrategy.any(), Step.DONE))
        .add_exit_state(Step.DONE)
    )
    with anyio.fail_after(20):
        assert await wf.orchestrate(Step.SPLIT) is Step.DONE
    outcomes = {s.attributes["task_id"]: s.attributes["outcome"] for s in tree.named("split_task")}
    assert outcomes == {0: "completed", 1: "cancelled"}
    cut = [s for s in tree.named("task_attempt") if s.attributes["outcome"] == "cancelled"]
    assert len(cut) == 1


async def test_attempt_timeout_and_open_circuit_are_attempt_outcomes(tree: Tree) -> None:
    @task(config=TaskConfig.minimal().with_attempt_timeout(0.05), name="hangs")
    async def hangs() -> Step:
        await anyio.sleep(30)
        return Step.DONE

    wf = Workflow().register(Step.A, hangs).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert tree.one("task_attempt").attributes["outcome"] == "timed_out"

    tree.exporter.clear()
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=60))
    breaker.try_acquire().record_failure()

    @task(config=TaskConfig.minimal().with_circuit_breaker(breaker), name="guarded")
    async def guarded() -> Step:
        return Step.DONE

    wf = Workflow().register(Step.A, guarded).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    attempt = tree.one("task_attempt")
    assert attempt.attributes["outcome"] == "circuit_open"
    assert attempt.status.status_code is StatusCode.ERROR


async def test_a_saga_step_is_a_compensatable_task_execution_span(tree: Tree) -> None:
    @compensatable(config=TaskConfig.minimal(), name="reserve")
    class Reserve:
        async def run(self, res: Any) -> tuple[Step, int]:
            return Step.DONE, 1

        async def compensate(self, res: Any, output: int) -> None:
            return None

    wf = Workflow().register_with_compensation(Step.A, Reserve()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.A) is Step.DONE
    root = tree.one("workflow_orchestrate")
    (state,) = tree.children(root, "compensatable_task_execution")
    assert dict(state.attributes) == {"state": "A", "kind": "compensatable"}
    assert len(tree.children(state, "run_with_retries")) == 1


async def test_resume_is_a_workflow_resume_span(tree: Tree) -> None:
    store = InMemoryCheckpointStore()
    wf = (
        Workflow()
        .register(Step.A, flaky(0))
        .register(Step.B, boom)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("run-1")
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    tree.exporter.clear()
    fixed = wf.register(Step.B, finish)
    assert await fixed.resume_from("run-1") is Step.DONE
    assert tree.named("workflow_orchestrate") == []
    root = tree.one("workflow_resume")
    assert root.attributes["workflow_id"] == "run-1"
    assert [s.attributes["state"] for s in tree.children(root, "single_task_execution")] == ["B"]


async def test_execute_flow_is_an_execute_flow_span(tree: Tree) -> None:
    wf = Workflow().register(Step.A, finish).add_exit_state(Step.DONE)
    assert await wf.execute_flow(Step.A) is Step.DONE
    root = tree.one("execute_flow")
    assert root.parent is None
    assert len(tree.children(root, "single_task_execution")) == 1


async def test_scheduler_runs_are_execute_flow_spans(tree: Tree) -> None:
    from cano_dsl.scheduler import Scheduler

    wf = Workflow().register(Step.A, finish).add_exit_state(Step.DONE)
    with anyio.fail_after(20):
        async with Scheduler().manual("flow", wf, Step.A).start() as running:
            await running.trigger("flow")
            while tree.named("execute_flow") == []:
                await anyio.sleep(0.01)
    root = tree.one("execute_flow")
    assert [s.attributes["state"] for s in tree.children(root, "single_task_execution")] == ["A"]


async def test_with_tracing_span_parents_the_run_under_the_callers_span(tree: Tree) -> None:
    tracer = trace.get_tracer("caller")
    request = tracer.start_span("api_request")
    wf = (
        Workflow()
        .register(Step.A, flaky(0))
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_tracing_span(request)
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    # the caller's span replaces workflow_orchestrate and is not ended by the run
    assert tree.named("workflow_orchestrate") == []
    assert tree.named("api_request") == []
    request.end()
    parent = tree.one("api_request")
    states = tree.children(parent, "single_task_execution")
    assert [s.attributes["state"] for s in states] == ["A", "B"]


async def test_the_current_span_parents_the_workflow_span(tree: Tree) -> None:
    tracer = trace.get_tracer("caller")
    wf = Workflow().register(Step.A, finish).add_exit_state(Step.DONE)
    with tracer.start_as_current_span("outer"):
        await wf.orchestrate(Step.A)
    outer = tree.one("outer")
    assert tree.children(outer) == [tree.one("workflow_orchestrate")]


async def test_spans_opened_by_a_task_are_children_of_its_attempt(tree: Tree) -> None:
    tracer = trace.get_tracer("user")

    @task(config=TaskConfig.minimal(), name="mine")
    async def mine() -> Step:
        with tracer.start_as_current_span("user_work"):
            return Step.DONE

    await Workflow().register(Step.A, mine).add_exit_state(Step.DONE).orchestrate(Step.A)
    (user,) = tree.children(tree.one("task_attempt"), "user_work")
    assert user.name == "user_work"


async def test_without_a_configured_provider_no_span_is_made() -> None:
    saved = trace._TRACER_PROVIDER  # type: ignore[attr-defined]
    _set_global(None)
    exporter = InMemorySpanExporter()
    try:
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        wf = Workflow().register(Step.A, flaky(1)).add_exit_state(Step.DONE)
        wf = wf.register(Step.B, finish)
        assert await wf.orchestrate(Step.A) is Step.DONE
        # a provider configured afterwards sees only the runs that start after it
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _set_global(provider)
        assert exporter.get_finished_spans() == ()
        await wf.orchestrate(Step.B)
        assert [s.name for s in exporter.get_finished_spans()][-1] == "workflow_orchestrate"
    finally:
        _set_global(saved)


def test_with_tracing_span_takes_a_span() -> None:
    with pytest.raises(ConfigurationError, match="OpenTelemetry span"):
        Workflow().with_tracing_span("request")  # type: ignore[arg-type]


async def test_a_tracing_observer_works_alongside_the_automatic_spans(tree: Tree) -> None:
    from cano_dsl.observability import TracingObserver

    wf = (
        Workflow()
        .register(Step.A, flaky(1))
        .register(Step.B, finish)
        .add_exit_state(Step.DONE)
        .with_observer(TracingObserver())
    )
    assert await wf.orchestrate(Step.A) is Step.DONE
    root = tree.one("workflow_orchestrate")
    a, b = tree.children(root, "single_task_execution")
    # the observer's task span is a child of the state span it reports on
    (flaky_span,) = tree.children(a, "task flaky")
    assert flaky_span.attributes["cano.outcome"] == "completed"
    assert [e.name for e in flaky_span.events] == ["task retry"]
    assert len(tree.children(b, "task finish")) == 1
    # run-level events land on the current span: the root's state-enter events
    assert [e.attributes["cano.state"] for e in root.events] == ["A", "B", "DONE"]
