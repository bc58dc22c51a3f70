"""StreamTask: the per-window driver, both registration paths, the cooperative drain,
cursor persistence and resume (REFERENCE §3.6)."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    CloseReason,
    ConfigurationError,
    Resources,
    RowKind,
    StateFailure,
    StreamErrorPolicy,
    StreamTask,
    StreamWindow,
    TaskConfig,
    TaskExecutionError,
    TaskResult,
    TaskTimeout,
    WindowSignal,
    Workflow,
    WorkflowObserver,
    stream,
)
from cano_dsl.testing import InMemoryCheckpointStore, MockClock, RecordingObserver


class Step(enum.Enum):
    CONSUME = enum.auto()
    DONE = enum.auto()
    VIA_STOP = enum.auto()
    VIA_CLOSE = enum.auto()


class Recorder(InMemoryCheckpointStore):
    """Remembers every committed cursor, even after a successful run clears the log."""

    def __init__(self) -> None:
        super().__init__()
        self.cursors: list[Any] = []

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        await super().append(workflow_id, row)
        if row.kind == RowKind.STEP_CURSOR:
            assert row.output_blob is not None
            self.cursors.append(json.loads(row.output_blob))


class Numbers(StreamTask[Step, int, int, int]):
    """Streams ``items`` (resuming after the cursor, which is the item itself); records
    what happened. Knobs cover the behaviours under test."""

    def __init__(
        self,
        items: Iterable[int] = (1, 2, 3),
        *,
        window: StreamWindow | None = None,
        policy: StreamErrorPolicy | None = None,
        fail: Iterable[int] = (),
        stop: bool = False,
        flush_error: bool = False,
        close_error: bool = False,
        config: TaskConfig | None = None,
        cancel: CancellationToken | None = None,
        cancel_at: int | None = None,
    ) -> None:
        self.items = list(items)
        self._window = window or StreamWindow.count(1)
        self._policy = policy or StreamErrorPolicy.fail_fast()
        self._config = config or TaskConfig.minimal()
        self.fail = set(fail)
        self.stop = stop
        self.flush_error = flush_error
        self.close_error = close_error
        self.cancel = cancel
        self.cancel_at = cancel_at
        self.opened: list[int | None] = []
        self.processed: list[int] = []
        self.windows: list[list[int]] = []
        self.closes: list[CloseReason] = []

    def window(self) -> StreamWindow:
        return self._window

    def on_item_error(self) -> StreamErrorPolicy:
        return self._policy

    def config(self) -> TaskConfig:
        return self._config

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
        self.opened.append(cursor)
        for item in self.items:
            if cursor is None or item > cursor:
                yield item

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        self.processed.append(item)
        if self.cancel is not None and item == self.cancel_at:
            self.cancel.cancel()
        if item in self.fail:
            raise ValueError(f"item {item} failed")
        return item, item

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
        self.windows.append(list(outputs))
        if self.flush_error:
            raise RuntimeError("flush failed")
        if self.stop:
            return WindowSignal.stop(Step.VIA_STOP)
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        self.closes.append(reason)
        if self.close_error:
            raise RuntimeError("close failed")
        return Step.VIA_CLOSE if self.stop else Step.DONE


def engine(task: Any, store: Any = None, wid: str = "run-1") -> Workflow[Step]:
    wf = (
        Workflow()
        .register_stream(Step.CONSUME, task)
        .add_exit_states([Step.DONE, Step.VIA_STOP, Step.VIA_CLOSE])
    )
    if store is not None:
        wf = wf.with_checkpoint_store(store).with_workflow_id(wid)
    return wf


# -- value types -----------------------------------------------------------------------


def test_value_types_and_defaults() -> None:
    assert StreamErrorPolicy.fail_fast() == StreamErrorPolicy()
    assert StreamErrorPolicy.retry_on_error(2).max_errors == 2
    assert StreamWindow.count(8).size == 8
    assert StreamWindow.duration(0.005).length == 0.005
    assert WindowSignal.stop(Step.DONE).is_stop
    assert not WindowSignal.continue_().is_stop
    assert CloseReason.EXHAUSTED != CloseReason.CANCELLED
    assert repr(StreamWindow.count(3)) == "StreamWindow.count(3)"
    assert repr(StreamErrorPolicy.skip_and_continue()) == "StreamErrorPolicy.skip_and_continue()"


def test_invalid_values_raise_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        StreamWindow.count(-1)
    with pytest.raises(ConfigurationError):
        StreamWindow.duration(-0.5)
    with pytest.raises(ConfigurationError):
        StreamErrorPolicy.retry_on_error(-1)
    with pytest.raises(TypeError):
        WindowSignal.stop("DONE")  # type: ignore[arg-type]


def test_default_hooks_of_the_base_class() -> None:
    task = Numbers.__new__(Numbers)
    assert StreamTask.window(task) == StreamWindow.count(1)
    assert StreamTask.on_item_error(task) == StreamErrorPolicy.fail_fast()
    assert StreamTask.config(task) == TaskConfig.minimal()
    assert "Numbers" in task.name()


# -- in-memory companion (Task.run / Workflow.register) ---------------------------------


@pytest.mark.anyio
async def test_in_memory_windows_keep_order() -> None:
    task = Numbers([10, 20, 30, 40, 50], window=StreamWindow.count(2))
    assert await task.run(Resources()) == Step.DONE
    assert task.processed == [10, 20, 30, 40, 50]
    assert task.windows == [[10, 20], [30, 40], [50]]
    assert task.opened == [None]
    assert task.closes == [CloseReason.EXHAUSTED]


@pytest.mark.anyio
async def test_register_runs_the_in_memory_loop() -> None:
    task = Numbers([1, 2, 3], window=StreamWindow.count(2))
    wf = Workflow().register(Step.CONSUME, task).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CONSUME) == Step.DONE
    assert task.windows == [[1, 2], [3]]


@pytest.mark.anyio
async def test_fail_fast_propagates_the_item_error() -> None:
    task = Numbers([1, 2, 3], fail=[2])
    with pytest.raises(ValueError, match="item 2 failed"):
        await task.run(Resources())
    assert task.processed == [1, 2]


@pytest.mark.anyio
async def test_skip_and_continue_drops_the_bad_item() -> None:
    task = Numbers([1, 2, 3], fail=[2], policy=StreamErrorPolicy.skip_and_continue())
    assert await task.run(Resources()) == Step.DONE
    assert task.windows == [[1], [3]]


@pytest.mark.anyio
async def test_window_stop_short_circuits_without_on_close() -> None:
    task = Numbers([1, 2, 3], stop=True)
    assert await task.run(Resources()) == Step.VIA_STOP
    assert task.windows == [[1]]
    assert task.closes == []


@pytest.mark.anyio
async def test_retry_on_error_tolerates_consecutive_errors_within_max() -> None:
    task = Numbers([1, 2, 3, 4], fail=[2, 3], policy=StreamErrorPolicy.retry_on_error(2))
    assert await task.run(Resources()) == Step.DONE
    assert task.windows == [[1], [4]]


@pytest.mark.anyio
async def test_retry_on_error_fails_past_max() -> None:
    task = Numbers([1, 2, 3], fail=[2, 3], policy=StreamErrorPolicy.retry_on_error(1))
    with pytest.raises(ValueError, match="item 3"):
        await task.run(Resources())


@pytest.mark.anyio
async def test_retry_on_error_counter_resets_on_success() -> None:
    task = Numbers(range(1, 7), fail=[2, 3, 5, 6], policy=StreamErrorPolicy.retry_on_error(2))
    assert await task.run(Resources()) == Step.DONE


@pytest.mark.anyio
async def test_retry_on_error_counter_survives_window_boundaries() -> None:
    task = Numbers(
        [1, 2, 3, 4],
        fail=[2, 3],
        window=StreamWindow.count(1),
        policy=StreamErrorPolicy.retry_on_error(1),
    )
    with pytest.raises(ValueError, match="item 3"):
        await task.run(Resources())


@pytest.mark.anyio
async def test_retry_on_error_max_zero_fails_on_first_error() -> None:
    task = Numbers([1, 2, 3], fail=[2], policy=StreamErrorPolicy.retry_on_error(0))
    with pytest.raises(ValueError):
        await task.run(Resources())


@pytest.mark.anyio
async def test_count_zero_window_behaves_as_one() -> None:
    task = Numbers([1, 2, 3], window=StreamWindow.count(0))
    await task.run(Resources())
    assert task.windows == [[1], [2], [3]]


@pytest.mark.anyio
async def test_empty_stream_closes_without_flush() -> None:
    task = Numbers([])
    assert await task.run(Resources()) == Step.DONE
    assert task.windows == []
    assert task.closes == [CloseReason.EXHAUSTED]


class SlowFirst(Numbers):
    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        if item == 1:
            await anyio.sleep_forever()
        return await super().process_item(res, item)


@pytest.mark.anyio
async def test_timed_out_item_is_skipped_under_skip_and_continue() -> None:
    task = SlowFirst(
        [1, 2, 3],
        window=StreamWindow.count(5),
        policy=StreamErrorPolicy.skip_and_continue(),
        config=TaskConfig.minimal().with_attempt_timeout(0.01),
    )
    assert await task.run(Resources()) == Step.DONE
    assert task.windows == [[2, 3]]


@pytest.mark.anyio
async def test_timed_out_item_counts_under_retry_on_error() -> None:
    task = SlowFirst(
        [1, 2, 3],
        policy=StreamErrorPolicy.retry_on_error(0),
        config=TaskConfig.minimal().with_attempt_timeout(0.01),
    )
    with pytest.raises(TaskTimeout, match="stream process_item exceeded attempt_timeout"):
        await task.run(Resources())


@pytest.mark.anyio
async def test_open_may_be_a_coroutine_returning_an_async_iterable() -> None:
    @stream(state=Step)
    class FromList:
        def __init__(self) -> None:
            self.seen: list[int] = []

        async def open(self, res: Resources, cursor: Any) -> Any:
            async def gen() -> AsyncIterator[int]:
                for i in (1, 2):
                    yield i

            return gen()

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            self.seen.append(item)
            return item, item

        async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Step:
            return Step.DONE

    task = FromList()
    wf = Workflow().register_stream(Step.CONSUME, task).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CONSUME) == Step.DONE
    assert task.seen == [1, 2]
    assert isinstance(task, StreamTask)


@pytest.mark.anyio
async def test_async_generator_source_is_closed_when_the_state_ends() -> None:
    closed: list[bool] = []

    class Closing(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            try:
                for i in self.items:
                    yield i
            finally:
                closed.append(True)

    task = Closing([1, 2, 3], stop=True)
    assert await engine(task).orchestrate(Step.CONSUME) == Step.VIA_STOP
    assert closed == [True]


@pytest.mark.anyio
async def test_source_error_fails_the_run() -> None:
    class Broken(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            yield 1
            raise OSError("source broke")

    with pytest.raises(StateFailure) as info:
        await engine(Broken()).orchestrate(Step.CONSUME)
    assert isinstance(info.value.error, OSError)


@pytest.mark.anyio
async def test_bad_return_values_are_task_errors() -> None:
    class BadFlush(Numbers):
        async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
            return Step.DONE

    with pytest.raises(TaskExecutionError, match="must return a WindowSignal"):
        await BadFlush().run(Resources())

    class BadItem(Numbers):
        async def process_item(self, res: Resources, item: int) -> Any:
            return item

    with pytest.raises(TaskExecutionError, match=r"\(output, cursor\)"):
        await BadItem().run(Resources())


# -- engine path: register_stream ------------------------------------------------------


@pytest.mark.anyio
async def test_register_stream_without_store_completes() -> None:
    task = Numbers([1, 2, 3], window=StreamWindow.count(2))
    assert await engine(task).orchestrate(Step.CONSUME) == Step.DONE
    assert task.windows == [[1, 2], [3]]


@pytest.mark.anyio
async def test_terminal_partial_flush_stop_is_honoured() -> None:
    task = Numbers([1, 2], window=StreamWindow.count(3), stop=True)
    assert await engine(task).orchestrate(Step.CONSUME) == Step.VIA_STOP
    assert task.closes == []


@pytest.mark.anyio
async def test_exact_divide_commits_only_full_window_cursors() -> None:
    store = Recorder()
    task = Numbers([1, 2, 3, 4], window=StreamWindow.count(2))
    assert await engine(task, store).orchestrate(Step.CONSUME) == Step.DONE
    assert task.windows == [[1, 2], [3, 4]]
    assert store.cursors == [2, 4]


@pytest.mark.anyio
async def test_exhaustion_commits_the_partial_window_cursor() -> None:
    store = Recorder()
    task = Numbers([1, 2, 3], window=StreamWindow.count(2))
    await engine(task, store).orchestrate(Step.CONSUME)
    assert store.cursors == [2, 3]


@pytest.mark.anyio
async def test_empty_stream_commits_no_cursor() -> None:
    store = Recorder()
    task = Numbers([], window=StreamWindow.count(2))
    assert await engine(task, store).orchestrate(Step.CONSUME) == Step.DONE
    assert store.cursors == []
    assert task.windows == []


@pytest.mark.anyio
async def test_skipped_item_cursor_is_never_committed() -> None:
    store = Recorder()
    task = Numbers([1, 2, 3], fail=[2], policy=StreamErrorPolicy.skip_and_continue())
    await engine(task, store).orchestrate(Step.CONSUME)
    assert store.cursors == [1, 3]


@pytest.mark.anyio
async def test_cursor_rows_carry_label_task_id_and_version() -> None:
    store = InMemoryCheckpointStore()
    task = Numbers([1, 2, 3], window=StreamWindow.count(2), fail=[3])
    wf = engine(task, store).with_workflow_version(7)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.CONSUME)
    rows = store.rows("run-1")
    assert [r.kind for r in rows] == [RowKind.STATE_ENTRY, RowKind.STEP_CURSOR]
    cursor_row = rows[1]
    assert (cursor_row.sequence, cursor_row.state, cursor_row.task_id) == (
        1,
        "CONSUME",
        task.name(),
    )
    assert cursor_row.output_blob == b"2"
    assert cursor_row.workflow_version == 7


@pytest.mark.anyio
async def test_persists_cursor_and_resumes_after_a_failed_window() -> None:
    class CrashOnce(Numbers):
        crashed = False

        async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
            if outputs == [5, 6] and not self.crashed:
                self.crashed = True
                raise RuntimeError("crash in window [5, 6]")
            return await super().flush_window(res, outputs)

    store = Recorder()
    task = CrashOnce(range(1, 7), window=StreamWindow.count(2))
    wf = engine(task, store, "resume-test")
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.CONSUME)
    assert store.cursors == [2, 4]
    assert await wf.resume_from("resume-test") == Step.DONE
    assert task.opened == [None, 4]
    assert task.processed == [1, 2, 3, 4, 5, 6, 5, 6]


@pytest.mark.anyio
async def test_outer_retry_is_never_applied() -> None:
    task = Numbers([1, 2], fail=[1], config=TaskConfig().with_fixed_retry(3, 0))
    with pytest.raises(StateFailure) as info:
        await engine(task).orchestrate(Step.CONSUME)
    assert isinstance(info.value.error, ValueError)
    assert task.opened == [None]


@pytest.mark.anyio
async def test_attempt_timeout_bounds_each_process_item() -> None:
    task = SlowFirst([1], config=TaskConfig.minimal().with_attempt_timeout(0.01))
    with pytest.raises(StateFailure) as info:
        await engine(task).orchestrate(Step.CONSUME)
    assert info.value.category == "timeout"


@pytest.mark.anyio
async def test_split_result_is_rejected() -> None:
    class Splits(Numbers):
        async def on_close(self, res: Resources, reason: CloseReason) -> Any:
            return TaskResult.split([Step.DONE, Step.VIA_CLOSE])

    obs = RecordingObserver()
    with pytest.raises(StateFailure, match="not supported for Stream states"):
        await engine(Splits()).with_observer(obs).orchestrate(Step.CONSUME)
    assert [type(e).__name__ for e in obs.events][-1] == "TaskFailed"


@pytest.mark.anyio
async def test_corrupt_resume_cursor_fails_to_deserialize() -> None:
    store = InMemoryCheckpointStore()
    task = Numbers()
    await store.append("bad", CheckpointRow(0, "CONSUME", task.name()))
    await store.append("bad", CheckpointRow(1, "CONSUME", task.name()).with_cursor(b"{nope"))
    with pytest.raises(StateFailure) as info:
        await engine(task, store, "bad").resume_from("bad")
    assert isinstance(info.value.error, TaskExecutionError)
    assert "deserialize stream cursor for `" in str(info.value.error)
    assert task.opened == []


@pytest.mark.anyio
async def test_unserialisable_cursor_fails_with_serialize_error() -> None:
    class Opaque(Numbers):
        async def process_item(self, res: Resources, item: int) -> Any:
            return item, object()

    with pytest.raises(StateFailure, match="serialize stream cursor for `"):
        await engine(Opaque()).orchestrate(Step.CONSUME)


class FailingCursorStore(InMemoryCheckpointStore):
    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        if row.kind == RowKind.STEP_CURSOR:
            raise OSError("disk full")
        await super().append(workflow_id, row)


@pytest.mark.anyio
async def test_checkpoint_append_failure_surfaces() -> None:
    with pytest.raises(StateFailure) as info:
        await engine(Numbers(), FailingCursorStore()).orchestrate(Step.CONSUME)
    assert info.value.category == "checkpoint_store"
    assert "append stream cursor checkpoint: disk full" in str(info.value.error)


@pytest.mark.anyio
async def test_name_override_reaches_the_observers() -> None:
    class Named(Numbers):
        def name(self) -> str:
            return "my-custom-stream"

    obs = RecordingObserver()
    await engine(Named([1])).with_observer(obs).orchestrate(Step.CONSUME)
    names = [type(e).__name__ for e in obs.events]
    assert names == ["StateEntered", "TaskStarted", "TaskSucceeded", "StateEntered"]
    assert obs.events[1].task_id == "my-custom-stream"


# -- cancellation and the total timeout ------------------------------------------------


class Counting(WorkflowObserver):
    def __init__(self) -> None:
        self.log: list[str] = []

    def on_task_start(self, task_id: str) -> None:
        self.log.append("start")

    def on_task_success(self, task_id: str) -> None:
        self.log.append("success")

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self.log.append(f"failure:{type(error).__name__}")

    def on_cancelled(self, state: str) -> None:
        self.log.append(f"cancelled:{state}")

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self.log.append("timeout")


@pytest.mark.anyio
async def test_cancel_drains_flushes_partial_window_and_commits_cursor() -> None:
    token = CancellationToken()
    store = Recorder()
    obs = Counting()
    task = Numbers(range(1, 100), window=StreamWindow.count(4), cancel=token, cancel_at=6)
    wf = engine(task, store).with_observer(obs)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert info.value.attempt == 0
    assert task.processed == [1, 2, 3, 4, 5, 6]
    assert task.windows == [[1, 2, 3, 4], [5, 6]]
    assert task.closes == [CloseReason.CANCELLED]
    assert store.cursors == [4, 6]
    assert obs.log == ["start", "failure:WorkflowCancelled", "cancelled:CONSUME"]


@pytest.mark.anyio
async def test_cancel_ignores_stop_from_the_drain_flush() -> None:
    token = CancellationToken()
    task = Numbers(range(1, 10), window=StreamWindow.count(5), stop=True, cancel=token, cancel_at=2)
    with pytest.raises(StateFailure) as info:
        await engine(task).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert task.windows == [[1, 2]]
    assert task.closes == [CloseReason.CANCELLED]


@pytest.mark.anyio
async def test_cancel_with_empty_buffer_skips_flush_but_closes() -> None:
    token = CancellationToken()
    store = Recorder()
    task = Numbers(range(1, 10), window=StreamWindow.count(2), cancel=token, cancel_at=2)
    with pytest.raises(StateFailure):
        await engine(task, store).orchestrate(Step.CONSUME, cancel=token)
    assert task.windows == [[1, 2]]
    assert task.closes == [CloseReason.CANCELLED]
    assert store.cursors == [2]


@pytest.mark.anyio
async def test_cancel_propagates_the_on_close_error() -> None:
    token = CancellationToken()
    task = Numbers(range(1, 10), close_error=True, cancel=token, cancel_at=1)
    with pytest.raises(StateFailure) as info:
        await engine(task).orchestrate(Step.CONSUME, cancel=token)
    assert isinstance(info.value.error, RuntimeError)
    assert str(info.value.error) == "close failed"


@pytest.mark.anyio
async def test_drain_flush_error_still_runs_on_close_and_commits_nothing() -> None:
    token = CancellationToken()
    store = Recorder()
    task = Numbers(
        range(1, 10),
        window=StreamWindow.count(1000),
        flush_error=True,
        close_error=True,
        cancel=token,
        cancel_at=3,
    )
    with pytest.raises(StateFailure) as info:
        await engine(task, store).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "task_execution"
    assert str(info.value.error) == "flush failed"
    assert task.closes == [CloseReason.CANCELLED]
    assert store.cursors == []


@pytest.mark.anyio
async def test_cancel_commits_partial_cursor_and_resume_does_not_duplicate() -> None:
    token = CancellationToken()
    store = Recorder()
    task = Numbers(range(1, 8), window=StreamWindow.count(3), cancel=token, cancel_at=5)
    wf = engine(task, store, "cancel-resume")
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.CONSUME, cancel=token)
    assert store.cursors == [3, 5]
    task.cancel = None
    assert await wf.resume_from("cancel-resume") == Step.DONE
    assert task.processed == [1, 2, 3, 4, 5, 6, 7]
    assert task.opened == [None, 5]


@pytest.mark.anyio
async def test_hung_open_is_cancellable_without_on_close() -> None:
    class HungOpen(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> Any:  # type: ignore[override]
            await anyio.sleep_forever()

    token = CancellationToken()
    task = HungOpen()
    obs = Counting()

    async def cancel_when_blocked() -> None:
        await anyio.wait_all_tasks_blocked()
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_blocked)
        with pytest.raises(StateFailure) as info:
            await engine(task).with_observer(obs).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert task.closes == []
    assert obs.log == ["start", "failure:WorkflowCancelled", "cancelled:CONSUME"]


@pytest.mark.anyio
async def test_waiting_for_an_item_is_cancellable() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)

    class Live(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            async for item in receive:
                yield item

    token = CancellationToken()
    store = Recorder()
    task = Live(window=StreamWindow.count(10))

    async def feed() -> None:
        for i in (1, 2, 3):
            await send.send(i)
        await anyio.wait_all_tasks_blocked()
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(feed)
        with pytest.raises(StateFailure) as info:
            await engine(task, store).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert task.windows == [[1, 2, 3]]
    assert store.cursors == [3]
    send.close()
    receive.close()


@pytest.mark.anyio
async def test_total_timeout_drains_commits_and_reports_workflow_timeout() -> None:
    class Endless(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            n = 0
            while True:
                n += 1
                await anyio.sleep(0.001)
                yield n

    store = Recorder()
    obs = Counting()
    task = Endless(window=StreamWindow.count(3))
    # long enough for a first window of 3 items even after a stall on a loaded machine
    wf = engine(task, store).with_total_timeout(0.5).with_observer(obs)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.CONSUME)
    assert info.value.category == "workflow_timeout"
    assert info.value.attempt == 0
    assert task.closes == [CloseReason.CANCELLED]
    assert store.cursors, "the in-flight window is committed before the timeout surfaces"
    assert store.cursors[-1] == task.processed[-1]
    assert obs.log == ["start", "failure:WorkflowTimeout", "timeout"]


@pytest.mark.anyio
async def test_pre_cancelled_token_runs_no_stream() -> None:
    token = CancellationToken()
    token.cancel()
    task = Numbers()
    with pytest.raises(StateFailure) as info:
        await engine(task).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert task.opened == []


@pytest.mark.anyio
async def test_task_raising_workflow_cancelled_itself_is_an_ordinary_failure() -> None:
    from cano_dsl import WorkflowCancelled

    class SelfCancel(Numbers):
        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            raise WorkflowCancelled()

    obs = Counting()
    with pytest.raises(StateFailure):
        await engine(SelfCancel()).with_observer(obs).orchestrate(Step.CONSUME)
    assert obs.log == ["start", "failure:WorkflowCancelled"]


@pytest.mark.anyio
async def test_enclosing_scope_cancel_closes_the_source() -> None:
    closed: list[bool] = []

    class Slow(Numbers):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            try:
                while True:
                    await anyio.sleep_forever()
                    yield 0
            finally:
                closed.append(True)

    with anyio.move_on_after(0.01):
        await engine(Slow()).orchestrate(Step.CONSUME)
    assert closed == [True]


# -- duration windows (virtual time) ----------------------------------------------------


class Timed(Numbers):
    """Produces ``(delay, item)`` pairs: sleeps ``delay`` virtual seconds before each."""

    def __init__(self, schedule: list[tuple[float, int]], **kw: Any) -> None:
        super().__init__([i for _, i in schedule], **kw)
        self.schedule = schedule

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
        from cano_dsl import _clock

        for delay, item in self.schedule:
            await _clock.sleep(delay)
            yield item


@pytest.mark.anyio
async def test_duration_window_flushes_on_deadline_and_rearms() -> None:
    with MockClock():
        store = Recorder()
        task = Timed([(3, 1), (3, 2), (3, 3), (3, 4)], window=StreamWindow.duration(5))
        assert await engine(task, store).orchestrate(Step.CONSUME) == Step.DONE
    assert task.windows == [[1], [2, 3], [4]]
    assert store.cursors == [1, 3, 4]


@pytest.mark.anyio
async def test_duration_window_skips_empty_intervals() -> None:
    with MockClock():
        task = Timed([(12, 1)], window=StreamWindow.duration(5))
        assert await engine(task).orchestrate(Step.CONSUME) == Step.DONE
    assert task.windows == [[1]]


@pytest.mark.anyio
async def test_duration_window_stop_transitions_without_close() -> None:
    with MockClock():
        task = Timed([(3, 1), (3600, 2)], window=StreamWindow.duration(5), stop=True)
        assert await engine(task).orchestrate(Step.CONSUME) == Step.VIA_STOP
    assert task.windows == [[1]]
    assert task.closes == []


@pytest.mark.anyio
async def test_zero_duration_window_is_clamped_not_livelocked() -> None:
    task = Numbers([1, 2, 3], window=StreamWindow.duration(0))
    assert await engine(task).orchestrate(Step.CONSUME) == Step.DONE
    assert task.processed == [1, 2, 3]


@pytest.mark.anyio
async def test_duration_window_in_memory_path() -> None:
    with MockClock():
        task = Timed([(1, 1), (1, 2), (10, 3)], window=StreamWindow.duration(5))
        assert await task.run(Resources()) == Step.DONE
    assert task.windows == [[1, 2], [3]]


@pytest.mark.anyio
async def test_duration_window_cancel_drains() -> None:
    token = CancellationToken()
    store = Recorder()
    with MockClock():
        task = Timed(
            [(1, 1), (1, 2), (3600, 3)],
            window=StreamWindow.duration(100),
            cancel=token,
            cancel_at=2,
        )
        with pytest.raises(StateFailure) as info:
            await engine(task, store).orchestrate(Step.CONSUME, cancel=token)
    assert info.value.category == "cancelled"
    assert task.windows == [[1, 2]]
    assert store.cursors == [2]
    assert task.closes == [CloseReason.CANCELLED]


@pytest.mark.anyio
async def test_duration_window_source_error_fails_the_run() -> None:
    class Broken(Timed):
        async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
            yield 1
            raise OSError("gone")

    with MockClock():
        task = Broken([], window=StreamWindow.duration(5))
        with pytest.raises(StateFailure) as info:
            await engine(task).orchestrate(Step.CONSUME)
    assert isinstance(info.value.error, OSError)
