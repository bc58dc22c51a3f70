"""The stream window driver (REFERENCE §3.6), shared by both registration paths:
`run_stream_in_memory` (plain ``register``) and `run_stream_session` (the engine's
``register_stream`` dispatcher, with persistence and the cooperative cancel drain).
The model's value types, base class and decorator live in `cano_dsl.tasks.stream`."""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import anyio
import anyio.lowlevel

from .. import _clock, _metrics
from .._cancel import CancellationToken
from .._config import TaskConfig
from .._errors import TaskDefinitionError, TaskExecutionError, TaskTimeout
from .._resources import Resources
from ._decorate import constant
from .stream import (
    _ITEM_TIMEOUT_MESSAGE,
    MIN_DURATION_WINDOW,
    CloseReason,
    StreamErrorPolicy,
    StreamWindow,
    WindowSignal,
)

__all__ = ["Interrupt", "run_stream_in_memory", "run_stream_session"]

# what the next await on the source produced
_ITEM, _END, _CANCEL, _TICK = range(4)

WINDOW, DONE, CANCELLED = range(3)
_NO_CURSOR: Any = object()


class Interrupt:
    """The engine's cancellation token and total-timeout deadline (on
    ``anyio.current_time()``'s clock), observed cooperatively by the stream."""

    __slots__ = ("deadline", "token")

    def __init__(self, token: CancellationToken | None, deadline: float | None) -> None:
        self.token = token
        self.deadline = deadline

    def fired(self) -> bool:
        token = self.token
        if token is not None and token.is_cancelled:
            return True
        deadline = self.deadline
        return deadline is not None and anyio.current_time() >= deadline

    def scope(self) -> anyio.CancelScope:
        """A cancel scope the token cancels and the deadline ends (detach the token
        with `release`)."""
        scope = anyio.CancelScope(deadline=math.inf if self.deadline is None else self.deadline)
        if self.token is not None:
            self.token._attach(scope)
        return scope

    def release(self, scope: anyio.CancelScope) -> None:
        if self.token is not None:
            self.token._detach(scope)


class _Pump:
    """Pulls items from the source in a helper task, one per request, and keeps the
    window tick on the library clock. Waiting for an item can then be interrupted by a
    tick or an interruption without losing the item being produced and without
    cancelling an async generator half-way (which would finalise it)."""

    def __init__(self, it: AsyncIterator[Any]) -> None:
        self.it = it
        self.want = anyio.Event()
        self.requested = False
        self.result: tuple[int, Any] | None = None
        self.error: Exception | None = None
        self.wake: anyio.Event | None = None
        self.armed = anyio.Event()
        self.tick_at = math.inf
        self.ticked = False
        self.interrupted = False

    def _notify(self) -> None:
        wake = self.wake
        if wake is not None:
            wake.set()

    async def pull(self) -> None:
        it = self.it
        while True:
            await self.want.wait()
            self.want = anyio.Event()
            try:
                self.result = (_ITEM, await it.__anext__())
            except StopAsyncIteration:
                self.result = (_END, None)
            except Exception as exc:
                self.error = exc
                self.result = (_END, None)
            self.requested = False
            self._notify()
            if self.result[0] == _END:
                return

    def arm(self, at: float) -> None:
        self.tick_at = at
        self.ticked = False
        self.armed.set()

    async def tick(self) -> None:
        while True:
            await self.armed.wait()
            self.armed = anyio.Event()
            while True:
                now = _clock.now()
                if now >= self.tick_at:
                    break
                await _clock.sleep(self.tick_at - now)
            self.ticked = True
            self._notify()

    async def watch_token(self, token: CancellationToken) -> None:
        await token.wait()
        self.interrupted = True
        self._notify()

    async def watch_deadline(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)
        self.interrupted = True
        self._notify()

    async def next(self, interrupt: Interrupt | None) -> tuple[int, Any]:
        while True:
            if self.interrupted or (interrupt is not None and interrupt.fired()):
                return _CANCEL, None
            if self.ticked:
                self.ticked = False
                return _TICK, None
            result = self.result
            if result is not None:
                self.result = None
                if self.error is not None:
                    error, self.error = self.error, None
                    raise error
                return result
            if not self.requested:
                self.requested = True
                self.want.set()
            wake = self.wake = anyio.Event()
            await wake.wait()
            self.wake = None


