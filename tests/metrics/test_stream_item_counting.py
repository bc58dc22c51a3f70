"""How a stream's items and windows are counted (REFERENCE §3.6, §11.3).

By default as cano: ``cano_stream_items_total{result=ok}`` per item as
``process_item`` succeeds, ``cano_stream_windows_total`` as a flush starts. With
``stream_items="window"``: a window's ``ok`` items and the window together, once its
flush succeeded."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CloseReason,
    ConfigurationError,
    Resources,
    StateFailure,
    StreamErrorPolicy,
    StreamWindow,
    WindowSignal,
    Workflow,
    stream,
)
from cano_dsl._metrics import STREAM_ITEMS_PER_WINDOW
from cano_dsl.observability import install_metrics_sink, metrics_sink, uninstall_metrics
from cano_dsl.testing import RecordingMetricsSink

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    CONSUME = enum.auto()
    DONE = enum.auto()


@stream(state=Step, name="counted")
class Counted:
    """Items 0..n-1; ``fail_item`` raises in process_item, ``fail_flush`` in every
    flush; ``gate``, when given, is cancelled once the items are out (the run then
    waits for more, so it ends in the cancel drain)."""

    def __init__(
        self,
        n: int,
        window: StreamWindow,
        *,
        fail_item: int | None = None,
        fail_flush: bool = False,
        gate: CancellationToken | None = None,
        policy: StreamErrorPolicy | None = None,
    ) -> None:
        self.n = n
        self.window = window
        self.fail_item = fail_item
        self.fail_flush = fail_flush
        self.gate = gate
        self.on_item_error = policy or StreamErrorPolicy.fail_fast()
        self.flushed: list[list[int]] = []

    async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
        for i in range(self.n):
            yield i
        if self.gate is not None:
            self.gate.cancel()
            await anyio.sleep_forever()

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        if item == self.fail_item:
            raise RuntimeError(f"item {item} failed")
        return item, item

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
        if self.fail_flush:
            raise RuntimeError("flush failed")
        self.flushed.append(list(outputs))
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        return Step.DONE


WINDOWS = {
    "count": StreamWindow.count(5),
    "duration": StreamWindow.duration(3600),  # only the end of the source flushes
}


def workflow(task: Counted, engine: bool) -> Workflow[Step]:
    wf = Workflow(Resources())
    wf = wf.register_stream(Step.CONSUME, task) if engine else wf.register(Step.CONSUME, task)
    return wf.add_exit_state(Step.DONE)


@pytest.fixture
def per_window() -> Iterator[RecordingMetricsSink]:
    recording = RecordingMetricsSink()
    with metrics_sink(recording, stream_items="window"):
        yield recording


def counts(sink: RecordingMetricsSink) -> tuple[float, float, float]:
    return (
        sink.counter_value("cano_stream_items_total", result="ok"),
        sink.counter_value("cano_stream_items_total", result="err"),
        sink.counter_value("cano_stream_windows_total"),
    )


@pytest.mark.parametrize("engine", [True, False], ids=["register_stream", "register"])
@pytest.mark.parametrize("window", WINDOWS)
async def test_a_run_failing_on_its_third_item_counts_the_two_before_it(
    sink: RecordingMetricsSink, engine: bool, window: str
) -> None:
    task = Counted(5, WINDOWS[window], fail_item=2)
    with pytest.raises(StateFailure):
        await workflow(task, engine).orchestrate(Step.CONSUME)
    assert task.flushed == []
    assert counts(sink) == (2, 1, 0)
    assert sink.counter_value("cano_stream_runs_total", outcome="failed") == 1


@pytest.mark.parametrize("engine", [True, False], ids=["register_stream", "register"])
@pytest.mark.parametrize("window", WINDOWS)
async def test_per_window_counting_counts_no_item_before_a_flush(
    per_window: RecordingMetricsSink, engine: bool, window: str
) -> None:
    task = Counted(5, WINDOWS[window], fail_item=2)
    with pytest.raises(StateFailure):
        await workflow(task, engine).orchestrate(Step.CONSUME)
    assert counts(per_window) == (0, 1, 0)


@pytest.mark.parametrize("engine", [True, False], ids=["register_stream", "register"])
async def test_a_window_whose_flush_fails_is_counted_with_its_items(
    sink: RecordingMetricsSink, engine: bool
) -> None:
    task = Counted(7, StreamWindow.count(3), fail_flush=True)
    with pytest.raises(StateFailure):
        await workflow(task, engine).orchestrate(Step.CONSUME)
    assert counts(sink) == (3, 0, 1)  # cano counts the window as its flush starts


@pytest.mark.parametrize("engine", [True, False], ids=["register_stream", "register"])
async def test_per_window_counting_skips_a_window_whose_flush_fails(
    per_window: RecordingMetricsSink, engine: bool
) -> None:
    task = Counted(7, StreamWindow.count(3), fail_flush=True)
    with pytest.raises(StateFailure):
        await workflow(task, engine).orchestrate(Step.CONSUME)
    assert counts(per_window) == (0, 0, 0)


@pytest.mark.parametrize("fixture", ["sink", "per_window"])
@pytest.mark.parametrize("window", WINDOWS)
async def test_a_completed_run_counts_the_same_in_both_modes(
    fixture: str, window: str, request: pytest.FixtureRequest
) -> None:
    recording: RecordingMetricsSink = request.getfixturevalue(fixture)
    task = Counted(
        12,
        StreamWindow.count(5) if window == "count" else WINDOWS[window],
        fail_item=7,
        policy=StreamErrorPolicy.skip_and_continue(),
    )
    assert await workflow(task, True).orchestrate(Step.CONSUME) is Step.DONE
    n_windows = len(task.flushed)
    assert n_windows == (3 if window == "count" else 1)
    assert counts(recording) == (11, 1, n_windows)


@pytest.mark.parametrize("fixture", ["sink", "per_window"])
@pytest.mark.parametrize("window", WINDOWS)
async def test_the_cancel_drain_counts_its_window(
    fixture: str, window: str, request: pytest.FixtureRequest
) -> None:
    recording: RecordingMetricsSink = request.getfixturevalue(fixture)
    token = CancellationToken()
    task = Counted(3, WINDOWS[window], gate=token)
    with pytest.raises(StateFailure):
        await workflow(task, True).orchestrate(Step.CONSUME, token)
    assert task.flushed == [[0, 1, 2]]  # the partial window, drained
    assert counts(recording) == (3, 0, 1)
    assert recording.counter_value("cano_stream_runs_total", outcome="cancelled") == 1


def test_an_unknown_counting_mode_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="stream_items must be 'item'.*or 'window'"):
        install_metrics_sink(RecordingMetricsSink(), stream_items="batch")  # type: ignore[arg-type]


def test_the_counting_mode_is_restored_after_the_block_and_reset_by_uninstall() -> None:
    import cano_dsl._metrics as m

    assert m.STREAM_ITEMS_PER_WINDOW is STREAM_ITEMS_PER_WINDOW is False
    with metrics_sink(RecordingMetricsSink(), stream_items="window"):
        assert m.STREAM_ITEMS_PER_WINDOW is True
    assert m.STREAM_ITEMS_PER_WINDOW is False
    install_metrics_sink(RecordingMetricsSink(), stream_items="window")
    uninstall_metrics()
    assert (m.SINK, m.STREAM_ITEMS_PER_WINDOW) == (None, False)
