"""`RunningScheduler.wait()` (cano's ``wait``: wait for shutdown without stopping) and
the blocking `SchedulerThreadHandle` for other threads, during and after the run."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from cano_dsl import FlowStatus, Resources, Scheduler, TaskConfig, Workflow, WorkflowError, task
from cano_dsl.scheduler import Completed, SchedulerThreadHandle
from cano_dsl.testing import MockClock


class Step(enum.Enum):
    WORK = enum.auto()
    DONE = enum.auto()


@task(state=Step, config=TaskConfig.minimal())
class Job:
    """Records the thread it ran on; waits ``seconds`` on the library clock,
    ignoring cancellation when ``shielded``."""

    def __init__(self, seconds: float = 0, shielded: bool = False) -> None:
        self.seconds = seconds
        self.shielded = shielded
        self.threads: list[int] = []
        self.started = anyio.Event()

    async def run(self, res: Resources) -> Step:
        self.threads.append(threading.get_ident())
        self.started.set()
        if self.seconds:
            from cano_dsl import _clock

            with anyio.CancelScope(shield=self.shielded):
                await _clock.sleep(self.seconds)
        return Step.DONE


class Logged:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def teardown(self) -> None:
        self.log.append("teardown")


def flow(job: Job, log: list[str] | None = None) -> Workflow[Step]:
    res = Resources()
    if log is not None:
        res.insert("logged", Logged(log))
    return Workflow(res).register(Step.WORK, job).add_exit_state(Step.DONE)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``fn`` in a plain (non-anyio) thread; failures are kept for the test."""
    errors: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, errors


# -- wait() ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_wait_returns_once_another_task_stops_the_scheduler(clock: MockClock) -> None:
    stopped_at: list[float] = []

    async def stop_later(running: Any) -> None:
        await clock.sleep(5)
        await running.stop()
        stopped_at.append(clock.now())

    async with Scheduler().every("e", flow(Job()), Step.WORK, 1).start() as running:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_later, running)
            await running.wait()
            assert not running.is_running
            assert clock.now() >= 5
        assert stopped_at
        await running.wait()  # again: the same (clean) result at once


@pytest.mark.anyio
async def test_wait_does_not_stop_the_scheduler() -> None:
    job = Job()
    async with Scheduler().manual("m", flow(job), Step.WORK).start() as running:
        with anyio.move_on_after(0.05) as scope:
            await running.wait()
        assert scope.cancelled_caught
        assert running.is_running
        await running.trigger("m")
        await job.started.wait()


@pytest.mark.anyio
async def test_wait_after_the_block_returns_at_once() -> None:
    async with Scheduler().manual("m", flow(Job()), Step.WORK).start() as running:
        pass
    with anyio.fail_after(5):
        await running.wait()
        await running.wait()


@pytest.mark.anyio
async def test_wait_raises_the_timeout_that_stop_raises(clock: MockClock) -> None:
    stubborn = Job(seconds=100, shielded=True)
    errors: list[str] = []

    async def stop(running: Any) -> None:
        try:
            await running.stop()
        except WorkflowError as exc:
            errors.append(exc.message)

    with pytest.raises(WorkflowError, match="Timeout waiting for workflows to complete"):
        async with Scheduler().manual("m", flow(stubborn), Step.WORK).start() as running:
            await running.trigger("m")
            await stubborn.started.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(stop, running)
                with pytest.raises(WorkflowError, match="Timeout waiting for workflows"):
                    await running.wait()
    assert errors == ["Timeout waiting for workflows to complete"]


# -- from other threads ----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_thread_triggers_a_run_and_reads_its_status() -> None:
    job = Job()
    seen: list[Any] = []
    async with Scheduler().manual("m", flow(job), Step.WORK).start() as running:
        handle = running.from_thread()
        assert isinstance(handle, SchedulerThreadHandle)
        loop_thread = threading.get_ident()

        def work() -> None:
            handle.trigger("m")
            for _ in range(500):
                info = handle.status("m")
                if info is not None and isinstance(info.status, Completed):
                    break
                threading.Event().wait(0.01)
            seen.append(handle.status("m"))
            seen.append([i.id for i in handle.list()])
            seen.append(handle.has_running_flows())
            with pytest.raises(WorkflowError, match="No workflow registered with id 'nope'"):
                handle.trigger("nope")

        thread, errors = in_thread(work)
        await anyio.to_thread.run_sync(thread.join)
        assert errors == []
    assert job.threads == [loop_thread]  # the run itself happened on the event loop
    info, ids, busy = seen
    assert info.status == FlowStatus.COMPLETED and info.run_count == 1
    assert (ids, busy) == (["m"], False)


@pytest.mark.anyio
async def test_a_thread_stops_the_scheduler_and_waits_for_its_teardown() -> None:
    log: list[str] = []
    job = Job(seconds=3600)  # cancelled by the stop
    async with Scheduler().manual("m", flow(job, log), Step.WORK).start() as running:
        await running.trigger("m")
        await job.started.wait()
        handle = running.from_thread()

        def stop_and_wait() -> None:
            handle.stop()
            log.append("stop returned")
            handle.wait(timeout=30)
            log.append("wait returned")

        thread, errors = in_thread(stop_and_wait)
        await running.wait()  # returns once the thread's stop settled the runs
        assert not running.is_running
    await anyio.to_thread.run_sync(thread.join)
    assert errors == []
    assert log.index("stop returned") < log.index("wait returned")
    assert log.index("teardown") < log.index("wait returned")
    assert running.status("m").status == FlowStatus.IDLE  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_thread_wait_times_out_while_the_scheduler_runs() -> None:
    async with Scheduler().manual("m", flow(Job()), Step.WORK).start() as running:
        handle = running.from_thread()
        thread, errors = in_thread(lambda: handle.wait(timeout=0.05))
        await anyio.to_thread.run_sync(thread.join)
        assert len(errors) == 1 and isinstance(errors[0], TimeoutError)
        assert running.is_running


@pytest.mark.anyio
async def test_the_thread_handle_refuses_the_event_loop_thread() -> None:
    async with Scheduler().manual("m", flow(Job()), Step.WORK).start() as running:
        handle = running.from_thread()
        with pytest.raises(RuntimeError, match="call it from another thread"):
            handle.trigger("m")
        with pytest.raises(RuntimeError, match="would wait for ever"):
            handle.wait()
    handle.wait()  # the block has exited: nothing left to wait for


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_thread_handle_outlives_the_event_loop(backend: str) -> None:
    job = Job()
    handles: list[SchedulerThreadHandle] = []

    async def main() -> None:
        async with Scheduler().manual("m", flow(job), Step.WORK).start() as running:
            await running.trigger("m")
            while running.has_running_flows():
                await anyio.sleep(0.001)
            handles.append(running.from_thread())

    anyio.run(main, backend=backend)
    (handle,) = handles
    for command in (handle.trigger, handle.reset_flow, handle.cancel_flow):
        with pytest.raises(WorkflowError, match=r"Scheduler not running — call start\(\)"):
            command("m")
    handle.stop()  # the cached, clean result
    handle.wait(timeout=0)
    assert not handle.is_running and not handle.has_running_flows()
    info = handle.status("m")
    assert info is not None and info.status == FlowStatus.COMPLETED
    assert [i.run_count for i in handle.list()] == [1]
