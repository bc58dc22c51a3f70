"""Sagas (REFERENCE §3.7, §10): compensatable steps and the LIFO rollback."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointStoreError,
    CompensatableTask,
    CompensationFailed,
    OrphanedCompensation,
    Resources,
    RetryExhausted,
    RowKind,
    StateFailure,
    Task,
    TaskConfig,
    TaskDefinitionError,
    TaskResult,
    TaskTimeout,
    Workflow,
    WorkflowCancelled,
    WorkflowError,
    compensatable,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, RecordingObserver, assert_compensation_ran

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    D = enum.auto()
    E = enum.auto()
    NEXT = enum.auto()
    DONE = enum.auto()


_DEFAULT: Any = object()
MINIMAL = TaskConfig.minimal()


@compensatable(state=Step)
class Booking:
    """A saga step that records what it did and what it undid in a shared ledger."""

    def __init__(
        self,
        label: str,
        nxt: Any,
        ledger: list[tuple[str, str]],
        *,
        fail: bool = False,
        undo_error: Exception | None = None,
        undo_sleep: float = 0.0,
        forward_sleep: float = 0.0,
        output: Any = _DEFAULT,
        config: TaskConfig = MINIMAL,
    ) -> None:
        self.label = label
        self.nxt = nxt
        self.ledger = ledger
        self.fail = fail
        self.undo_error = undo_error
        self.undo_sleep = undo_sleep
        self.forward_sleep = forward_sleep
        self.output = output
        self._config = config
        self.runs = 0
        self.received: list[Any] = []

    def name(self) -> str:
        return self.label

    def config(self) -> TaskConfig:
        return self._config

    async def run(self, res: Resources) -> tuple[Any, Any]:
        self.runs += 1
        if self.forward_sleep:
            await anyio.sleep(self.forward_sleep)
        if self.fail:
            raise RuntimeError(f"{self.label} failed")
        self.ledger.append(("do", self.label))
        out = {"booking": self.label} if self.output is _DEFAULT else self.output
        return self.nxt, out

    async def compensate(self, res: Resources, output: Any) -> None:
        self.received.append(output)
        if self.undo_sleep:
            await anyio.sleep(self.undo_sleep)
        if self.undo_error is not None:
            raise self.undo_error
        self.ledger.append(("undo", self.label))


@task(state=Step, config=TaskConfig.minimal())
class Boom:
    async def run(self, res: Resources) -> Step:
        raise RuntimeError("boom")


@task(state=Step, config=TaskConfig.minimal())
class Sleepy:
    def __init__(self, seconds: float, nxt: Step = Step.DONE) -> None:
        self.seconds = seconds
        self.nxt = nxt

    async def run(self, res: Resources) -> Step:
        await anyio.sleep(self.seconds)
        return self.nxt


def undone(ledger: list[tuple[str, str]]) -> list[str]:
    return [label for kind, label in ledger if kind == "undo"]


def chain(
    ledger: list[tuple[str, str]], labels: list[str], then: Step, **kw: Any
) -> Workflow[Step]:
    """Compensatable steps through ``labels`` in order, the last moving to ``then``."""
    wf: Workflow[Step] = Workflow.bare()
    for i, label in enumerate(labels):
        nxt = Step[labels[i + 1]] if i + 1 < len(labels) else then
        wf = wf.register_with_compensation(Step[label], Booking(label, nxt, ledger, **kw))
    return wf.add_exit_state(Step.DONE)


# -- the decorator -------------------------------------------------------------------


def test_decorated_class_is_a_compensatable_task() -> None:
    b = Booking("A", Step.DONE, [])
    assert isinstance(b, CompensatableTask)
    assert isinstance(b, Task)
    assert Booking.__name__ == "Booking"


def test_default_config_and_name_are_injected() -> None:
    @compensatable
    class Plain:
        async def run(self, res: Resources) -> tuple[Step, int]:
            return Step.DONE, 1

        async def compensate(self, res: Resources, output: int) -> None:
            pass

    p = Plain()
    assert p.config() == TaskConfig.default()
    assert p.name().endswith("Plain")


def test_missing_compensate_is_rejected_at_decoration() -> None:
    with pytest.raises(TaskDefinitionError, match="compensate"):

        @compensatable
        class NoUndo:
            async def run(self, res: Resources) -> tuple[Step, int]:
                return Step.DONE, 1


def test_sync_compensate_is_rejected_at_decoration() -> None:
    with pytest.raises(TaskDefinitionError, match="`compensate` must be `async def`"):

        @compensatable
        class SyncUndo:
            async def run(self, res: Resources) -> tuple[Step, int]:
                return Step.DONE, 1

            def compensate(self, res: Resources, output: int) -> None:
                pass


def test_reachable_as_task_compensatable() -> None:
    assert task.compensatable is compensatable


def test_explicit_base_class_form() -> None:
    class Charge(CompensatableTask[Step, int]):
        async def run(self, res: Resources) -> tuple[Step, int]:
            return Step.DONE, 5

        async def compensate(self, res: Resources, output: int) -> None:
            pass

    Workflow.bare().register_with_compensation(Step.A, Charge()).add_exit_state(Step.DONE)


def test_plain_register_refuses_a_compensatable_task() -> None:
    with pytest.raises(ValueError, match="register_with_compensation"):
        Workflow.bare().register(Step.A, Booking("A", Step.DONE, []))


# -- LIFO drain ------------------------------------------------------------------------


async def test_success_compensates_nothing() -> None:
    ledger: list[tuple[str, str]] = []
    wf = chain(ledger, ["A", "B", "C"], Step.DONE)
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert undone(ledger) == []


async def test_failure_compensates_in_reverse_order() -> None:
    ledger: list[tuple[str, str]] = []
    wf = chain(ledger, ["A", "B", "C"], Step.NEXT).register(Step.NEXT, Boom())
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.state is Step.NEXT
    assert info.value.category == "task_execution"
    assert_compensation_ran(undone(ledger), ["C", "B", "A"])


@pytest.mark.parametrize("position", range(5))
async def test_failure_at_every_position_compensates_exactly_the_prefix(position: int) -> None:
    labels = ["A", "B", "C", "D", "E"]
    ledger: list[tuple[str, str]] = []
    wf: Workflow[Step] = Workflow.bare().add_exit_state(Step.DONE)
    for i, label in enumerate(labels):
        nxt = Step[labels[i + 1]] if i + 1 < len(labels) else Step.DONE
        wf = wf.register_with_compensation(
            Step[label], Booking(label, nxt, ledger, fail=(i == position))
        )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.state is Step[labels[position]]
    assert_compensation_ran(undone(ledger), list(reversed(labels[:position])))


async def test_deep_stack_drains_fully() -> None:
    class Deep(enum.Enum):
        LOOP = 1
        FAIL = 2
        DONE = 3

    undo: list[int] = []

    @compensatable(state=Deep)
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run(self, res: Resources) -> tuple[Deep, int]:
            self.n += 1
            return (Deep.LOOP if self.n < 200 else Deep.FAIL), self.n

        async def compensate(self, res: Resources, output: int) -> None:
            undo.append(output)

    @task(config=TaskConfig.minimal())
    async def deep_boom(res: Resources) -> Deep:
        raise RuntimeError("boom")

    wf = (
        Workflow.bare()
        .register_with_compensation(Deep.LOOP, Counter())
        .register(Deep.FAIL, deep_boom)
        .add_exit_state(Deep.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Deep.LOOP)
    assert undo == list(range(200, 0, -1))


async def test_plain_tasks_never_enter_the_stack() -> None:
    ledger: list[tuple[str, str]] = []

    @task(state=Step, config=TaskConfig.minimal())
    async def plain(res: Resources) -> Step:
        ledger.append(("do", "plain"))
        return Step.C

    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger))
        .register(Step.B, plain)
        .register_with_compensation(Step.C, Booking("C", Step.NEXT, ledger))
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert undone(ledger) == ["C", "A"]


# -- compensator failures ----------------------------------------------------------------


async def test_compensators_are_never_retried_and_a_raising_one_does_not_stop_the_drain() -> None:
    ledger: list[tuple[str, str]] = []
    flaky = Booking(
        "B",
        Step.C,
        ledger,
        undo_error=RuntimeError("undo B failed"),
        config=TaskConfig().with_fixed_retry(5, 0),
    )
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger))
        .register_with_compensation(Step.B, flaky)
        .register_with_compensation(Step.C, Booking("C", Step.NEXT, ledger))
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A)
    assert len(flaky.received) == 1
    assert undone(ledger) == ["C", "A"]
    errors = info.value.errors
    assert len(errors) == 2
    assert isinstance(errors[0], StateFailure) and errors[0].state is Step.NEXT
    assert isinstance(errors[1], RuntimeError) and str(errors[1]) == "undo B failed"


async def test_compensation_failed_first_error_is_the_wrapped_original() -> None:
    ledger: list[tuple[str, str]] = []
    wf = (
        Workflow.bare()
        .register_with_compensation(
            Step.A, Booking("A", Step.NEXT, ledger, undo_error=ValueError("nope"))
        )
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A)
    first = info.value.errors[0]
    assert isinstance(first, StateFailure)
    assert first.state is Step.NEXT
    assert first.path == [Step.A, Step.NEXT]
    assert first.attempt == 1
    assert isinstance(first.error, RuntimeError)
    assert info.value.category == "compensation_failed"
    assert "original: state=NEXT" in str(info.value)


async def test_hanging_compensator_is_bounded_by_its_attempt_timeout() -> None:
    ledger: list[tuple[str, str]] = []
    hanging = Booking(
        "B",
        Step.NEXT,
        ledger,
        undo_sleep=math.inf,
        config=TaskConfig.minimal().with_attempt_timeout(0.05),
    )
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger))
        .register_with_compensation(Step.B, hanging)
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A)
    timeout = info.value.errors[1]
    assert isinstance(timeout, TaskTimeout)
    assert timeout.message == "compensate for B exceeded attempt_timeout 0.05"
    assert undone(ledger) == ["A"]


async def test_bounded_drain_orphans_the_rest_after_the_deadline() -> None:
    ledger: list[tuple[str, str]] = []
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger, output=[1]))
        .register_with_compensation(Step.B, Booking("B", Step.C, ledger, output={"b": 2}))
        .register_with_compensation(Step.C, Booking("C", Step.NEXT, ledger, undo_sleep=math.inf))
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
        .with_total_timeout(30)
        .with_compensation_timeout(0.1)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A)
    errors = info.value.errors
    assert isinstance(errors[0], StateFailure)
    assert isinstance(errors[1], TaskTimeout)
    assert errors[1].message == "compensate for C exceeded compensation deadline"
    orphans = errors[2:4]
    assert all(isinstance(o, OrphanedCompensation) for o in orphans)
    assert [(o.task_id, json.loads(o.blob)) for o in orphans] == [("B", {"b": 2}), ("A", [1])]
    assert isinstance(errors[4], TaskTimeout)
    assert errors[4].message == "compensation deadline elapsed; 2 entries left unprocessed"
    assert len(errors) == 5
    assert undone(ledger) == []


async def test_total_timeout_default_compensation_budget_applies_to_any_failure() -> None:
    # total 0.2 s -> budget min(0.1, 30) = 0.1 s, also after a plain task error
    ledger: list[tuple[str, str]] = []
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger))
        .register_with_compensation(Step.B, Booking("B", Step.NEXT, ledger, undo_sleep=math.inf))
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
        .with_total_timeout(0.2)
    )
    with anyio.fail_after(5):
        with pytest.raises(CompensationFailed) as info:
            await wf.orchestrate(Step.A)
    kinds = [type(e).__name__ for e in info.value.errors]
    assert kinds == ["StateFailure", "TaskTimeout", "OrphanedCompensation", "TaskTimeout"]


async def test_unknown_task_in_the_stack_is_orphaned_with_its_blob(store: Any) -> None:
    # a resumed log naming a compensator this build no longer has
    from cano_dsl import CheckpointRow

    await store.append("orph", CheckpointRow(0, "A", "gone"))
    await store.append("orph", CheckpointRow(1, "A", "gone").with_output(b'{"x":1}'))
    await store.append("orph", CheckpointRow(2, "NEXT", "boom"))
    wf = (
        Workflow.bare()
        .register(Step.NEXT, Boom())
        .register(Step.A, Sleepy(0))
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.resume_from("orph")
    orphan = info.value.errors[1]
    assert isinstance(orphan, OrphanedCompensation)
    assert (orphan.task_id, orphan.blob) == ("gone", b'{"x":1}')
    assert len(await store.load_run("orph")) > 0  # dirty rollback keeps the log


# -- cancel and total timeout -----------------------------------------------------------


async def test_dirty_drain_after_cancel_reports_cancelled_first() -> None:
    ledger: list[tuple[str, str]] = []
    token = CancellationToken()

    @task(state=Step, config=TaskConfig.minimal())
    async def cancel_then_wait(res: Resources) -> Step:
        token.cancel()
        await anyio.sleep(10)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register_with_compensation(
            Step.A, Booking("A", Step.NEXT, ledger, undo_error=RuntimeError("x"))
        )
        .register(Step.NEXT, cancel_then_wait)
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A, cancel=token)
    assert info.value.errors[0].category == "cancelled"  # type: ignore[attr-defined]
    assert isinstance(info.value.errors[0].error, WorkflowCancelled)  # type: ignore[attr-defined]


async def test_clean_drain_after_cancel_is_a_wrapped_cancel() -> None:
    ledger: list[tuple[str, str]] = []
    token = CancellationToken()

    @task(state=Step, config=TaskConfig.minimal())
    async def cancel_then_wait(res: Resources) -> Step:
        token.cancel()
        await anyio.sleep(10)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.NEXT, ledger))
        .register(Step.NEXT, cancel_then_wait)
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A, cancel=token)
    assert info.value.category == "cancelled"
    assert info.value.attempt == 0
    assert undone(ledger) == ["A"]


async def test_cancel_never_cuts_a_compensatable_forward_run(store: Any) -> None:
    ledger: list[tuple[str, str]] = []
    token = CancellationToken()
    slow = Booking("A", Step.NEXT, ledger, forward_sleep=0.2)
    obs = RecordingObserver()
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, slow)
        .register(Step.NEXT, Sleepy(0))
        .add_exit_state(Step.DONE)
        .with_observer(obs)
        .with_checkpoint_store(store)
        .with_workflow_id("cancel-comp")
    )

    async def fire() -> None:
        # once the forward run is under way (a token fired earlier would cut the wait
        # for the store's first append, a slow connect, before A ever ran)
        while not any(type(e).__name__ == "TaskStarted" for e in obs.events):
            await anyio.sleep(0.005)
        await anyio.sleep(0.05)
        token.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire)
        with pytest.raises(StateFailure) as info:
            await wf.orchestrate(Step.A, cancel=token)
    err = info.value
    assert err.category == "cancelled"
    # the forward run finished and was compensated
    assert ledger == [("do", "A"), ("undo", "A")]
    # the error names the next state, which was never entered
    assert err.state is Step.NEXT
    assert err.path == [Step.A]
    # the completion row was written before the cancel was seen; clean rollback clears
    checkpoints = [e.sequence for e in obs.events if type(e).__name__ == "Checkpoint"]
    assert checkpoints == [0, 1]
    assert await store.load_run("cancel-comp") == []


async def test_total_timeout_never_cuts_a_compensatable_the_next_state_times_out() -> None:
    ledger: list[tuple[str, str]] = []
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.NEXT, ledger, forward_sleep=0.15))
        .register(Step.NEXT, Sleepy(0))
        .add_exit_state(Step.DONE)
        .with_total_timeout(0.05)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.category == "workflow_timeout"
    assert info.value.state is Step.NEXT
    assert ledger == [("do", "A"), ("undo", "A")]


async def test_total_timeout_overrun_into_an_exit_state_succeeds() -> None:
    ledger: list[tuple[str, str]] = []
    wf = chain(ledger, ["A"], Step.DONE, forward_sleep=0.15).with_total_timeout(0.05)
    assert await wf.orchestrate(Step.A) is Step.DONE
    assert undone(ledger) == []


# -- forward run ----------------------------------------------------------------------


async def test_output_is_json_round_tripped_before_compensate() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking("A", Step.NEXT, ledger, output=(1, {"k": (2, 3)}, {4: "four"}))
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, step)
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert step.received == [[1, {"k": [2, 3]}, {"4": "four"}]]


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan")], ids=["set", "object", "nan"])
async def test_unserialisable_output_compensates_inline_and_fails(bad: Any) -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking("A", Step.DONE, ledger, output=bad)
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert info.value.category == "task_execution"
    assert info.value.message.startswith("serialize compensation output for `A`: ")
    assert step.received == [bad] if bad == bad else len(step.received) == 1
    assert undone(ledger) == ["A"]


async def test_inline_compensate_failure_is_compensation_failed() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking("A", Step.DONE, ledger, output={1, 2}, undo_error=RuntimeError("undo"))
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.A)
    first, second = info.value.errors
    assert isinstance(first, StateFailure) and first.state is Step.A
    assert first.message.startswith("serialize compensation output")
    assert str(second) == "undo"


async def test_split_result_compensates_inline_and_fails() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking("A", TaskResult.split([Step.B, Step.C]), ledger)
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, WorkflowError)
    assert "returned a split result" in info.value.message
    assert undone(ledger) == ["A"]


async def test_task_result_single_is_accepted() -> None:
    ledger: list[tuple[str, str]] = []
    wf = chain(ledger, ["A"], TaskResult.single(Step.DONE))  # type: ignore[arg-type]
    assert await wf.orchestrate(Step.A) is Step.DONE


async def test_forward_attempt_timeout_has_its_own_message() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking(
        "A",
        Step.DONE,
        ledger,
        forward_sleep=5,
        config=TaskConfig.minimal().with_attempt_timeout(0.05),
    )
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, TaskTimeout)
    assert info.value.message == "compensatable task `A` forward run exceeded attempt_timeout 0.05"


async def test_inline_compensate_is_not_cut_by_the_attempt_timeout() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking(
        "A",
        TaskResult.split([Step.B]),
        ledger,
        undo_sleep=0.15,
        config=TaskConfig.minimal().with_attempt_timeout(0.05),
    )
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert undone(ledger) == ["A"]


async def test_forward_run_is_retried_and_pushed_once() -> None:
    ledger: list[tuple[str, str]] = []

    class Flaky(Booking):
        async def run(self, res: Resources) -> tuple[Any, Any]:
            self.tries = getattr(self, "tries", 0) + 1
            if self.tries < 3:
                raise RuntimeError("transient")
            return await super().run(res)

    step = Flaky("A", Step.NEXT, ledger, config=TaskConfig.minimal().with_fixed_retry(3, 0))
    obs = RecordingObserver()
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, step)
        .register(Step.NEXT, Boom())
        .add_exit_state(Step.DONE)
        .with_observer(obs)
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert step.tries == 3
    assert step.runs == 1
    assert undone(ledger) == ["A"]
    names = [type(e).__name__ for e in obs.events if getattr(e, "state", None) != "NEXT"]
    assert names.count("Retry") == 2


async def test_forward_exhaustion_is_retry_exhausted_with_nothing_to_undo() -> None:
    ledger: list[tuple[str, str]] = []
    step = Booking(
        "A", Step.DONE, ledger, fail=True, config=TaskConfig.minimal().with_fixed_retry(2, 0)
    )
    wf = Workflow.bare().register_with_compensation(Step.A, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, RetryExhausted)
    assert info.value.attempt == 3
    assert step.received == []


async def test_observer_sees_start_and_success() -> None:
    obs = RecordingObserver()
    wf = chain([], ["A"], Step.DONE).with_observer(obs)
    await wf.orchestrate(Step.A)
    kinds = [type(e).__name__ for e in obs.events]
    assert kinds == ["StateEntered", "TaskStarted", "TaskSucceeded", "StateEntered"]


# -- checkpoint rows ---------------------------------------------------------------------


class FailingStore:
    """Delegates to an in-memory store; the ``fail_at``-th append raises."""

    def __init__(self, fail_at: int) -> None:
        self.inner = InMemoryCheckpointStore()
        self.calls = 0
        self.fail_at = fail_at

    async def append(self, workflow_id: str, row: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("disk full")
        await self.inner.append(workflow_id, row)

    async def load_run(self, workflow_id: str) -> list[Any]:
        return await self.inner.load_run(workflow_id)

    async def clear(self, workflow_id: str) -> None:
        await self.inner.clear(workflow_id)


async def test_completion_row_failure_still_compensates_the_step() -> None:
    ledger: list[tuple[str, str]] = []
    store = FailingStore(fail_at=2)  # 1: StateEntry A, 2: CompensationCompletion A
    wf = (
        chain(ledger, ["A"], Step.DONE).with_checkpoint_store(store).with_workflow_id("append-fail")
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.A)
    assert isinstance(info.value.error, CheckpointStoreError)
    assert info.value.message == "append compensation checkpoint: disk full"
    assert info.value.state is Step.A
    assert undone(ledger) == ["A"]


async def test_completion_row_carries_the_json_output(store: Any) -> None:
    ledger: list[tuple[str, str]] = []
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger, output={"id": 7}))
        .register(Step.B, Boom())
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("rows")
        .with_workflow_version(3)
    )
    seen: list[Any] = []

    class Spy:
        def on_checkpoint(self, wid: str, seq: int) -> None:
            seen.append((wid, seq))

    with pytest.raises(StateFailure):
        await wf.with_observer(Spy()).orchestrate(Step.A)
    assert seen == [("rows", 0), ("rows", 1), ("rows", 2)]
    # clean rollback clears the log
    assert await store.load_run("rows") == []


async def test_completion_row_layout(store: Any) -> None:
    ledger: list[tuple[str, str]] = []
    gate = anyio.Event()

    @task(state=Step, config=TaskConfig.minimal())
    async def park(res: Resources) -> Step:
        gate.set()
        await anyio.sleep(10)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger, output={"id": 7}))
        .register(Step.B, park)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("layout")
        .with_workflow_version(3)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(wf.orchestrate, Step.A)
        await gate.wait()
        rows = await store.load_run("layout")
        tg.cancel_scope.cancel()
    assert [(r.sequence, r.state, r.task_id, r.kind) for r in rows] == [
        (0, "A", "A", RowKind.STATE_ENTRY),
        (1, "A", "A", RowKind.COMPENSATION_COMPLETION),
        (2, "B", rows[2].task_id, RowKind.STATE_ENTRY),
    ]
    assert json.loads(rows[1].output_blob) == {"id": 7}
    assert {r.workflow_version for r in rows} == {3}


async def test_foreign_cancel_of_the_enclosing_scope_still_drains() -> None:
    ledger: list[tuple[str, str]] = []
    gate = anyio.Event()

    @task(state=Step, config=TaskConfig.minimal())
    async def park(res: Resources) -> Step:
        gate.set()
        await anyio.sleep(10)
        return Step.DONE

    wf = (
        Workflow.bare()
        .register_with_compensation(Step.A, Booking("A", Step.B, ledger))
        .register(Step.B, park)
        .add_exit_state(Step.DONE)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(wf.orchestrate, Step.A)
        await gate.wait()
        tg.cancel_scope.cancel()
    assert undone(ledger) == ["A"]
