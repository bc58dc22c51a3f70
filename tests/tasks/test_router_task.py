"""`@router` / `RouterTask` (REFERENCE §3.1): branching without a checkpoint row."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from cano_dsl import (
    ConfigurationError,
    MemoryStore,
    Resources,
    RetryExhausted,
    RouterTask,
    StateFailure,
    Task,
    TaskConfig,
    TaskDefinitionError,
    TaskResult,
    Workflow,
    WorkflowError,
    WorkflowObserver,
    router,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, MockClock

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    START = enum.auto()
    ROUTE = enum.auto()
    FAST = enum.auto()
    SLOW = enum.auto()
    DONE = enum.auto()


class Rec(WorkflowObserver):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_state_enter(self, state: str) -> None:
        self.events.append(("enter", state))

    def on_task_start(self, task_id: str) -> None:
        self.events.append(("start", task_id))

    def on_task_success(self, task_id: str) -> None:
        self.events.append(("success", task_id))

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self.events.append(("failure", task_id))

    def on_retry(self, task_id: str, attempt: int) -> None:
        self.events.append(("retry", task_id, attempt))

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self.events.append(("checkpoint", workflow_id, sequence))


@router(state=Step)
class BySize:
    """Read-only: pick the fast path for small inputs."""

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    def name(self) -> str:
        return "by-size"

    async def route(self, res: Resources) -> Step:
        return Step.FAST if res.get("store", MemoryStore).get("size") < 10 else Step.SLOW


@task(config=TaskConfig.minimal(), name="start")
async def start() -> Step:
    return Step.ROUTE


@task(config=TaskConfig.minimal(), name="fast")
async def fast() -> Step:
    return Step.DONE


@task(config=TaskConfig.minimal(), name="slow")
async def slow() -> Step:
    raise RuntimeError("slow path broke")  # fails so the checkpoint log is kept


def build(size: int, *, via_register: bool = False) -> tuple[Workflow[Step], MemoryStore]:
    store = MemoryStore()
    store.put("size", size)
    wf = Workflow(Resources().insert("store", store)).register(Step.START, start)
    if via_register:
        wf = wf.register(Step.ROUTE, BySize())
    else:
        wf = wf.register_router(Step.ROUTE, BySize())
    wf = wf.register(Step.FAST, fast).register(Step.SLOW, slow).add_exit_state(Step.DONE)
    return wf, store


async def test_router_picks_the_branch_from_resources() -> None:
    small, _ = build(3)
    assert await small.orchestrate(Step.START) == Step.DONE
    big, _ = build(30)
    with pytest.raises(StateFailure) as info:
        await big.orchestrate(Step.START)
    assert info.value.path == [Step.START, Step.ROUTE, Step.SLOW]


async def test_register_router_writes_no_row_and_consumes_no_sequence() -> None:
    cp = InMemoryCheckpointStore()
    rec = Rec()
    wf, _ = build(30)
    wf = wf.with_checkpoint_store(cp).with_workflow_id("route-1").with_observer(rec)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.START)
    rows = cp.rows("route-1")
    assert [(r.sequence, r.state, r.task_id) for r in rows] == [
        (0, "START", "start"),
        (1, "SLOW", "slow"),
    ]
    assert [e for e in rec.events if e[0] == "checkpoint"] == [
        ("checkpoint", "route-1", 0),
        ("checkpoint", "route-1", 1),
    ]
    # still entered, dispatched and on the path
    assert [e[1] for e in rec.events if e[0] == "enter"] == ["START", "ROUTE", "SLOW"]
    assert ("start", "by-size") in rec.events and ("success", "by-size") in rec.events
    assert info.value.path == [Step.START, Step.ROUTE, Step.SLOW]


async def test_router_rows_on_a_successful_run_are_cleared_like_any_other() -> None:
    cp = InMemoryCheckpointStore()
    rec = Rec()
    wf, _ = build(3)
    wf = wf.with_checkpoint_store(cp).with_workflow_id("route-2").with_observer(rec)
    assert await wf.orchestrate(Step.START) == Step.DONE
    assert [e[2] for e in rec.events if e[0] == "checkpoint"] == [0, 1, 2]  # START, FAST, DONE
    assert cp.rows("route-2") == []


async def test_a_router_registered_with_register_gets_a_row() -> None:
    cp = InMemoryCheckpointStore()
    wf, _ = build(30, via_register=True)
    wf = wf.with_checkpoint_store(cp).with_workflow_id("route-3")
    assert wf.entry_kind(Step.ROUTE) == "single"
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.START)
    assert [(r.sequence, r.state, r.task_id) for r in cp.rows("route-3")] == [
        (0, "START", "start"),
        (1, "ROUTE", "by-size"),
        (2, "SLOW", "slow"),
    ]


async def test_a_router_as_the_initial_state_enters_and_writes_nothing() -> None:
    cp = InMemoryCheckpointStore()
    rec = Rec()
    store = MemoryStore()
    store.put("size", 100)
    wf = (
        Workflow(Resources().insert("store", store))
        .register_router(Step.ROUTE, BySize())
        .register(Step.SLOW, slow)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(cp)
        .with_workflow_id("route-4")
        .with_observer(rec)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.ROUTE)
    assert [r.state for r in cp.rows("route-4")] == ["SLOW"]
    assert rec.events[0] == ("enter", "ROUTE")


async def test_a_router_returning_a_split_result_is_a_workflow_error() -> None:
    @router
    class Fanout:
        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def route(self, res: Resources) -> TaskResult[Step]:
            return TaskResult.split([Step.FAST, Step.SLOW])

    wf = Workflow.bare().register_router(Step.ROUTE, Fanout()).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.ROUTE)
    assert isinstance(info.value.error, WorkflowError)
    assert "register_split" in str(info.value)
    assert info.value.path == [Step.ROUTE]


async def test_a_router_may_return_a_single_task_result() -> None:
    @router
    class Single:
        async def route(self, res: Resources) -> TaskResult[Step]:
            return TaskResult.single(Step.DONE)

    wf = Workflow.bare().register_router(Step.ROUTE, Single()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.ROUTE) == Step.DONE


async def test_routers_retry_by_default() -> None:
    @router
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        async def route(self, res: Resources) -> Step:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError("config service blip")
            return Step.DONE

    r = Flaky()
    assert r.config() == TaskConfig.default()
    rec = Rec()
    wf = Workflow.bare().register_router(Step.ROUTE, r).add_exit_state(Step.DONE).with_observer(rec)
    with MockClock():
        assert await wf.orchestrate(Step.ROUTE) == Step.DONE
    assert r.calls == 3
    name = r.name()
    assert [e for e in rec.events if e[0] == "retry"] == [("retry", name, 1), ("retry", name, 2)]


async def test_a_failing_router_reports_retry_exhausted() -> None:
    @router
    class Broken:
        async def route(self, res: Resources) -> Step:
            raise LookupError("no route")

    wf = Workflow.bare().register_router(Step.ROUTE, Broken()).add_exit_state(Step.DONE)
    with MockClock(), pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.ROUTE)
    assert isinstance(info.value.error, RetryExhausted)
    assert info.value.error.attempts == 4 and info.value.attempt == 4


async def test_a_decorated_router_is_a_task_with_run() -> None:
    store = MemoryStore()
    store.put("size", 1)
    r = BySize()
    assert isinstance(r, Task) and isinstance(r, RouterTask)
    assert await r.run(Resources().insert("store", store)) == Step.FAST
    assert await r.route(Resources().insert("store", store)) == Step.FAST


class Toggle(RouterTask[Step]):
    def __init__(self) -> None:
        self.flag = False

    async def route(self, res: Resources) -> Step:
        self.flag = not self.flag
        return Step.FAST if self.flag else Step.DONE


async def test_the_base_class_form_is_equivalent() -> None:
    rec = Rec()
    wf = (
        Workflow.bare()
        .register_router(Step.ROUTE, Toggle())
        .register(Step.FAST, task(config=TaskConfig.minimal())(_back_to_route))
        .add_exit_state(Step.DONE)
        .with_observer(rec)
    )
    assert await wf.orchestrate(Step.ROUTE) == Step.DONE
    assert [e[1] for e in rec.events if e[0] == "enter"] == ["ROUTE", "FAST", "ROUTE", "DONE"]


async def _back_to_route() -> Step:
    return Step.ROUTE


# -- definition and registration errors --------------------------------------------------


def test_a_router_needs_route() -> None:
    with pytest.raises(TaskDefinitionError, match="missing required async method"):

        @router
        class NoRoute:
            async def run(self, res: Resources) -> Step:
                return Step.DONE


def test_route_must_be_async() -> None:
    with pytest.raises(TaskDefinitionError, match="`route` must be `async def`"):

        @router
        class SyncRoute:
            def route(self, res: Resources) -> Step:
                return Step.DONE


def test_a_near_miss_of_route_gets_a_suggestion() -> None:
    with pytest.raises(TaskDefinitionError, match=r"did you mean `route`\?"):

        @router
        class Typo:
            async def route(self, res: Resources) -> Step:
                return Step.DONE

            async def routes(self, res: Resources) -> Step:
                return Step.DONE


def test_register_router_takes_only_routers() -> None:
    with pytest.raises(ConfigurationError, match="expected a @router task"):
        Workflow.bare().register_router(Step.ROUTE, fast)
    with pytest.raises(ConfigurationError, match=r"did you mean `BySize\(\)`\?"):
        Workflow.bare().register_router(Step.ROUTE, BySize)