def _item_failed() -> None:
    """``cano_stream_items_total{result=err}`` for one failed item (the error path)."""
    sink = _metrics.SINK
    if sink is not None:
        sink.counter(_metrics.STREAM_ITEMS_TOTAL, 1, _metrics.RESULT_ERR)


def _per_item_sink() -> _metrics.MetricsSink | None:
    """The sink that counts each processed item (read once per window), or None when
    metrics are off or items are counted per flushed window."""
    sink = _metrics.SINK
    return None if sink is None or _metrics.STREAM_ITEMS_PER_WINDOW else sink


def _full_window(signal: WindowSignal[Any], last: Any) -> tuple[int, Any, Any]:
    """After a full window's flush: keep going, or stop at the signal's state."""
    if signal.kind == "continue":
        return WINDOW, last, None
    return DONE, last, signal.result


class _Session:
    """One open stream: the source, the window settings and the error counter, which
    lives as long as the session (it survives window boundaries)."""

    def __init__(
        self,
        task: Any,
        res: Resources,
        it: AsyncIterator[Any],
        window: StreamWindow,
        policy: StreamErrorPolicy,
        item_timeout: float | None,
        interrupt: Interrupt | None,
        pump: _Pump | None,
    ) -> None:
        self.task = task
        self.res = res
        self.it = it
        self.count = max(window.size, 1) if window.kind == "count" else None
        self.length = max(window.length, MIN_DURATION_WINDOW)
        self.skip = policy.kind == "skip_and_continue"
        self.tolerate = policy.max_errors if policy.kind == "retry_on_error" else -1
        self.item_timeout = item_timeout
        self.interrupt = interrupt
        self.pump = pump
        self.errors = 0
        # cuts the waits for an item when the run is interrupted (count windows)
        self.cutter: _Cutter | None = None
        # the window in progress, kept for a drain after an interrupted wait
        self.partial: tuple[list[Any], Any] = ([], _NO_CURSOR)

    async def _next_guarded(self) -> tuple[int, Any]:
        """Wait for the next item; the session's cutter may cut this wait (and only
        this wait)."""
        cutter = self.cutter
        assert cutter is not None
        if cutter.fired:
            return _CANCEL, None
        cutter.waiting = True
        try:
            item = await self.it.__anext__()
            kind = _ITEM
        except StopAsyncIteration:
            kind, item = _END, None
        finally:
            cutter.waiting = False
        if cutter.cut:
            # cut as the item arrived: leave the cancelled scope before the next await
            raise _Cut(kind, item)
        return kind, item

    async def _accept(self, item: Any, buf: list[Any], last: Any) -> Any:
        """Process an item that arrived as the run was cut; return the window's cursor."""
        try:
            timed = self.item_timeout is not None
            pair = await (self._process(item) if timed else self.task.process_item(self.res, item))
            if type(pair) is not tuple or len(pair) != 2:
                raise TaskExecutionError(
                    f"{type(self.task).__qualname__}.process_item must return a tuple "
                    f"(output, cursor), got {pair!r}"
                )
        except Exception:
            _item_failed()
            if self.skip:
                return last
            if self.tolerate < 0:
                raise
            self.errors += 1
            if self.errors > self.tolerate:
                raise
            return last
        self.errors = 0
        buf.append(pair[0])
        sink = _per_item_sink()
        if sink is not None:
            sink.counter(_metrics.STREAM_ITEMS_TOTAL, 1, _metrics.RESULT_OK)
        return pair[1]

    async def _process(self, item: Any) -> Any:
        timeout = self.item_timeout
        if timeout is None:
            return await self.task.process_item(self.res, item)
        result: Any = _NO_CURSOR
        with anyio.move_on_after(timeout):
            result = await self.task.process_item(self.res, item)
        if result is _NO_CURSOR:
            raise TaskTimeout(_ITEM_TIMEOUT_MESSAGE)
        return result

    async def _flush(self, outputs: list[Any]) -> WindowSignal[Any]:
        # as cano: the window is counted as its flush starts (its items were counted
        # one by one); with per-window counting, items and window once it succeeded
        sink = _metrics.SINK
        per_window = _metrics.STREAM_ITEMS_PER_WINDOW
        if sink is not None and not per_window:
            sink.counter(_metrics.STREAM_WINDOWS_TOTAL, 1, _metrics.NO_LABELS)
        signal = await self.task.flush_window(self.res, outputs)
        if type(signal) is not WindowSignal:
            raise TaskExecutionError(
                f"{type(self.task).__qualname__}.flush_window must return a WindowSignal "
                f"(WindowSignal.continue_() or WindowSignal.stop(state)), got {signal!r}"
            )
        if sink is not None and per_window:
            if outputs:
                sink.counter(_metrics.STREAM_ITEMS_TOTAL, len(outputs), _metrics.RESULT_OK)
            sink.counter(_metrics.STREAM_WINDOWS_TOTAL, 1, _metrics.NO_LABELS)
        return signal

    async def _drain(self, outputs: list[Any], last: Any) -> tuple[int, Any, Any]:
        task, res = self.task, self.res
        if outputs:
            try:
                await self._flush(outputs)  # a Stop is ignored: the run is ending
            except Exception:
                try:
                    await task.on_close(res, CloseReason.CANCELLED)
                except Exception:
                    pass
                raise
        await task.on_close(res, CloseReason.CANCELLED)
        return CANCELLED, last, None

    async def next_window(self) -> tuple[int, Any, Any]:
        """Drive one window: ``(WINDOW, cursor, None)``, ``(DONE, cursor_or_missing,
        next)`` or ``(CANCELLED, cursor_or_missing, None)``. If the interrupt scope cuts
        the wait for an item, the partial window is left in ``self.partial``."""
        task, res = self.task, self.res
        it = self.it
        limit = self.count
        pump = self.pump
        guarded = self.cutter is not None
        process_item = task.process_item
        timed = self.item_timeout is not None
        counter = _per_item_sink()
        if pump is not None:
            pump.arm(_clock.now() + self.length)
        buf: list[Any] = []
        last: Any = _NO_CURSOR
        try:
            while True:
                if limit is not None and len(buf) >= limit:
                    return _full_window(await self._flush(buf), last)
                # biased: interruption, then the window's tick, then the next item
                if pump is not None:
                    kind, item = await pump.next(self.interrupt)
                elif guarded:
                    kind, item = await self._next_guarded()
                else:
                    try:
                        item = await it.__anext__()
                        kind = _ITEM
                    except StopAsyncIteration:
                        kind = _END
                if kind == _ITEM:
                    try:
                        pair = await (self._process(item) if timed else process_item(res, item))
                        if type(pair) is not tuple or len(pair) != 2:
                            raise TaskExecutionError(
                                f"{type(task).__qualname__}.process_item must return a "
                                f"tuple (output, cursor), got {pair!r}"
                            )
                    except Exception:
                        _item_failed()
                        if self.skip:
                            continue
                        if self.tolerate < 0:
                            raise
                        self.errors += 1
                        if self.errors > self.tolerate:
                            raise
                        continue
                    self.errors = 0
                    buf.append(pair[0])
                    last = pair[1]
                    if counter is not None:
                        counter.counter(_metrics.STREAM_ITEMS_TOTAL, 1, _metrics.RESULT_OK)
                    continue
                if kind == _TICK:
                    assert pump is not None
                    if not buf:
                        pump.arm(_clock.now() + self.length)
                        continue
                    return _full_window(await self._flush(buf), last)
                if kind == _CANCEL:
                    return await self._drain(buf, last)
                # the source is exhausted
                if buf:
                    signal = await self._flush(buf)
                    if signal.kind == "stop":
                        return DONE, last, signal.result
                return DONE, last, await task.on_close(res, CloseReason.EXHAUSTED)
        except BaseException:
            self.partial = (buf, last)
            raise


