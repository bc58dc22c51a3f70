"""Hypothesis properties of the poll loop's error policy and of stream cursor commits."""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    CloseReason,
    PollErrorPolicy,
    PollOutcome,
    PollTask,
    Resources,
    RowKind,
    StateFailure,
    StreamErrorPolicy,
    StreamTask,
    StreamWindow,
    WindowSignal,
    Workflow,
)
from cano_dsl.testing import InMemoryCheckpointStore

BACKENDS = ["asyncio", "trio"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Step(enum.Enum):
    RUN = enum.auto()
    DONE = enum.auto()


# -- poll: the error counter follows the policy -------------------------------------------


class Script(PollTask[Step]):
    def __init__(self, moves: list[str], policy: PollErrorPolicy) -> None:
        self.moves = moves
        self.policy = policy
        self.calls = 0

    def on_poll_error(self) -> PollErrorPolicy:
        return self.policy

    async def poll(self, res: Resources) -> PollOutcome[Step]:
        move = self.moves[self.calls]
        self.calls += 1
        if move == "E":
            raise ValueError(f"error at poll {self.calls}")
        return PollOutcome.ready(Step.DONE) if move == "R" else PollOutcome.pending(0)


def expected_poll(moves: list[str], max_errors: int | None) -> tuple[str, int]:
    """The reference model: (outcome, polls made)."""
    errors = 0
    for i, move in enumerate(moves, start=1):
        if move == "R":
            return "ready", i
        if move == "P":
            errors = 0
            continue
        errors += 1
        if max_errors is None or errors > max_errors:
            return "error", i
    raise AssertionError("scripts end with R")


policies = st.one_of(st.none(), st.integers(min_value=0, max_value=5))


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(
    moves=st.lists(st.sampled_from("EP"), max_size=30).map(lambda m: [*m, "R"]),
    max_errors=policies,
)
def test_poll_error_counter_follows_its_policy(
    backend: str, moves: list[str], max_errors: int | None
) -> None:
    policy = (
        PollErrorPolicy.fail_fast()
        if max_errors is None
        else PollErrorPolicy.retry_on_error(max_errors)
    )
    p = Script(moves, policy)

    async def run() -> str:
        try:
            await p.run(Resources())
        except ValueError:
            return "error"
        return "ready"

    outcome = anyio.run(run, backend=backend)
    assert (outcome, p.calls) == expected_poll(moves, max_errors)


# -- stream: a committed cursor never passes an unprocessed item --------------------------


class Items(StreamTask[Step, int, int, int]):
    def __init__(
        self,
        n: int,
        fail: set[int],
        size: int,
        policy: StreamErrorPolicy,
        token: CancellationToken,
        cancel_at: int | None,
    ) -> None:
        self.n = n
        self.fail = fail
        self.size = size
        self.policy = policy
        self.token = token
        self.cancel_at = cancel_at
        self.processed: list[int] = []
        self.flushed: list[int] = []

    def window(self) -> StreamWindow:
        return StreamWindow.count(self.size)

    def on_item_error(self) -> StreamErrorPolicy:
        return self.policy

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
        for i in range(1, self.n + 1):
            yield i

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        self.processed.append(item)
        if item == self.cancel_at:
            self.token.cancel()
        if item in self.fail:
            raise ValueError(f"item {item}")
        return item, item

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Step]:
        self.flushed.extend(outputs)
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        return Step.DONE


class Snapshots(InMemoryCheckpointStore):
    """At each cursor commit: (cursor, items processed so far, outputs flushed so far)."""

    def __init__(self, task: Items) -> None:
        super().__init__()
        self.task = task
        self.commits: list[tuple[int, set[int], set[int]]] = []

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        await super().append(workflow_id, row)
        if row.kind == RowKind.STEP_CURSOR:
            assert row.output_blob is not None
            cursor = json.loads(row.output_blob)
            self.commits.append((cursor, set(self.task.processed), set(self.task.flushed)))


stream_policies = st.one_of(
    st.just(StreamErrorPolicy.fail_fast()),
    st.just(StreamErrorPolicy.skip_and_continue()),
    st.integers(min_value=0, max_value=3).map(StreamErrorPolicy.retry_on_error),
)


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(data=st.data())
def test_committed_stream_cursor_never_passes_an_unprocessed_item(
    backend: str, data: st.DataObject
) -> None:
    n = data.draw(st.integers(min_value=0, max_value=25), label="items")
    fail = data.draw(st.sets(st.integers(min_value=1, max_value=max(n, 1))), label="fail")
    size = data.draw(st.integers(min_value=0, max_value=6), label="window")
    policy = data.draw(stream_policies, label="policy")
    cancel_at = data.draw(st.one_of(st.none(), st.integers(1, max(n, 1))), label="cancel_at")
    token = CancellationToken()
    task = Items(n, fail, size, policy, token, cancel_at)
    store = Snapshots(task)
    wf = (
        Workflow()
        .register_stream(Step.RUN, task)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("prop")
    )

    async def run() -> bool:
        try:
            await wf.orchestrate(Step.RUN, cancel=token)
        except StateFailure:
            return False
        return True

    completed = anyio.run(run, backend=backend)

    previous = 0
    for cursor, processed, flushed in store.commits:
        assert cursor > previous, "cursors only move forward"
        previous = cursor
        assert cursor not in fail, "a failed item's cursor is never committed"
        for item in range(1, cursor + 1):
            assert item in processed, f"cursor {cursor} passed unprocessed item {item}"
            if item not in fail:
                assert item in flushed, f"cursor {cursor} passed unflushed item {item}"
    if completed and cancel_at is None:
        good = [i for i in range(1, n + 1) if i not in fail]
        assert (store.commits[-1][0] if store.commits else None) == (good[-1] if good else None)
        assert task.flushed == good
