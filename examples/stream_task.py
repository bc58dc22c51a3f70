"""Two stream states share one sensor feed. CALM averages readings in windows of 3 and
stops to ALERT on a hot window; ALERT looks at one reading at a time and returns to
CALM once it cools down. When the feed runs dry, on_close ends the run.

Run: python examples/stream_task.py
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator

import anyio

from cano_dsl import (
    CloseReason,
    Resources,
    StreamTask,
    StreamWindow,
    WindowSignal,
    Workflow,
)

READINGS = [20.0, 21.5, 22.0, 23.0, 41.0, 45.0, 44.0, 38.0, 24.0, 22.5, 21.0, 20.5]
HOT = 35.0


class Step(enum.Enum):
    CALM = enum.auto()
    ALERT = enum.auto()
    DONE = enum.auto()


class Feed:
    """The shared source: each open() continues where the previous state stopped."""

    def __init__(self, readings: list[float]) -> None:
        self.readings = readings
        self.position = 0

    async def items(self) -> AsyncIterator[tuple[int, float]]:
        while self.position < len(self.readings):
            index = self.position
            self.position += 1
            await anyio.sleep(0)
            yield index, self.readings[index]


class Calm(StreamTask[Step, tuple[int, float], float, int]):
    window = StreamWindow.count(3)

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[tuple[int, float]]:
        return self.feed.items()

    async def process_item(self, res: Resources, item: tuple[int, float]) -> tuple[float, int]:
        index, value = item
        return value, index

    async def flush_window(self, res: Resources, outputs: list[float]) -> WindowSignal[Step]:
        average = sum(outputs) / len(outputs)
        print(f"CALM  window {outputs} average {average:.1f}")
        if max(outputs) >= HOT:
            print("CALM  hot reading: switching to ALERT")
            return WindowSignal.stop(Step.ALERT)
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        print(f"CALM  source closed ({reason.name})")
        return Step.DONE


class Alert(StreamTask[Step, tuple[int, float], float, int]):
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def open(self, res: Resources, cursor: int | None) -> AsyncIterator[tuple[int, float]]:
        return self.feed.items()

    async def process_item(self, res: Resources, item: tuple[int, float]) -> tuple[float, int]:
        index, value = item
        return value, index

    async def flush_window(self, res: Resources, outputs: list[float]) -> WindowSignal[Step]:
        (value,) = outputs
        print(f"ALERT reading {value}")
        if value < HOT:
            print("ALERT cooled down: back to CALM")
            return WindowSignal.stop(Step.CALM)
        return WindowSignal.continue_()

    async def on_close(self, res: Resources, reason: CloseReason) -> Step:
        print(f"ALERT source closed ({reason.name})")
        return Step.DONE


async def main() -> None:
    feed = Feed(READINGS)
    wf = (
        Workflow()
        .register_stream(Step.CALM, Calm(feed))
        .register_stream(Step.ALERT, Alert(feed))
        .add_exit_state(Step.DONE)
    )
    final = await wf.orchestrate(Step.CALM)
    print(f"reached {final.name} after {feed.position} readings")


if __name__ == "__main__":
    anyio.run(main)
