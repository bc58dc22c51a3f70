"""Decoration-time checks and registration rules of @poll, @timer, @stepped, @stream."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cano_dsl import (
    CloseReason,
    ConfigurationError,
    PollOutcome,
    PollTask,
    Resources,
    StepOutcome,
    SteppedTask,
    StreamErrorPolicy,
    StreamTask,
    StreamWindow,
    TaskConfig,
    TaskDefinitionError,
    TimerOutcome,
    TimerTask,
    WindowSignal,
    Workflow,
    poll,
    stepped,
    stream,
    timer,
)


class Step(enum.Enum):
    A = enum.auto()
    DONE = enum.auto()


class Other(enum.Enum):
    X = enum.auto()


def test_missing_required_hook_names_class_and_hook() -> None:
    with pytest.raises(TaskDefinitionError, match=r"@poll .*NoPoll: missing .*`poll`"):

        @poll
        class NoPoll:
            pass

    with pytest.raises(TaskDefinitionError, match="`after_wait`"):

        @timer
        class HalfTimer:
            async def wait(self, res: Resources) -> TimerOutcome:
                return TimerOutcome.duration(0)

    with pytest.raises(TaskDefinitionError, match="`flush_window`, `on_close`"):

        @stream
        class HalfStream:
            async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
                yield 1

            async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
                return item, item


def test_sync_hook_is_rejected() -> None:
    with pytest.raises(TaskDefinitionError, match="`step` must be `async def`"):

        @stepped
        class SyncStep:
            def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
                return StepOutcome.done(Step.DONE)

    with pytest.raises(TaskDefinitionError, match="`poll` must be `async def`"):

        class SyncPoll(PollTask[Step]):
            def poll(self, res: Resources) -> PollOutcome[Step]:  # type: ignore[override]
                return PollOutcome.ready(Step.DONE)


def test_stream_open_may_be_an_async_generator_but_not_sync() -> None:
    with pytest.raises(TaskDefinitionError, match="`open` must be `async def` \\(or an async"):

        @stream
        class SyncOpen:
            def open(self, res: Resources, cursor: Any) -> list[int]:
                return [1]

            async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
                return item, item

            async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
                return WindowSignal.continue_()

            async def on_close(self, res: Resources, reason: CloseReason) -> Step:
                return Step.DONE


def test_near_miss_hook_name_suggests_the_hook() -> None:
    with pytest.raises(TaskDefinitionError, match="did you mean `on_poll_error`"):

        @poll
        class Typo:
            async def poll(self, res: Resources) -> PollOutcome[Step]:
                return PollOutcome.ready(Step.DONE)

            def on_pol_error(self) -> None:
                pass

    with pytest.raises(TaskDefinitionError, match="did you mean `process_item`"):

        @stream
        class StreamTypo:
            async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
                yield 1

            async def proces_item(self, res: Resources, item: int) -> tuple[int, int]:
                return item, item

            async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
                return item, item

            async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
                return WindowSignal.continue_()

            async def on_close(self, res: Resources, reason: CloseReason) -> Step:
                return Step.DONE


def test_async_constant_member_is_rejected() -> None:
    with pytest.raises(TaskDefinitionError, match="`window` must be a plain method"):

        @stream
        class AsyncWindow:
            async def window(self) -> StreamWindow:
                return StreamWindow.count(2)

            async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
                yield 1

            async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
                return item, item

            async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
                return WindowSignal.continue_()

            async def on_close(self, res: Resources, reason: CloseReason) -> Step:
                return Step.DONE


def test_decorator_keeps_the_class_and_injects_defaults() -> None:
    @stream(state=Step, name="readings")
    class Readings:
        """My docstring."""

        def helper(self) -> int:
            return 1

        async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
            yield 1

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            return item, item

        async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Step:
            return Step.DONE

    r = Readings()
    assert Readings.__name__ == "Readings" and Readings.__doc__ == "My docstring."
    assert isinstance(r, StreamTask)
    assert r.helper() == 1
    assert r.name() == "readings"  # type: ignore[attr-defined]
    assert r.window() == StreamWindow.count(1)  # type: ignore[attr-defined]
    assert r.on_item_error() == StreamErrorPolicy.fail_fast()  # type: ignore[attr-defined]
    assert r.config() == TaskConfig.minimal()  # type: ignore[attr-defined]


def test_explicit_base_classes_are_equivalent() -> None:
    class T(TimerTask[Step]):
        async def wait(self, res: Resources) -> TimerOutcome:
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources) -> Step:
            return Step.DONE

    class S(SteppedTask[Step, int]):
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, Step]:
            return StepOutcome.done(Step.DONE)

    Workflow().register(Step.A, T()).register_stepped(Step.DONE, S())


def _stream_task() -> Any:
    @stream
    class S:
        async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
            yield 1

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            return item, item

        async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Step:
            return Step.DONE

    return S()


def _stepped_task() -> Any:
    @stepped(state=Step)
    class S:
        async def step(self, res: Resources, cursor: Any) -> StepOutcome[Any, Step]:
            return StepOutcome.done(Step.DONE)

    return S()


def test_registration_rules() -> None:
    wf = Workflow()
    wf.register(Step.A, _stream_task())
    wf.register(Step.A, _stepped_task())
    with pytest.raises(ConfigurationError, match="register_stepped"):
        wf.register_stepped(Step.A, _stream_task())
    with pytest.raises(ConfigurationError, match="register_stream"):
        wf.register_stream(Step.A, _stepped_task())
    with pytest.raises(ConfigurationError, match=r"did you mean `.*S\(\)`"):
        wf.register_stepped(Step.A, type(_stepped_task()))
    with pytest.raises(ConfigurationError, match="declared for states of Step"):
        Workflow().register_stepped(Other.X, _stepped_task())


def test_bad_constant_types_fail_at_run_time_with_a_clear_message() -> None:
    import anyio

    @stream
    class BadWindow:
        window = 5

        async def open(self, res: Resources, cursor: Any) -> AsyncIterator[int]:
            yield 1

        async def process_item(self, res: Resources, item: int) -> tuple[int, int]:
            return item, item

        async def flush_window(self, res: Resources, outputs: list[int]) -> Any:
            return WindowSignal.continue_()

        async def on_close(self, res: Resources, reason: CloseReason) -> Step:
            return Step.DONE

    with pytest.raises(TaskDefinitionError, match="window must give a StreamWindow"):
        anyio.run(BadWindow().run, Resources())  # type: ignore[attr-defined]
