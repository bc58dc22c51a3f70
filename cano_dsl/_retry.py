"""The one retry loop (REFERENCE §2.5), used by every dispatch that retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from . import _clock, _metrics
from ._config import TaskConfig
from ._errors import CircuitOpenError, RetryExhausted, TaskTimeout
from ._observer import notify

__all__ = ["is_final", "mark_final", "run_with_retries", "run_attempts"]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

_FINAL = "__cano_final__"


def mark_final(exc: E) -> E:
    """Flag ``exc`` as final: the retry loop raises it at once, raw, without retrying
    (a saga step that was already undone inline must not run again)."""
    setattr(exc, _FINAL, True)
    return exc


def is_final(exc: BaseException) -> bool:
    """Whether ``exc`` was flagged by `mark_final`."""
    return getattr(exc, _FINAL, False) is True


_ATTEMPT_TIMEOUT_MESSAGE = "task attempt exceeded attempt_timeout"


async def _one_attempt(
    fn: Callable[[], Awaitable[T]], timeout: float | None, timeout_message: str
) -> T:
    if timeout is None:
        return await fn()
    with anyio.move_on_after(timeout) as scope:
        return await fn()
    if scope.cancelled_caught:
        raise TaskTimeout(timeout_message)
    raise AssertionError("unreachable: attempt ended without a result")  # pragma: no cover


async def run_with_retries(
    config: TaskConfig,
    fn: Callable[[], Awaitable[T]],
    *,
    task_id: str = "<task>",
    observers: Sequence[Any] = (),
    timeout_message: str = _ATTEMPT_TIMEOUT_MESSAGE,
) -> T:
    """Run ``fn`` under ``config``: breaker admission, per-attempt timeout, retries with
    the mode's delays, ``on_retry`` before each sleep. One attempt returns the raw error;
    several return `RetryExhausted` (``__cause__`` = the last error). An open circuit, and
    an error flagged by `mark_final`, is raised raw and stops the remaining retries at
    once."""
    return await run_attempts(
        config, fn, 0, task_id=task_id, observers=observers, timeout_message=timeout_message
    )


async def run_attempts(
    config: TaskConfig,
    fn: Callable[[], Awaitable[T]],
    failed_so_far: int,
    *,
    task_id: str = "<task>",
    observers: Sequence[Any] = (),
    timeout_message: str = _ATTEMPT_TIMEOUT_MESSAGE,
    first_error: BaseException | None = None,
) -> T:
    """The retry loop, entered after ``failed_so_far`` attempts already failed (the
    engine's fast path runs attempt 1 inline and hands over here on its failure)."""
    mode = config.retry_mode
    max_attempts = mode.max_attempts
    breaker = config.circuit_breaker
    timeout = config.attempt_timeout
    attempt = failed_so_far
    sink = _metrics.SINK
    if attempt:
        assert first_error is not None
        if sink is not None:
            sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, attempt, _metrics.OUTCOME_FAILED)
        if is_final(first_error):
            raise first_error
        if attempt >= max_attempts:
            if max_attempts <= 1:
                raise first_error
            raise RetryExhausted(attempt, first_error) from first_error
        if observers:
            notify(observers, "on_retry", task_id, attempt)
        delay = mode.delay_for_attempt(attempt - 1)
        if delay:
            await _clock.sleep(delay)
    while True:
        permit = None
        if breaker is not None:
            try:
                permit = breaker.try_acquire()
            except CircuitOpenError:
                if sink is not None:
                    sink.counter(_metrics.CIRCUIT_REJECTIONS_TOTAL, 1, _metrics.NO_LABELS)
                if observers:
                    notify(observers, "on_circuit_open", task_id)
                raise
        try:
            result = await _one_attempt(fn, timeout, timeout_message)
        except Exception as exc:
            if permit is not None:
                permit.record_failure()
            if sink is not None:
                sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, 1, _metrics.OUTCOME_FAILED)
            if is_final(exc):
                raise
            attempt += 1
            if attempt >= max_attempts:
                if max_attempts <= 1:
                    raise
                raise RetryExhausted(attempt, exc) from exc
            if observers:
                notify(observers, "on_retry", task_id, attempt)
            delay = mode.delay_for_attempt(attempt - 1)
            if delay:
                await _clock.sleep(delay)
            continue
        except BaseException:
            # a cancelled attempt counts as a failure of the breaker's session
            if permit is not None:
                permit.record_failure()
            raise
        if permit is not None:
            permit.record_success()
        if sink is not None:
            sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)
        return result