def _settings(task: Any) -> tuple[StreamWindow, StreamErrorPolicy]:
    window = constant(task, "window")
    if not isinstance(window, StreamWindow):
        raise TaskDefinitionError(
            f"{type(task).__qualname__}.window must give a StreamWindow, got {window!r}"
        )
    policy = constant(task, "on_item_error")
    if not isinstance(policy, StreamErrorPolicy):
        raise TaskDefinitionError(
            f"{type(task).__qualname__}.on_item_error must give a StreamErrorPolicy, got {policy!r}"
        )
    return window, policy


async def _open(
    task: Any, res: Resources, cursor: Any, interrupt: Interrupt | None
) -> AsyncIterator[Any] | None:
    """Call ``open``; ``None`` when the interruption fired first (a hung coroutine
    ``open`` is cancellable)."""
    if interrupt is not None and interrupt.fired():
        return None
    produced = task.open(res, cursor)
    if inspect.isawaitable(produced):
        if interrupt is None:
            produced = await produced
        else:
            scope = interrupt.scope()
            opened: Any = _NO_CURSOR
            try:
                with scope:
                    opened = await produced
            finally:
                interrupt.release(scope)
            if opened is _NO_CURSOR:
                return None
            produced = opened
    if not isinstance(produced, AsyncIterable):
        raise TaskExecutionError(
            f"{type(task).__qualname__}.open must be an async generator or return an "
            f"async iterable, got {produced!r}"
        )
    return produced.__aiter__()


