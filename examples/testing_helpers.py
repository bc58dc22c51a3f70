"""The test doubles in `cano_dsl.testing`, used the way a test would use them.

    python examples/testing_helpers.py

Port of cano's ``testing_helpers`` example. Four helpers:

1. `RecordingObserver`, `InMemoryCheckpointStore` and `TestResources`: run a workflow,
   then assert on the path it took and count the checkpoint rows it appended;
2. `panic_on_attempt`: a task that fails on purpose; with one attempt the run fails
   at once, and the error names the attempt;
3. `MockClock`: the same task behind a retry policy with a 10 s delay recovers in
   next to no wall time, because the retry loop sleeps on the library clock;
4. `assert_compensation_ran`: a saga fails in its third step and the test checks the
   undo order (last completed step first).

In a pytest suite the plugin hands these out as fixtures (``recording_observer``,
``test_resources``, ``in_memory_checkpoint_store``, ``mock_clock``).
"""

from __future__ import annotations

import enum
import time

import anyio

from cano_dsl import (
    MemoryStore,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.testing import (
    Checkpoint,
    InMemoryCheckpointStore,
    MockClock,
    RecordingObserver,
    TestResources,
    assert_compensation_ran,
    panic_on_attempt,
)


class Step(enum.Enum):
    START = enum.auto()
    WORK = enum.auto()
    FINISH = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class Start:
    async def run_bare(self) -> Step:
        return Step.WORK


@task(state=Step)
class Work:
    async def run(self, res: Resources) -> Step:
        res.get("store", MemoryStore).put("processed", 42)
        return Step.DONE


@compensatable(state=Step, config=TaskConfig.minimal(), name="reserve")
class Reserve:
    async def run(self, res: Resources) -> tuple[Step, str]:
        return Step.WORK, "hold-1"

    async def compensate(self, res: Resources, output: str) -> None:
        undo_log: list[str] = res.get("undo_log", list)
        undo_log.append("reserve")


@compensatable(state=Step, config=TaskConfig.minimal(), name="charge")
class Charge:
    async def run(self, res: Resources) -> tuple[Step, str]:
        return Step.FINISH, "txn-1"

    async def compensate(self, res: Resources, output: str) -> None:
        undo_log: list[str] = res.get("undo_log", list)
        undo_log.append("charge")


@task(config=TaskConfig.minimal(), name="ship")
async def ship() -> Step:
    raise RuntimeError("carrier down")


async def recording_and_checkpoints() -> None:
    observer = RecordingObserver()
    checkpoints = InMemoryCheckpointStore()
    res = TestResources().with_store("store").build()
    wf = (
        Workflow(res)
        .register(Step.START, Start())
        .register(Step.WORK, Work())
        .add_exit_state(Step.DONE)
        .with_observer(observer)
        .with_checkpoint_store(checkpoints)
        .with_workflow_id("demo-run")
    )
    final = await wf.orchestrate(Step.START)
    observer.assert_path([Step.START, Step.WORK, Step.DONE])
    observer.assert_completed_with(Step.DONE)
    print(f"1. reached {final.name}; path recorded: {observer.states_entered()}")
    print(f"   checkpoint appends observed: {len(observer.of_type(Checkpoint))}")
    print(f"   rows left after the clean run: {len(await checkpoints.load_run('demo-run'))}")
    print(f"   the store says processed={res.get('store', MemoryStore).get('processed')}")


async def failing_task() -> None:
    flaky = panic_on_attempt(1, Step.DONE)
    wf = Workflow.bare().register(Step.START, flaky).add_exit_state(Step.DONE)
    try:
        await wf.orchestrate(Step.START)
    except StateFailure as exc:
        print(f"2. run failed in {exc.state.name} after {flaky.attempts()} attempt(s): {exc.error}")


async def virtual_time() -> None:
    slow_retry = TaskConfig.minimal().with_fixed_retry(3, 10.0)
    flaky = panic_on_attempt(2, Step.DONE).with_config(slow_retry)
    wf = Workflow.bare().register(Step.START, flaky).add_exit_state(Step.DONE)
    wall = time.perf_counter()
    with MockClock() as clock:
        began = clock.now()
        final = await wf.orchestrate(Step.START)
        virtual = clock.now() - began
    wall = time.perf_counter() - wall
    print(
        f"3. reached {final.name} on attempt {flaky.attempts()}: "
        f"{virtual:.0f} s of retry delay on the mock clock, {wall:.2f} s of wall time"
    )


async def compensation_order() -> None:
    undo_log: list[str] = []
    saga = (
        Workflow(Resources().insert("undo_log", undo_log))
        .register_with_compensation(Step.START, Reserve())
        .register_with_compensation(Step.WORK, Charge())
        .register(Step.FINISH, ship)
        .add_exit_state(Step.DONE)
    )
    try:
        await saga.orchestrate(Step.START)
    except StateFailure as exc:
        print(f"4. saga failed in {exc.state.name} ({exc.error}); undo order: {undo_log}")
    assert_compensation_ran(undo_log, ["charge", "reserve"])
    print("   assert_compensation_ran(undo_log, ['charge', 'reserve']) passed")


async def main() -> None:
    await recording_and_checkpoints()
    await failing_task()
    await virtual_time()
    await compensation_order()


if __name__ == "__main__":
    anyio.run(main)
