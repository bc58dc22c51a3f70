"""SteppedTask: the in-memory companion loop and the engine's persisted step loop
(REFERENCE §3.5)."""

from __future__ import annotations

import enum
import json
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    Resources,
    RetryExhausted,
    RowKind,
    StateFailure,
    StepOutcome,
    SteppedTask,
    Task,
    TaskConfig,
    TaskExecutionError,
    TaskResult,
    Workflow,
    stepped,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, MockClock, RecordingObserver


class Step(enum.Enum):
    WORK = enum.auto()
    NEXT = enum.auto()
    DONE = enum.auto()


class Counter(SteppedTask[Step, int]):
    """Counts to ``target``; records every cursor it was handed; fails where told."""

    def __init__(
        self,
        target: int = 3,
        *,
        fail_at: dict[int | None, int] | None = None,
        config: TaskConfig | None = None,
    ) -> None:
        self.target = target
        self.fail_at = dict(fail_at or {})
        self._config = config or TaskConfig().with_fixed_retry(3, 0)
        self.seen: list[int | None] = []

    def config(self) -> TaskConfig:
        return self._config

    async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
        self.seen.append(cursor)
        if self.fail_at.get(cursor, 0) > 0:
            self.fail_at[cursor] -= 1
            raise ValueError(f"step at {cursor} failed")
        n = (cursor or 0) + 1
        if n >= self.target:
            return StepOutcome.done(Step.DONE)
        return StepOutcome.more(n)


def stepped_wf(t: Any, store: Any = None, wid: str = "run-1") -> Workflow[Step]:
    wf = Workflow().register_stepped(Step.WORK, t).add_exit_state(Step.DONE)
    if store is not None:
        wf = wf.with_checkpoint_store(store).with_workflow_id(wid)
    return wf


def cursor_rows(store: InMemoryCheckpointStore, wid: str = "run-1") -> list[CheckpointRow]:
    return [r for r in store.rows(wid) if r.kind == RowKind.STEP_CURSOR]


def test_outcome_values() -> None:
    assert StepOutcome.more(3).is_more
    assert StepOutcome.done(Step.DONE).is_done
    assert StepOutcome.more(42) == StepOutcome.more(42)
    assert StepOutcome.done(Step.DONE) == StepOutcome.done(Step.DONE)
    assert repr(StepOutcome.more([1, 2])) == "StepOutcome.more([1, 2])"
    with pytest.raises(TypeError):
        StepOutcome.done("DONE")  # type: ignore[arg-type]


def test_defaults_retry_and_type_name() -> None:
    @stepped(state=Step)
    class Plain:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            return StepOutcome.done(Step.DONE)

    p = Plain()
    assert p.config().retry_mode.max_attempts > 1  # type: ignore[attr-defined]
    assert "Plain" in p.name()  # type: ignore[attr-defined]
    assert isinstance(p, SteppedTask) and isinstance(p, Task)
    assert task.stepped is stepped


# -- in-memory companion -----------------------------------------------------------------


@pytest.mark.anyio
async def test_in_memory_runs_until_done() -> None:
    c = Counter(5)
    assert await c.run(Resources()) == Step.DONE
    assert c.seen == [None, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_cursor_threading_by_hand() -> None:
    c = Counter(3)
    res = Resources()
    assert await c.step(res, None) == StepOutcome.more(1)
    assert await c.step(res, 1) == StepOutcome.more(2)
    assert await c.step(res, 2) == StepOutcome.done(Step.DONE)


@pytest.mark.anyio
async def test_in_memory_error_propagates() -> None:
    with pytest.raises(ValueError):
        await Counter(3, fail_at={1: 1}).run(Resources())


@pytest.mark.anyio
async def test_in_memory_split_result_is_returned_raw() -> None:
    @stepped
    class Splitter:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            return StepOutcome.done(TaskResult.split([Step.WORK, Step.NEXT]))

    assert await Splitter().run(Resources()) == TaskResult.split([Step.WORK, Step.NEXT])  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_register_restarts_the_whole_loop_from_none_on_retry() -> None:
    c = Counter(4, fail_at={2: 1})
    wf = Workflow().register(Step.WORK, c).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.WORK) == Step.DONE
    assert c.seen == [None, 1, 2, None, 1, 2, 3]