async def _close(it: AsyncIterator[Any]) -> None:
    """Finalise an async generator the stream opened (other iterables belong to their
    owner and are left open)."""
    if inspect.isasyncgen(it):
        with anyio.CancelScope(shield=True):
            await it.aclose()


Commit = Callable[[Any], Awaitable[None]]


async def _consume(
    task: Any,
    res: Resources,
    it: AsyncIterator[Any],
    item_timeout: float | None,
    interrupt: Interrupt | None,
    commit: Commit | None,
) -> tuple[int, Any]:
    window, policy = _settings(task)
    if window.kind == "count":
        session = _Session(task, res, it, window, policy, item_timeout, interrupt, None)
        if interrupt is None:
            return await _windows(session, commit)
        return await _guarded_windows(session, interrupt, commit)
    error: Exception | None = None
    outcome: tuple[int, Any] = (CANCELLED, None)
    async with anyio.create_task_group() as tg:
        pump = _Pump(it)
        tg.start_soon(pump.pull)
        tg.start_soon(pump.tick)
        if interrupt is not None:
            if interrupt.token is not None:
                tg.start_soon(pump.watch_token, interrupt.token)
            if interrupt.deadline is not None:
                tg.start_soon(pump.watch_deadline, interrupt.deadline)
        session = _Session(task, res, it, window, policy, item_timeout, interrupt, pump)
        try:
            outcome = await _windows(session, commit)
        except Exception as exc:
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return outcome


class _Cutter:
    """Attached to the run's token (and fired by a deadline watcher), it cancels the
    session's scope only while the session waits for an item; otherwise it just
    raises ``fired``, which the session checks before its next wait. process_item,
    flush_window, on_close and cursor commits are never cut."""

    __slots__ = ("cut", "fired", "scope", "waiting")

    def __init__(self) -> None:
        self.fired = False
        self.waiting = False
        self.cut = False
        self.scope = anyio.CancelScope()

    def cancel(self) -> None:
        self.fired = True
        if self.waiting and not self.cut:
            self.cut = True
            self.scope.cancel()

    async def at_deadline(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)
        self.cancel()


