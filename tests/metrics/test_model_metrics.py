"""Always-on metrics of the processing models (REFERENCE §3.2, §3.4): batch runs and
items, poll iterations."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from cano_dsl import (
    PollOutcome,
    Resources,
    TaskConfig,
    Workflow,
    batch,
    poll,
)
from cano_dsl.tasks.batch import run_batch
from cano_dsl.testing import RecordingMetricsSink

pytestmark = pytest.mark.anyio


class St(enum.Enum):
    PROCESS = enum.auto()
    DONE = enum.auto()


@batch(state=St, config=TaskConfig.minimal())
class ThreeItemBatch:
    """Three items; item 1 fails."""

    def __init__(self, concurrency: int = 1) -> None:
        self.concurrency = concurrency

    async def load(self, res: Resources) -> list[int]:
        return [0, 1, 2]

    async def process_item(self, item: int) -> int:
        if item == 1:
            raise RuntimeError("item 1 failed")
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> St:
        return St.DONE


@batch(state=St, config=TaskConfig.minimal())
class LoadFailsBatch:
    async def load(self, res: Resources) -> list[int]:
        raise RuntimeError("load failed")

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> St:
        return St.DONE


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_batch_metrics_counted_correctly(
    sink: RecordingMetricsSink, concurrency: int
) -> None:
    wf = (
        Workflow(Resources())
        .register(St.PROCESS, ThreeItemBatch(concurrency))
        .add_exit_state(St.DONE)
    )
    assert await wf.orchestrate(St.PROCESS) is St.DONE
    assert sink.counter_value("cano_batch_runs_total", outcome="completed") == 1
    assert sink.counter_value("cano_batch_items_total", result="ok") == 2
    assert sink.counter_value("cano_batch_items_total", result="err") == 1


async def test_batch_run_emitted_on_load_failure(sink: RecordingMetricsSink) -> None:
    with pytest.raises(RuntimeError, match="load failed"):
        await run_batch(LoadFailsBatch(), Resources())
    assert sink.counter_value("cano_batch_runs_total", outcome="failed") == 1
    assert "cano_batch_items_total" not in sink.names()


async def test_batch_finish_failure_counts_a_failed_run(sink: RecordingMetricsSink) -> None:
    @batch(state=St, config=TaskConfig.minimal())
    class FinishFails:
        async def load(self, res: Resources) -> list[int]:
            return [1, 2]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> St:
            raise RuntimeError("finish failed")

    with pytest.raises(RuntimeError):
        await run_batch(FinishFails(), Resources())
    assert sink.counter_value("cano_batch_runs_total", outcome="failed") == 1
    assert sink.counter_value("cano_batch_items_total", result="ok") == 2


async def test_poll_iterations_pending_then_ready(sink: RecordingMetricsSink) -> None:
    @poll(state=St, name="waiter")
    class Waiter:
        def __init__(self) -> None:
            self.calls = 0

        async def poll(self, res: Resources) -> PollOutcome[St]:
            self.calls += 1
            if self.calls < 3:
                return PollOutcome.pending(0)
            return PollOutcome.ready(St.DONE)

    wf = Workflow(Resources()).register(St.PROCESS, Waiter()).add_exit_state(St.DONE)
    assert await wf.orchestrate(St.PROCESS) is St.DONE
    assert sink.counter_value("cano_poll_iterations_total", outcome="pending") == 2
    assert sink.counter_value("cano_poll_iterations_total", outcome="ready") == 1