@pytest.mark.anyio
async def test_register_in_a_workflow_with_a_next_state() -> None:
    class ToNext(Counter):
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
            outcome = await super().step(res, cursor)
            return StepOutcome.done(Step.NEXT) if outcome.is_done else outcome

    @task
    async def finish() -> Step:
        return Step.DONE

    wf = (
        Workflow()
        .register(Step.WORK, ToNext(3))
        .register(Step.NEXT, finish)
        .add_exit_state(Step.DONE)
    )
    assert await wf.orchestrate(Step.WORK) == Step.DONE


# -- engine path: register_stepped -------------------------------------------------------


@pytest.mark.anyio
async def test_register_stepped_without_store_runs_to_completion() -> None:
    c = Counter(5)
    assert await stepped_wf(c).orchestrate(Step.WORK) == Step.DONE
    assert c.seen == [None, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_transient_error_retries_the_same_cursor_without_restarting() -> None:
    obs = RecordingObserver()
    c = Counter(5, fail_at={2: 2})
    wf = stepped_wf(c).with_observer(obs)
    assert await wf.orchestrate(Step.WORK) == Step.DONE
    assert c.seen == [None, 1, 2, 2, 2, 3, 4]
    kinds = [type(e).__name__ for e in obs.events]
    assert kinds.count("TaskStarted") == 1
    assert kinds.count("TaskSucceeded") == 1
    assert [e.attempt for e in obs.events if type(e).__name__ == "Retry"] == [1, 2]


@pytest.mark.anyio
async def test_per_step_retries_sleep_on_the_library_clock() -> None:
    with MockClock() as clock:
        start = clock.now()
        c = Counter(3, fail_at={1: 2}, config=TaskConfig().with_fixed_retry(2, 10))
        assert await stepped_wf(c).orchestrate(Step.WORK) == Step.DONE
        assert clock.now() - start == pytest.approx(20.0)


@pytest.mark.anyio
async def test_step_exhausting_its_retries_fails_the_state() -> None:
    obs = RecordingObserver()
    c = Counter(5, fail_at={2: 10})
    with pytest.raises(StateFailure) as info:
        await stepped_wf(c).with_observer(obs).orchestrate(Step.WORK)
    assert isinstance(info.value.error, RetryExhausted)
    assert info.value.attempt == 4
    assert [type(e).__name__ for e in obs.events][-1] == "TaskFailed"


@pytest.mark.anyio
async def test_each_more_appends_a_cursor_row_before_the_next_step() -> None:
    store = InMemoryCheckpointStore()
    obs = RecordingObserver()
    c = Counter(4, fail_at={3: 10}, config=TaskConfig.minimal())
    with pytest.raises(StateFailure):
        await (
            stepped_wf(c, store).with_workflow_version(3).with_observer(obs).orchestrate(Step.WORK)
        )
    rows = store.rows("run-1")
    assert [r.sequence for r in rows] == [0, 1, 2, 3]
    cursors = cursor_rows(store)
    assert [json.loads(r.output_blob or b"") for r in cursors] == [1, 2, 3]
    assert {(r.state, r.task_id, r.workflow_version) for r in cursors} == {("WORK", c.name(), 3)}
    assert [e.sequence for e in obs.events if type(e).__name__ == "Checkpoint"] == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_hard_failure_resumes_from_the_last_persisted_cursor() -> None:
    store = InMemoryCheckpointStore()
    c = Counter(6, fail_at={3: 1}, config=TaskConfig.minimal())
    wf = stepped_wf(c, store, "crash")
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.WORK)
    assert c.seen == [None, 1, 2, 3]
    c.seen.clear()
    assert await wf.resume_from("crash") == Step.DONE
    assert c.seen == [3, 4, 5], "earlier steps never re-run; the committed step re-runs"
    assert store.rows("crash") == []


@pytest.mark.anyio
async def test_resume_cursor_is_consumed_by_the_first_visit() -> None:
    visits: list[Any] = []

    @stepped(state=Step)
    class Loop:
        config = TaskConfig.minimal()

        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            visits.append(cursor)
            return StepOutcome.done(Step.NEXT)

    rounds = [0]

    @task
    async def again() -> Step:
        rounds[0] += 1
        return Step.WORK if rounds[0] == 1 else Step.DONE

    store = InMemoryCheckpointStore()
    name = Loop().name()  # type: ignore[attr-defined]
    await store.append("loop", CheckpointRow(0, "WORK", name))
    await store.append("loop", CheckpointRow(1, "WORK", name).with_cursor(b"7"))
    wf = (
        Workflow()
        .register_stepped(Step.WORK, Loop())
        .register(Step.NEXT, again)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("loop")
    )
    assert await wf.resume_from("loop") == Step.DONE
    assert visits == [7, None]


