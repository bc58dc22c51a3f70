"""The group-commit runner behind the SQLite and PostgreSQL stores."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import pytest

from cano_dsl._errors import CheckpointStoreError
from cano_dsl.stores._batch import BatchRunner, Op, OpKind

pytestmark = pytest.mark.anyio


class _GatedExecutor:
    """Records each batch; the first batch blocks until `release()`."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, batch: Sequence[Op]) -> None:
        self.batches.append([op.args[0] for op in batch])
        if len(self.batches) == 1:
            self.started.set()
            self._gate.wait(10)
        for op in batch:
            op.succeed(op.args[0])


async def _start_blocked_first_batch(
    tg: anyio.abc.TaskGroup, runner: BatchRunner, ex: _GatedExecutor
) -> None:
    tg.start_soon(runner.submit, Op(OpKind.APPEND, "first"))
    await anyio.to_thread.run_sync(ex.started.wait, 10)


async def test_calls_arriving_during_a_batch_share_the_next_one() -> None:
    ex = _GatedExecutor()
    runner = BatchRunner(ex)
    results: list[str] = []

    async def call(name: str) -> None:
        results.append(await runner.submit(Op(OpKind.APPEND, name)))

    async with anyio.create_task_group() as tg:
        await _start_blocked_first_batch(tg, runner, ex)
        for i in range(10):
            tg.start_soon(call, f"op{i}")
        await anyio.wait_all_tasks_blocked()
        ex.release()
    assert ex.batches[0] == ["first"]
    assert sorted(ex.batches[1]) == sorted(f"op{i}" for i in range(10))
    assert len(ex.batches) == 2
    assert sorted(results) == sorted(f"op{i}" for i in range(10))


async def test_a_queued_call_cancelled_never_runs() -> None:
    ex = _GatedExecutor()
    runner = BatchRunner(ex)
    async with anyio.create_task_group() as tg:
        await _start_blocked_first_batch(tg, runner, ex)
        with anyio.move_on_after(0.05) as scope:
            await runner.submit(Op(OpKind.APPEND, "withdrawn"))
        assert scope.cancelled_caught
        ex.release()
    assert await runner.submit(Op(OpKind.APPEND, "later")) == "later"
    assert ex.batches == [["first"], ["later"]]


async def test_a_running_call_cancelled_leaves_at_once_and_its_batch_still_runs() -> None:
    ex = _GatedExecutor()
    runner = BatchRunner(ex)
    with anyio.move_on_after(0.05) as scope:
        await runner.submit(Op(OpKind.APPEND, "first"))
    assert scope.cancelled_caught  # left while its batch was stuck in the thread
    assert ex.started.is_set() and ex.batches == [["first"]]
    results: list[str] = []

    async def call(name: str) -> None:
        results.append(await runner.submit(Op(OpKind.APPEND, name)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "next")
        await anyio.wait_all_tasks_blocked()
        assert ex.batches == [["first"]]  # one batch at a time: "next" waits for it
        ex.release()
    assert results == ["next"]
    assert ex.batches == [["first"], ["next"]]


async def test_leadership_passes_on_when_the_next_leader_is_cancelled() -> None:
    ex = _GatedExecutor()
    runner = BatchRunner(ex)
    async with anyio.create_task_group() as tg:
        await _start_blocked_first_batch(tg, runner, ex)
        cancelled = anyio.CancelScope()

        async def doomed() -> None:
            with cancelled:
                await runner.submit(Op(OpKind.APPEND, "doomed"))

        tg.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(runner.submit, Op(OpKind.APPEND, "survivor"))
        await anyio.wait_all_tasks_blocked()
        cancelled.cancel()
        ex.release()
    assert ex.batches[0] == ["first"]
    assert ["survivor"] in ex.batches[1:]
    assert all("doomed" not in batch for batch in ex.batches)


async def test_an_executor_exception_reaches_every_unresolved_call() -> None:
    gate = threading.Event()
    started = threading.Event()

    def flaky(batch: Sequence[Op]) -> None:
        if batch[0].args[0] == "first":
            started.set()
            gate.wait(10)
            batch[0].succeed("first")
            return
        batch[0].succeed("resolved before the failure")
        raise RuntimeError("connection lost")

    runner = BatchRunner(flaky)
    outcomes: dict[str, object] = {}

    async def call(name: str) -> None:
        try:
            outcomes[name] = await runner.submit(Op(OpKind.APPEND, name))
        except RuntimeError as exc:
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await anyio.to_thread.run_sync(started.wait, 10)
        for name in ("a", "b", "c"):
            tg.start_soon(call, name)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    failed = [name for name, result in outcomes.items() if isinstance(result, RuntimeError)]
    assert outcomes["first"] == "first"
    assert len(failed) == 2
    assert sum(result == "resolved before the failure" for result in outcomes.values()) == 1


class _Interrupt(BaseException):
    """Stands in for KeyboardInterrupt / SystemExit raised inside a batch."""


async def test_a_base_exception_in_a_batch_resolves_every_call_then_propagates() -> None:
    gate = threading.Event()
    started = threading.Event()

    def interrupted(batch: Sequence[Op]) -> None:
        if batch[0].args[0] == "first":
            started.set()
            gate.wait(10)
            batch[0].succeed("first")
            return
        batch[-1].succeed("resolved before the interrupt")
        raise _Interrupt("stop")

    runner = BatchRunner(interrupted)
    outcomes: dict[str, object] = {}

    async def call(name: str) -> None:
        try:
            outcomes[name] = await runner.submit(Op(OpKind.APPEND, name))
        except BaseException as exc:  # the interrupt itself reaches one caller
            outcomes[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first")
        await anyio.to_thread.run_sync(started.wait, 10)
        for name in ("a", "b", "c"):
            tg.start_soon(call, name)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert outcomes["first"] == "first"
    rest = [outcomes[name] for name in ("a", "b", "c")]
    interrupts = [o for o in rest if isinstance(o, _Interrupt)]
    store_errors = [o for o in rest if isinstance(o, CheckpointStoreError)]
    assert len(interrupts) == 1, rest  # the batch's leader: it propagates
    # the op it left unresolved failed with an error naming it; none is left hanging
    assert len(store_errors) == 1 and "_Interrupt" in str(store_errors[0]), rest
    assert isinstance(store_errors[0].__cause__, _Interrupt)
    assert rest.count("resolved before the interrupt") == 1
