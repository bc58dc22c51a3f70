"""What the engine writes to a checkpoint store, and when the log is kept (REFERENCE §9.3)."""

from __future__ import annotations

import enum
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    CompensationFailed,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    Resources,
    RowKind,
    RunClaimedError,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    router,
    task,
)

pytestmark = pytest.mark.anyio

MINIMAL = TaskConfig.minimal()


class Step(enum.Enum):
    START = enum.auto()
    ROUTE = enum.auto()
    FAN = enum.auto()
    JOIN = enum.auto()
    PAY = enum.auto()
    FAIL = enum.auto()
    DONE = enum.auto()


class Tap:
    """A store wrapper that remembers every row appended through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.appended: list[CheckpointRow] = []

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        await self.inner.append(workflow_id, row)
        self.appended.append(row)

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        return await self.inner.load_run(workflow_id)

    async def clear(self, workflow_id: str) -> None:
        await self.inner.clear(workflow_id)


def step_task(nxt: Step, name: str) -> Any:
    @task(config=MINIMAL, name=name)
    async def run(res: Resources) -> Step:
        return nxt

    return run


@router(state=Step, config=MINIMAL)
class ToFan:
    async def route(self, res: Resources) -> Step:
        return Step.FAN


@task(state=Step, config=MINIMAL)
class Boom:
    def name(self) -> str:
        return "boom"

    async def run(self, res: Resources) -> Step:
        raise RuntimeError("boom")


@compensatable(state=Step, config=MINIMAL, name="pay")
class Pay:
    def __init__(self, nxt: Step = Step.DONE, undo_error: Exception | None = None) -> None:
        self.nxt = nxt
        self.undo_error = undo_error
        self.undone = 0

    async def run(self, res: Resources) -> tuple[Step, dict[str, int]]:
        return self.nxt, {"amount": 10}

    async def compensate(self, res: Resources, output: dict[str, int]) -> None:
        self.undone += 1
        if self.undo_error is not None:
            raise self.undo_error


def pipeline(store: Any, wid: str = "run", *, then: Step = Step.DONE) -> Workflow[Step]:
    return (
        Workflow.bare()
        .register(Step.START, step_task(Step.ROUTE, "start"))
        .register_router(Step.ROUTE, ToFan())
        .register_split(
            Step.FAN,
            [step_task(Step.JOIN, "left"), step_task(Step.JOIN, "right")],
            JoinConfig(JoinStrategy.all(), Step.JOIN),
        )
        .register(Step.JOIN, step_task(Step.PAY, "join"))
        .register_with_compensation(Step.PAY, Pay(then))
        .register(Step.FAIL, Boom())
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id(wid)
        .with_workflow_version(7)
    )


async def test_rows_are_dense_routers_skip_splits_write_one_and_exits_write_one(
    store: Any,
) -> None:
    tap = Tap(store)
    assert await pipeline(tap).orchestrate(Step.START) is Step.DONE
    got = [(r.sequence, r.state, r.task_id, r.kind) for r in tap.appended]
    assert got == [
        (0, "START", "start", RowKind.STATE_ENTRY),
        (1, "FAN", "", RowKind.STATE_ENTRY),
        (2, "JOIN", "join", RowKind.STATE_ENTRY),
        (3, "PAY", "pay", RowKind.STATE_ENTRY),
        (4, "PAY", "pay", RowKind.COMPENSATION_COMPLETION),
        (5, "DONE", "", RowKind.STATE_ENTRY),
    ]
    assert {r.workflow_version for r in tap.appended} == {7}
    assert tap.appended[4].output_blob == b'{"amount":10}'


async def test_success_clears_the_log(store: Any) -> None:
    await pipeline(store).orchestrate(Step.START)
    assert await store.load_run("run") == []


async def test_observer_sees_each_append(store: Any) -> None:
    seen: list[tuple[str, int]] = []

    class Spy:
        def on_checkpoint(self, wid: str, seq: int) -> None:
            seen.append((wid, seq))

    await pipeline(store).with_observer(Spy()).orchestrate(Step.START)
    assert seen == [("run", i) for i in range(6)]


async def test_failure_with_empty_stack_keeps_the_log_and_is_resumable(store: Any) -> None:
    wf = (
        Workflow.bare()
        .register(Step.START, step_task(Step.FAIL, "start"))
        .register(Step.FAIL, Boom())
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("keep")
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.START)
    rows = await store.load_run("keep")
    assert [(r.sequence, r.state) for r in rows] == [(0, "START"), (1, "FAIL")]
    fixed = wf.register(Step.FAIL, step_task(Step.DONE, "boom"))
    assert await fixed.resume_from("keep") is Step.DONE
    assert await store.load_run("keep") == []


async def test_clean_rollback_clears_the_log(store: Any) -> None:
    with pytest.raises(StateFailure):
        await pipeline(store, "clean", then=Step.FAIL).orchestrate(Step.START)
    assert await store.load_run("clean") == []


async def test_dirty_rollback_keeps_the_log(store: Any) -> None:
    wf = pipeline(store, "dirty").register_with_compensation(
        Step.PAY, Pay(Step.FAIL, undo_error=RuntimeError("refund failed"))
    )
    with pytest.raises(CompensationFailed):
        await wf.orchestrate(Step.START)
    rows = await store.load_run("dirty")
    assert [r.kind for r in rows][-2:] == [RowKind.COMPENSATION_COMPLETION, RowKind.STATE_ENTRY]


async def test_cancel_of_a_plain_run_keeps_the_log(store: Any) -> None:
    token = CancellationToken()

    @task(config=MINIMAL, name="park")
    async def park(res: Resources) -> Step:
        token.cancel()
        await anyio.sleep(10)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.START, park)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("cancel")
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.START, cancel=token)
    assert info.value.category == "cancelled"
    assert len(await store.load_run("cancel")) == 1


async def test_cancel_with_clean_rollback_clears_the_log(store: Any) -> None:
    token = CancellationToken()

    @task(config=MINIMAL, name="park")
    async def park(res: Resources) -> Step:
        token.cancel()
        await anyio.sleep(10)
        return Step.DONE

    wf = pipeline(store, "cancel-clean", then=Step.FAIL).register(Step.FAIL, park)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.START, cancel=token)
    assert info.value.category == "cancelled"
    assert await store.load_run("cancel-clean") == []


async def test_fresh_orchestrate_over_an_uncleared_log_conflicts_at_sequence_zero(
    store: Any,
) -> None:
    failing = pipeline(store, "busy").register(Step.JOIN, Boom())
    with pytest.raises(StateFailure):
        await failing.orchestrate(Step.START)
    before = await store.load_run("busy")
    with pytest.raises(StateFailure) as info:
        await pipeline(store, "busy").orchestrate(Step.START)
    err = info.value
    assert err.category == "checkpoint_store"
    assert err.outer_category == "with_state_context"
    assert "conflict" in err.message
    assert err.state is Step.START and err.path == [Step.START]
    assert await store.load_run("busy") == before


async def test_two_concurrent_runs_with_one_id_have_one_winner(store: Any) -> None:
    @task(config=MINIMAL, name="slow")
    async def slow(res: Resources) -> Step:
        await anyio.sleep(0.1)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register(Step.START, slow)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("race")
    )
    results: list[Any] = []

    async def one() -> None:
        try:
            results.append(await wf.orchestrate(Step.START))
        except RunClaimedError as exc:  # the run is claimed: refused before any state
            results.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one)
        tg.start_soon(one)
    winners = [r for r in results if r is Step.DONE]
    losers = [r for r in results if isinstance(r, RunClaimedError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].category == "checkpoint_store"
    assert "'race' is being run elsewhere" in losers[0].message


async def test_store_without_workflow_id_is_a_raw_error_before_setup(store: Any) -> None:
    setups: list[str] = []

    class Db:
        async def setup(self) -> None:
            setups.append("db")

    wf = (
        Workflow(Resources().insert("db", Db()))
        .register(Step.START, step_task(Step.DONE, "start"))
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
    )
    with pytest.raises(ConfigurationError, match="with_workflow_id"):
        await wf.orchestrate(Step.START)
    assert setups == []


async def test_initial_exit_state_writes_its_row_and_clears(store: Any) -> None:
    tap = Tap(store)
    assert await pipeline(tap, "exit").orchestrate(Step.DONE) is Step.DONE
    assert [(r.sequence, r.state) for r in tap.appended] == [(0, "DONE")]
    assert await store.load_run("exit") == []


async def test_clear_failure_is_reported_and_the_run_still_succeeds(store: Any) -> None:
    errors: list[BaseException] = []

    class NoClear(Tap):
        async def clear(self, workflow_id: str) -> None:
            raise OSError("read-only")

    class Spy:
        def on_checkpoint_clear_failed(self, wid: str, err: BaseException) -> None:
            errors.append(err)

    wf = pipeline(NoClear(store), "noclear").with_observer(Spy())
    assert await wf.orchestrate(Step.START) is Step.DONE
    assert [str(e) for e in errors] == ["read-only"]