@pytest.mark.anyio
async def test_cursors_travel_as_json() -> None:
    seen: list[Any] = []

    @stepped
    class Tupled:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            seen.append(cursor)
            if cursor is None:
                return StepOutcome.more((1, "a"))
            return StepOutcome.done(Step.DONE)

    assert await stepped_wf(Tupled()).orchestrate(Step.WORK) == Step.DONE
    assert seen == [None, [1, "a"]]


@pytest.mark.anyio
async def test_unserialisable_cursor_fails_with_serialize_error() -> None:
    @stepped
    class Opaque:
        config = TaskConfig.minimal()

        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            return StepOutcome.more(object())

    with pytest.raises(StateFailure) as info:
        await stepped_wf(Opaque()).orchestrate(Step.WORK)
    assert isinstance(info.value.error, TaskExecutionError)
    assert info.value.error.message.startswith("serialize cursor for `")


@pytest.mark.anyio
async def test_corrupt_resume_cursor_fails_to_deserialize() -> None:
    store = InMemoryCheckpointStore()
    c = Counter(3, config=TaskConfig.minimal())
    await store.append("bad", CheckpointRow(0, "WORK", c.name()))
    await store.append("bad", CheckpointRow(1, "WORK", c.name()).with_cursor(b"{nope"))
    with pytest.raises(StateFailure) as info:
        await stepped_wf(c, store, "bad").resume_from("bad")
    assert isinstance(info.value.error, TaskExecutionError)
    assert info.value.error.message.startswith(f"deserialize cursor for `{c.name()}`")
    assert c.seen == []


class FailingCursorStore(InMemoryCheckpointStore):
    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        if row.kind == RowKind.STEP_CURSOR:
            raise OSError("disk full")
        await super().append(workflow_id, row)


@pytest.mark.anyio
async def test_cursor_append_failure_surfaces() -> None:
    c = Counter(3)
    with pytest.raises(StateFailure) as info:
        await stepped_wf(c, FailingCursorStore()).orchestrate(Step.WORK)
    assert info.value.category == "checkpoint_store"
    assert str(info.value.error).endswith("append step cursor checkpoint: disk full")
    assert c.seen == [None]


@pytest.mark.anyio
async def test_split_result_is_rejected() -> None:
    @stepped
    class Splitter:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            return StepOutcome.done(TaskResult.split([Step.WORK, Step.NEXT]))

    obs = RecordingObserver()
    with pytest.raises(StateFailure, match="split is not supported for Stepped states"):
        await stepped_wf(Splitter()).with_observer(obs).orchestrate(Step.WORK)
    assert [type(e).__name__ for e in obs.events][-1] == "TaskFailed"


@pytest.mark.anyio
async def test_wrong_return_type_is_a_task_error() -> None:
    @stepped
    class Bad:
        config = TaskConfig.minimal()

        async def step(self, res: Resources, cursor: Any) -> Any:
            return Step.DONE

    with pytest.raises(StateFailure, match="must return a StepOutcome"):
        await stepped_wf(Bad()).orchestrate(Step.WORK)


@pytest.mark.anyio
async def test_cancel_mid_step_reports_failure_and_cancelled() -> None:
    token = CancellationToken()

    @stepped
    class Hangs:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            if cursor == 2:
                await anyio.sleep_forever()
            return StepOutcome.more((cursor or 0) + 1)

    async def cancel_when_blocked() -> None:
        await anyio.wait_all_tasks_blocked()
        token.cancel()

    obs = RecordingObserver()
    store = InMemoryCheckpointStore()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_blocked)
        with pytest.raises(StateFailure) as info:
            await stepped_wf(Hangs(), store).with_observer(obs).orchestrate(Step.WORK, cancel=token)
    assert info.value.category == "cancelled"
    kinds = [type(e).__name__ for e in obs.events]
    assert kinds[-2:] == ["TaskFailed", "Cancelled"]
    assert [json.loads(r.output_blob or b"") for r in cursor_rows(store)] == [1, 2]
