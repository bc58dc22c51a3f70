"""A saga step whose output cannot be encoded fails at once and is undone inline
(issue 8, item 5).

Any exception from encoding the output (``RecursionError`` for a value nested past the
recursion limit, ``OverflowError``, a container's own error) fails the step without
retry, whatever its retry policy: the forward run committed a side effect (the card was
charged), so running it again would charge the card again.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest

from cano_dsl import (
    CompensationFailed,
    Resources,
    RowKind,
    StateFailure,
    TaskConfig,
    TaskResult,
    Workflow,
    WorkflowError,
    WorkflowObserver,
    compensatable,
)
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio

RETRYING = TaskConfig().with_fixed_retry(3, 0)


class Step(enum.Enum):
    CHARGE = enum.auto()
    SPLIT_A = enum.auto()
    SPLIT_B = enum.auto()
    DONE = enum.auto()


class EncoderBug(Exception):
    pass


class Exploding(dict[str, Any]):
    """A mapping whose encoding raises ``error`` (json asks a dict subclass for items)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(amount=42)
        self.error = error

    def items(self) -> Any:
        raise self.error


def too_deep() -> Any:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    return value


@compensatable(state=Step)
class Charge:
    def __init__(
        self, output: Any, nxt: Any = Step.DONE, *, undo_error: Exception | None = None
    ) -> None:
        self.output = output
        self.nxt = nxt
        self.undo_error = undo_error
        self.charges = 0
        self.refunds = 0

    def name(self) -> str:
        return "charge"

    def config(self) -> TaskConfig:
        return RETRYING

    async def run(self, res: Resources) -> tuple[Any, Any]:
        self.charges += 1
        return self.nxt, self.output

    async def compensate(self, res: Resources, output: Any) -> None:
        self.refunds += 1
        if self.undo_error is not None:
            raise self.undo_error


class Retries(WorkflowObserver):
    def __init__(self) -> None:
        self.retries: list[tuple[str, int]] = []

    def on_retry(self, task_id: str, attempt: int) -> None:
        self.retries.append((task_id, attempt))


BAD_OUTPUTS = [
    pytest.param(too_deep, "RecursionError", id="recursion"),
    pytest.param(
        lambda: Exploding(OverflowError("amount too big")), "OverflowError", id="overflow"
    ),
    pytest.param(lambda: Exploding(EncoderBug("no codec")), "EncoderBug", id="custom"),
    pytest.param(lambda: {1, 2}, "TypeError", id="set"),
    pytest.param(lambda: float("nan"), "ValueError", id="nan"),
]


@pytest.mark.parametrize(("make", "kind"), BAD_OUTPUTS)
async def test_unencodable_output_fails_at_once_and_is_compensated_inline(
    make: Any, kind: str
) -> None:
    step = Charge(make())
    watch = Retries()
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.CHARGE, step)
        .add_exit_state(Step.DONE)
        .with_observer(watch)
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.CHARGE)
    assert (step.charges, step.refunds) == (1, 1)
    assert watch.retries == []
    assert info.value.category == "task_execution"
    assert info.value.attempt == 1
    assert info.value.message.startswith("serialize compensation output for `charge`: ")
    assert kind in info.value.message


async def test_unencodable_output_writes_no_completion_row() -> None:
    store = InMemoryCheckpointStore()
    step = Charge(too_deep())
    wf = (
        Workflow.bare()
        .register_with_compensation(Step.CHARGE, step)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("order-1")
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.CHARGE)
    assert (step.charges, step.refunds) == (1, 1)
    rows = await store.load_run("order-1")
    assert [r.kind for r in rows] == [RowKind.STATE_ENTRY]


async def test_failing_inline_compensation_is_not_retried_either() -> None:
    step = Charge(too_deep(), undo_error=RuntimeError("refund refused"))
    wf = Workflow.bare().register_with_compensation(Step.CHARGE, step).add_exit_state(Step.DONE)
    with pytest.raises(CompensationFailed) as info:
        await wf.orchestrate(Step.CHARGE)
    assert (step.charges, step.refunds) == (1, 1)
    first, second = info.value.errors
    assert isinstance(first, StateFailure) and "RecursionError" in first.message
    assert str(second) == "refund refused"


async def test_split_result_is_undone_inline_once_despite_retries() -> None:
    step = Charge({"amount": 42}, TaskResult.split([Step.SPLIT_A, Step.SPLIT_B]))
    wf = Workflow.bare().register_with_compensation(Step.CHARGE, step).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.CHARGE)
    assert isinstance(info.value.error, WorkflowError)
    assert (step.charges, step.refunds) == (1, 1)


async def test_an_ordinary_forward_failure_is_still_retried() -> None:
    @compensatable(state=Step)
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def config(self) -> TaskConfig:
            return RETRYING

        async def run(self, res: Resources) -> tuple[Any, Any]:
            self.calls += 1
            if self.calls < 3:
                raise ConnectionError("gateway busy")
            return Step.DONE, {"amount": 42}

        async def compensate(self, res: Resources, output: Any) -> None:
            raise AssertionError("not expected")

    flaky = Flaky()
    wf = Workflow.bare().register_with_compensation(Step.CHARGE, flaky).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.CHARGE) is Step.DONE
    assert flaky.calls == 3