class _Cut(Exception):
    """Internal: the run was cut while an item arrived; carries what the wait got."""

    def __init__(self, kind: int, item: Any) -> None:
        super().__init__("stream wait cut")
        self.kind = kind
        self.item = item


async def _guarded_windows(
    session: _Session, interrupt: Interrupt, commit: Commit | None
) -> tuple[int, Any]:
    """Count windows under an interruption. A wait cut by the cutter unwinds to here,
    and the partial window is drained outside the cancelled scope."""
    cutter = session.cutter = _Cutter()
    token = interrupt.token
    if token is not None:
        token._attach(cast(anyio.CancelScope, cutter))
    cut: _Cut | None = None
    try:
        if interrupt.deadline is None:
            try:
                with cutter.scope:
                    return await _windows(session, commit)
            except _Cut as exc:
                cut = exc
        else:
            error: Exception | None = None
            outcome: tuple[int, Any] | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(cutter.at_deadline, interrupt.deadline)
                try:
                    with cutter.scope:
                        outcome = await _windows(session, commit)
                except _Cut as exc:
                    cut = exc
                except Exception as exc:
                    error = exc
                tg.cancel_scope.cancel()
            if error is not None:
                raise error
            if outcome is not None:
                return outcome
    finally:
        if token is not None:
            token._detach(cast(anyio.CancelScope, cutter))
    buf, last = session.partial
    if cut is not None and cut.kind == _ITEM:
        last = await session._accept(cut.item, buf, last)
    kind, cursor, _ = await session._drain(buf, last)
    if commit is not None and cursor is not _NO_CURSOR:
        await commit(cursor)
    return kind, None


async def _windows(session: _Session, commit: Commit | None) -> tuple[int, Any]:
    next_window = session.next_window
    yield_between = session.interrupt is not None
    while True:
        kind, cursor, result = await next_window()
        if commit is not None and cursor is not _NO_CURSOR:
            await commit(cursor)
        if kind != WINDOW:
            return kind, result
        if yield_between:
            # let the task that may cancel the run in, even if the source never awaits
            await anyio.lowlevel.checkpoint()


async def run_stream_in_memory(task: Any, res: Resources) -> Any:
    """The companion task (`Workflow.register`): ``open(None)``, no persistence, no
    cooperative drain. Returns the next state."""
    config = constant(task, "config")
    timeout = config.attempt_timeout if isinstance(config, TaskConfig) else None
    sink = _metrics.SINK
    try:
        it = await _open(task, res, None, None)
        assert it is not None
        try:
            _, result = await _consume(task, res, it, timeout, None, None)
        finally:
            await _close(it)
    except Exception:
        if sink is not None:
            sink.counter(_metrics.STREAM_RUNS_TOTAL, 1, _metrics.OUTCOME_FAILED)
        raise
    if sink is not None:
        sink.counter(_metrics.STREAM_RUNS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)
    return result


async def run_stream_session(
    task: Any,
    res: Resources,
    cursor: Any,
    item_timeout: float | None,
    interrupt: Interrupt | None,
    commit: Commit,
) -> tuple[bool, Any]:
    """The engine path (`Workflow.register_stream`): open at ``cursor``, drive windows,
    ``await commit(cursor)`` for every committed cursor. Returns ``(False, next)`` or
    ``(True, None)`` when the interruption drained the stream."""
    it = await _open(task, res, cursor, interrupt)
    if it is None:
        return True, None
    try:
        kind, result = await _consume(task, res, it, item_timeout, interrupt, commit)
    finally:
        await _close(it)
    return kind == CANCELLED, result
