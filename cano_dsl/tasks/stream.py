"""`@stream` / `StreamTask`: continuous windowed consumption (REFERENCE §3.6).

``open(res, cursor)`` opens (or resumes) a source: an async generator function, or a
coroutine function returning an async iterable. Each item goes through
``process_item(res, item)`` → ``(output, cursor)``, outputs are buffered into a window
(`StreamWindow.count(n)` items or `StreamWindow.duration(seconds)`), and each full
window is handed to ``flush_window(res, outputs)``, which answers
`WindowSignal.continue_()` or `WindowSignal.stop(next_state)`. When the source is
exhausted, ``on_close(res, CloseReason.EXHAUSTED)`` picks the next state.

The per-window driver (`_Session.next_window`) is shared by both registration paths:

1. a count window that is full is flushed;
2. otherwise, biased in this order: the run's interruption (token or total-timeout
   deadline) → the duration window's tick → the next item;
3. an item error is handled by ``on_item_error``: `StreamErrorPolicy.fail_fast`
   (default) fails the run, `skip_and_continue` drops the item (its cursor is never
   recorded), `retry_on_error(max_errors)` tolerates ``max_errors`` consecutive errors
   across windows (a success resets the count); failed items are never re-pulled;
4. a full-window flush that answers `continue_` commits the cursor of the window's last
   item; `stop(r)` commits it and goes to ``r`` without calling ``on_close``. A
   duration tick with an empty buffer only re-arms the window;
5. exhaustion flushes a non-empty partial window (a `stop` is honoured), then calls
   ``on_close(EXHAUSTED)`` and commits the final window's cursor, if any;
6. an interruption flushes a non-empty partial window (its `stop` is ignored), calls
   ``on_close(CANCELLED)`` (its result is ignored, its error propagates) and commits
   the cursor. If that drain flush fails, ``on_close(CANCELLED)`` still runs
   (best effort, its error dropped), the flush error surfaces and nothing is committed.

``config().attempt_timeout`` bounds each ``process_item`` call
(`TaskTimeout("stream process_item exceeded attempt_timeout")`, an item error like
any other); the retry mode is never applied, since a retry would re-open the stream.

Waiting for the next item is the only point where an interruption or a tick can cut
in: ``process_item``, ``flush_window`` and ``on_close`` always run to completion. With
duration windows the source is pulled by a helper task, so a tick never interrupts an
async generator in the middle of producing an item.
"""

from __future__ import annotations

import abc
import datetime
import enum
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar, Union

import attrs

from .._config import TaskConfig, _count, seconds
from .._errors import TaskDefinitionError
from .._resources import Resources
from .._state import S, S_co, TaskResult
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec

__all__ = [
    "CloseReason",
    "StreamErrorPolicy",
    "StreamLike",
    "StreamTask",
    "StreamWindow",
    "WindowSignal",
    "stream",
]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
C = TypeVar("C")

#: The shortest duration window, in seconds (a zero window would never let items in).
MIN_DURATION_WINDOW = 0.001

_ITEM_TIMEOUT_MESSAGE = "stream process_item exceeded attempt_timeout"


# -- value types ----------------------------------------------------------------------


@attrs.frozen(repr=False)
class StreamWindow:
    """How outputs are grouped before ``flush_window``: `count` items or a `duration`."""

    kind: Literal["count", "duration"]
    size: int = 1
    length: float = 0.0

    @classmethod
    def count(cls, n: int) -> StreamWindow:
        """Flush every ``n`` processed items (``0`` behaves as ``1``)."""
        return cls("count", _count(n, "StreamWindow.count"), 0.0)

    @classmethod
    def duration(cls, d: float | datetime.timedelta) -> StreamWindow:
        """Flush what was processed every ``d`` seconds (at least 1 ms); an interval
        with nothing processed flushes nothing."""
        return cls("duration", 0, seconds(d, "StreamWindow.duration"))

    def __repr__(self) -> str:
        if self.kind == "count":
            return f"StreamWindow.count({self.size})"
        return f"StreamWindow.duration({self.length!r})"


@attrs.frozen(repr=False)
class StreamErrorPolicy:
    """What a ``process_item`` error does: `fail_fast` (default), `skip_and_continue`
    or `retry_on_error` (tolerate ``max_errors`` consecutive errors)."""

    kind: Literal["fail_fast", "skip_and_continue", "retry_on_error"] = "fail_fast"
    max_errors: int = 0

    @classmethod
    def fail_fast(cls) -> StreamErrorPolicy:
        """The first item error fails the run."""
        return _FAIL_FAST

    @classmethod
    def skip_and_continue(cls) -> StreamErrorPolicy:
        """Drop the failed item and go on; its cursor is never committed."""
        return cls("skip_and_continue")

    @classmethod
    def retry_on_error(cls, max_errors: int) -> StreamErrorPolicy:
        """Drop failed items until more than ``max_errors`` fail in a row (the count
        survives window boundaries; a processed item resets it). The failed item is not
        pulled again: "retry" means "keep consuming"."""
        return cls("retry_on_error", _count(max_errors, "max_errors"))

    def __repr__(self) -> str:
        if self.kind == "retry_on_error":
            return f"StreamErrorPolicy.retry_on_error({self.max_errors})"
        return f"StreamErrorPolicy.{self.kind}()"


_FAIL_FAST = StreamErrorPolicy()


