"""Every processing model in one checkpointed workflow.

    python examples/processing_models_tour.py

task → router → poll → timer → batch → stepped → stream → compensatable → done, on an
in-memory checkpoint store; the row log is printed just before the exit clears it.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any

import anyio

from cano_dsl import (
    CloseReason,
    PollOutcome,
    Resources,
    StepOutcome,
    StreamWindow,
    TaskConfig,
    TimerOutcome,
    WindowSignal,
    Workflow,
    batch,
    compensatable,
    poll,
    router,
    stepped,
    stream,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore

MINIMAL = TaskConfig.minimal()


class Tour(enum.Enum):
    TASK = enum.auto()
    ROUTER = enum.auto()
    POLL = enum.auto()
    TIMER = enum.auto()
    BATCH = enum.auto()
    STEPPED = enum.auto()
    STREAM = enum.auto()
    SAGA = enum.auto()
    DONE = enum.auto()


@task(config=MINIMAL, name="task")
async def plain(res: Resources) -> Tour:
    print("  task: one unit of work")
    return Tour.ROUTER


@router(state=Tour, config=MINIMAL, name="router")
class Route:
    async def route(self, res: Resources) -> Tour:
        print("  router: picks the next state, writes no checkpoint row")
        return Tour.POLL


@poll(state=Tour, name="poll")
class WaitReady:
    def __init__(self) -> None:
        self.polls = 0

    async def poll(self, res: Resources) -> PollOutcome[Tour]:
        self.polls += 1
        if self.polls < 3:
            return PollOutcome.pending(0.01)
        print(f"  poll: ready after {self.polls} polls")
        return PollOutcome.ready(Tour.TIMER)


@task.timer(state=Tour, name="timer")
class Pause:
    async def wait(self, res: Resources) -> TimerOutcome:
        return TimerOutcome.duration(0.02)

    async def after_wait(self, res: Resources) -> Tour:
        print("  timer: waited 20 ms")
        return Tour.BATCH


@batch(state=Tour, config=MINIMAL, name="batch")
class Square:
    concurrency = 4

    async def load(self, res: Resources) -> list[int]:
        return [1, 2, 3, 4, 5]

    async def process_item(self, item: int) -> int:
        return item * item

    async def finish(self, res: Resources, outputs: list[Any]) -> Tour:
        print(f"  batch: {[o.unwrap() for o in outputs]}")
        return Tour.STEPPED


@stepped(state=Tour, config=MINIMAL, name="stepped")
class Countdown:
    async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Tour]:
        n = 3 if cursor is None else cursor
        if n == 0:
            print("  stepped: done (a cursor row after every step)")
            return StepOutcome.done(Tour.STREAM)
        return StepOutcome.more(n - 1)


@stream(state=Tour, name="stream")
class Numbers:
    window = StreamWindow.count(2)

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[int]:
        for i in range(cursor or 0, 5):
            yield i

    async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
        return item * 10, item + 1

    async def flush_window(self, res: Resources, outputs: list[int]) -> WindowSignal[Tour]:
        print(f"  stream: window {outputs} committed")
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Tour:
        return Tour.SAGA


@compensatable(state=Tour, config=MINIMAL, name="saga")
class Reserve:
    async def run(self, res: Resources) -> tuple[Tour, dict[str, str]]:
        print("  compensatable: reserved (output kept for rollback)")
        return Tour.DONE, {"hold": "h-1"}

    async def compensate(self, res: Resources, output: dict[str, str]) -> None:
        print(f"  undo: release {output['hold']}")


class PeekStore(InMemoryCheckpointStore):
    """Shows the log just before the exit state clears it."""

    async def clear(self, workflow_id: str) -> None:
        print("  checkpoint log:")
        for r in self.rows(workflow_id):
            print(f"    {r.sequence:2} {r.state:8} {r.kind.name}")
        await super().clear(workflow_id)


async def main() -> None:
    wf = (
        Workflow.bare()
        .register(Tour.TASK, plain)
        .register_router(Tour.ROUTER, Route())
        .register(Tour.POLL, WaitReady())
        .register(Tour.TIMER, Pause())
        .register(Tour.BATCH, Square())
        .register_stepped(Tour.STEPPED, Countdown())
        .register_stream(Tour.STREAM, Numbers())
        .register_with_compensation(Tour.SAGA, Reserve())
        .add_exit_state(Tour.DONE)
        .with_checkpoint_store(PeekStore())
        .with_workflow_id("tour")
    )
    print(f"-> {(await wf.orchestrate(Tour.TASK)).name}")


if __name__ == "__main__":
    anyio.run(main)
