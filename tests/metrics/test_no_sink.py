"""With no sink installed nothing is recorded anywhere (REFERENCE §11.3: metrics are a
no-op until a recorder is installed), and installing is process-wide and reversible."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from cano_dsl import (
    CircuitBreaker,
    JoinConfig,
    JoinStrategy,
    RateLimiter,
    Resources,
    TaskConfig,
    Workflow,
    _metrics,
    batch,
    task,
)
from cano_dsl.observability import MetricsSink, metrics_sink
from cano_dsl.testing import RecordingMetricsSink

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="hop")
async def hop() -> Step:
    return Step.B


@batch(state=Step, config=TaskConfig.minimal())
class Items:
    async def load(self, res: Resources) -> list[int]:
        return [1, 2]

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        return Step.DONE


def busy_workflow() -> Workflow[Step]:
    return (
        Workflow(Resources())
        .register_split(Step.A, [hop, hop], JoinConfig(JoinStrategy.all(), Step.B))
        .register(Step.B, Items())
        .add_exit_state(Step.DONE)
    )


async def test_nothing_is_recorded_without_a_sink() -> None:
    assert _metrics.SINK is None
    bystander = RecordingMetricsSink()  # built, never installed
    await busy_workflow().orchestrate(Step.A)
    CircuitBreaker().try_acquire().record_success()
    RateLimiter(1, 1).try_acquire()
    assert bystander.names() == set()
    assert _metrics.SINK is None


async def test_a_sink_sees_only_what_runs_while_it_is_installed() -> None:
    recording = RecordingMetricsSink()
    with metrics_sink(recording):
        assert _metrics.SINK is recording
        await busy_workflow().orchestrate(Step.A)
    assert _metrics.SINK is None
    await busy_workflow().orchestrate(Step.A)
    assert recording.counter_value("cano_workflow_runs_total") == 1
    assert recording.counter_value("cano_batch_runs_total") == 1
    assert recording.counter_value("cano_split_branch_results_total", result="success") == 2


def test_recording_sink_satisfies_the_protocol() -> None:
    assert isinstance(RecordingMetricsSink(), MetricsSink)