@attrs.frozen(repr=False)
class WindowSignal(Generic[S_co]):
    """``flush_window``'s answer: `continue_` with the next window, or `stop` and go to
    ``result``."""

    kind: Literal["continue", "stop"]
    result: S_co | TaskResult[S_co] | None = None

    @classmethod
    def continue_(cls) -> WindowSignal[Any]:
        """Commit the window's cursor and keep consuming."""
        return _CONTINUE

    @classmethod
    def stop(cls, result: S | TaskResult[S]) -> WindowSignal[S]:
        """Commit the window's cursor and leave the state for ``result`` (``on_close``
        is not called)."""
        if not isinstance(result, (enum.Enum, TaskResult)):
            raise TaskDefinitionError(
                f"WindowSignal.stop takes a state (Enum member) or a TaskResult, got {result!r}"
            )
        out: WindowSignal[S] = cls("stop", result)  # type: ignore[arg-type,assignment]
        return out

    @property
    def is_stop(self) -> bool:
        """Whether this is `stop(...)`."""
        return self.kind == "stop"

    def __repr__(self) -> str:
        if self.kind == "stop":
            return f"WindowSignal.stop({self.result!r})"
        return "WindowSignal.continue_()"


_CONTINUE: WindowSignal[Any] = WindowSignal("continue")


class CloseReason(enum.Enum):
    """Why ``on_close`` is called: the source ran dry, or the run was interrupted."""

    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"


# -- the driver ------------------------------------------------------------------------

# what waiting for the next item produced


# what a window ended with
def _stream_invoker(t: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    from ._stream_driver import run_stream_in_memory

    return partial(run_stream_in_memory, t), True


STREAM_SPEC = ModelSpec(
    "stream",
    required=("open", "process_item", "flush_window", "on_close"),
    returns=("on_close",),
    constants=("window", "on_item_error", "config", "name"),
    generator_ok=frozenset({"open"}),
)


class StreamLike(Protocol[S_co]):
    """What a type checker sees of a stream task (a `StreamTask` or a `@stream` class)."""

    def open(
        self, res: Resources, cursor: Any, /
    ) -> Union[AsyncIterator[Any], Awaitable[AsyncIterable[Any]]]:
        """Open the source at ``cursor`` (``None`` on a first run): an async iterable of items."""

    async def process_item(self, res: Resources, item: Any, /) -> tuple[Any, Any]:
        """Process one item: return ``(output, cursor)``."""

    async def flush_window(self, res: Resources, outputs: list[Any], /) -> WindowSignal[S_co]:
        """Flush a window's outputs: `WindowSignal.continue_()` or `WindowSignal.stop(state)`."""

    async def on_close(self, res: Resources, reason: CloseReason, /) -> NextState[S_co]:
        """The source closed (``reason``): return the next state."""


class StreamTask(Task[S], Generic[S, I, O, C]):
    """Continuous windowed consumption of a source: ``open`` → ``process_item`` per
    item → ``flush_window`` per window → ``on_close`` when the source ends or the run
    is interrupted.

    Subclass it (``class Readings(StreamTask[Step, Reading, float, int])``) or decorate
    a plain class with `@stream`. Defaults: ``window`` → `StreamWindow.count(1)`,
    ``on_item_error`` → `StreamErrorPolicy.fail_fast()`, ``config`` →
    `TaskConfig.minimal()` (only its ``attempt_timeout`` is used, per item).
    """

    __cano_model__: ClassVar[ModelSpec] = STREAM_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    if TYPE_CHECKING:
        # a method or a plain attribute (``window = StreamWindow.count(3)``):
        # a type checker cannot spell "either" for an override, so it sees Any here
        window: Any
        on_item_error: Any
    else:

        def window(self) -> StreamWindow:
            """How outputs are grouped before ``flush_window``."""
            return StreamWindow.count(1)

        def on_item_error(self) -> StreamErrorPolicy:
            """What a ``process_item`` error does."""
            return StreamErrorPolicy.fail_fast()

    def config(self) -> TaskConfig:
        """Only ``attempt_timeout`` is used, as a bound on each ``process_item``."""
        return TaskConfig.minimal()

    @abc.abstractmethod
    def open(
        self, res: Resources, cursor: C | None
    ) -> Union[AsyncIterator[I], Awaitable[AsyncIterable[I]]]:
        """Open the source, resuming after ``cursor`` (``None`` on a fresh start): an
        ``async def`` returning an async iterable, or an async generator."""

    @abc.abstractmethod
    async def process_item(self, res: Resources, item: I) -> tuple[O, C]:
        """Process one item; return its output and the cursor just past it."""

    @abc.abstractmethod
    async def flush_window(self, res: Resources, outputs: list[O]) -> WindowSignal[S]:
        """Handle one window of outputs; continue or stop."""

    @abc.abstractmethod
    async def on_close(self, res: Resources, reason: CloseReason) -> NextState[S]:
        """The stream ended: pick the next state (EXHAUSTED) or clean up (CANCELLED)."""

    async def run(self, res: Resources) -> NextState[S]:
        """The in-memory companion loop, as `Workflow.register` runs it."""
        from ._stream_driver import run_stream_in_memory

        result: NextState[S] = await run_stream_in_memory(self, res)
        return result


STREAM_SPEC = STREAM_SPEC.bind(StreamTask, _stream_invoker)
StreamTask.__cano_model__ = STREAM_SPEC

stream = ModelDecorator(STREAM_SPEC)
"""``@stream`` / ``@stream(state=Step, config=..., name=...)``: make a class a
`StreamTask` with ``open``, ``process_item``, ``flush_window`` and ``on_close``;
``window``, ``on_item_error``, ``config`` and ``name`` are optional. Checked at
decoration time."""
