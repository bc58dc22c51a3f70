"""Always-on metrics of the stream model and the scheduler (REFERENCE §3.6, §8, §11.3)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cano_dsl import (
    BackoffPolicy,
    CancellationToken,
    CloseReason,
    Resources,
    StateFailure,
    StreamErrorPolicy,
    StreamWindow,
    TaskConfig,
    WindowSignal,
    Workflow,
    stream,
    task,
)
from cano_dsl.scheduler import Running, Scheduler
from cano_dsl.testing import MockClock, RecordingMetricsSink

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    CONSUME = enum.auto()
    START = enum.auto()
    DONE = enum.auto()


@stream(state=Step, name="numbers")
class Numbers:
    """Five items in count windows of two; item 3 fails and is skipped."""

    window = StreamWindow.count(2)
    on_item_error = StreamErrorPolicy.skip_and_continue()

    def __init__(self, gate: CancellationToken | None = None) -> None:
        self.gate = gate

    async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
        for i in range(5):
            yield i
        if self.gate is not None:
            self.gate.cancel()
            await _forever()

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        if item == 3:
            raise RuntimeError("bad item")
        return item, item

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        return Step.DONE


async def _forever() -> None:
    await anyio.sleep_forever()


async def test_stream_run_windows_and_items(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register_stream(Step.CONSUME, Numbers()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CONSUME) is Step.DONE
    assert sink.counter_value("cano_stream_runs_total", outcome="completed") == 1
    # windows [0, 1], [2, 4]; item 3 failed
    assert sink.counter_value("cano_stream_windows_total") == 2
    assert sink.counter_value("cano_stream_items_total", result="ok") == 4
    assert sink.counter_value("cano_stream_items_total", result="err") == 1
    assert len(sink.histogram_values("cano_task_duration_seconds", kind="stream")) == 1


async def test_cancelled_stream_counts_cancelled(sink: RecordingMetricsSink) -> None:
    token = CancellationToken()
    wf = (
        Workflow(Resources())
        .register_stream(Step.CONSUME, Numbers(gate=token))
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.CONSUME, token)
    assert sink.counter_value("cano_stream_runs_total", outcome="cancelled") == 1
    assert sink.counter_value("cano_workflow_runs_total", outcome="failed") == 1


async def test_in_memory_stream_counts_a_completed_run(sink: RecordingMetricsSink) -> None:
    wf = Workflow(Resources()).register(Step.CONSUME, Numbers()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CONSUME) is Step.DONE
    assert sink.counter_value("cano_stream_runs_total", outcome="completed") == 1
    assert sink.counter_value("cano_stream_windows_total") == 2


# -- scheduler ----------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator[MockClock]:
    with MockClock(start=0.0) as c:
        yield c


def flow(fail: bool) -> Workflow[Step]:
    @task(config=TaskConfig.minimal(), name="job")
    async def job() -> Step:
        if fail:
            raise RuntimeError("job failed")
        return Step.DONE

    return Workflow(Resources()).register(Step.START, job).add_exit_state(Step.DONE)


async def settled(running: Any, flow_id: str) -> None:
    while isinstance(running.status(flow_id).status, Running):
        await anyio.lowlevel.checkpoint()


async def test_scheduler_flow_runs_backoff_and_trip(
    sink: RecordingMetricsSink, clock: MockClock
) -> None:
    sched = (
        Scheduler()
        .manual("good", flow(False), Step.START)
        .manual("bad", flow(True), Step.START)
        .set_backoff("bad", BackoffPolicy(initial=1, jitter=0).with_trip(2))
    )
    async with sched.start() as running:
        for flow_id in ("good", "bad", "bad"):
            await running.trigger(flow_id)
            await settled(running, flow_id)
    assert (
        sink.counter_value("cano_scheduler_flow_runs_total", flow="good", outcome="completed") == 1
    )
    assert sink.counter_value("cano_scheduler_flow_runs_total", flow="bad", outcome="failed") == 2
    assert len(sink.histogram_values("cano_scheduler_flow_duration_seconds", flow="good")) == 1
    assert sink.counter_value("cano_scheduler_flow_backoff_total", flow="bad") == 1
    assert sink.counter_value("cano_scheduler_flow_tripped_total", flow="bad") == 1
    assert sink.gauge_value("cano_scheduler_active_flows") == 0
    # scheduled runs are not workflow runs
    assert "cano_workflow_runs_total" not in sink.names()
