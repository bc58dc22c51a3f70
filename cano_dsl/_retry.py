"""The one retry loop (REFERENCE §2.5), used by every dispatch that retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from . import _clock, _metrics, _spans
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


def _admit(breaker: Any, sink: Any, observers: Sequence[Any], task_id: str) -> Any:
    """The breaker's permit for one attempt (``None`` without a breaker). An open circuit
    is counted, reported (``on_circuit_open``) and raised."""
    if breaker is None:
        return None
    try:
        return breaker.try_acquire()
    except CircuitOpenError:
        if sink is not None:
            sink.counter(_metrics.CIRCUIT_REJECTIONS_TOTAL, 1, _metrics.NO_LABELS)
        if observers:
            notify(observers, "on_circuit_open", task_id)
        raise


def _failed(permit: Any, sink: Any) -> None:
    """An attempt failed: tell the breaker's permit (if any) and count it."""
    if permit is not None:
        permit.record_failure()
    if sink is not None:
        sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, 1, _metrics.OUTCOME_FAILED)


def _completed(permit: Any, sink: Any) -> None:
    """An attempt returned: tell the breaker's permit (if any) and count it."""
    if permit is not None:
        permit.record_success()
    if sink is not None:
        sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)


def _raise_if_done(exc: BaseException, attempt: int, max_attempts: int) -> None:
    """End the loop after ``attempt`` failed attempts, the last with ``exc``: ``exc`` raw
    when flagged final or when only one attempt is allowed, `RetryExhausted` once the
    attempts are spent. Returns when another attempt is due."""
    if is_final(exc):
        raise exc
    if attempt >= max_attempts:
        if max_attempts <= 1:
            raise exc
        raise RetryExhausted(attempt, exc) from exc


async def _before_next(
    observers: Sequence[Any], task_id: str, attempt: int, delay: float | None
) -> None:
    """``on_retry`` for the attempt to come, then the mode's delay before it."""
    if observers:
        notify(observers, "on_retry", task_id, attempt)
    if delay:
        await _clock.sleep(delay)


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
    once.

    In a traced run (see `cano_dsl._spans`) the loop is a ``run_with_retries`` span
    with one ``task_attempt`` child per attempt."""
    found = _spans.TRACER.get()
    if found is not None:
        return await _traced_attempts(found, config, fn, task_id, observers, timeout_message)
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
        _raise_if_done(first_error, attempt, max_attempts)
        await _before_next(observers, task_id, attempt, mode.delay_for_attempt(attempt - 1))
    while True:
        permit = _admit(breaker, sink, observers, task_id)
        try:
            result = await _one_attempt(fn, timeout, timeout_message)
        except Exception as exc:
            _failed(permit, sink)
            attempt += 1
            _raise_if_done(exc, attempt, max_attempts)
            await _before_next(observers, task_id, attempt, mode.delay_for_attempt(attempt - 1))
            continue
        except BaseException:
            # a cancelled attempt counts as a failure of the breaker's session
            if permit is not None:
                permit.record_failure()
            raise
        _completed(permit, sink)
        return result


async def _traced_attempts(
    tracer: Any,
    config: TaskConfig,
    fn: Callable[[], Awaitable[T]],
    task_id: str,
    observers: Sequence[Any],
    timeout_message: str,
) -> T:
    """`run_attempts` from the first attempt, with cano's spans: ``run_with_retries``
    {max_attempts} around the loop, ``task_attempt`` {attempt, max_attempts, outcome,
    retry_delay_seconds} around each attempt (the breaker's admission included; the
    sleep before the next attempt is outside it)."""
    mode = config.retry_mode
    max_attempts = mode.max_attempts
    breaker = config.circuit_breaker
    timeout = config.attempt_timeout
    attempt = 0
    sink = _metrics.SINK
    with tracer.start_as_current_span(_spans.RETRIES, attributes={"max_attempts": max_attempts}):
        while True:
            delay: float | None = None
            with tracer.start_as_current_span(
                _spans.ATTEMPT,
                attributes={"attempt": attempt + 1, "max_attempts": max_attempts},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    permit = _admit(breaker, sink, observers, task_id)
                except CircuitOpenError as exc:
                    span.set_attribute("outcome", "circuit_open")
                    span.set_status(_spans.error_status(exc))
                    raise
                try:
                    result = await _one_attempt(fn, timeout, timeout_message)
                except Exception as exc:
                    _failed(permit, sink)
                    span.set_attribute(
                        "outcome", "timed_out" if isinstance(exc, TaskTimeout) else "failed"
                    )
                    span.record_exception(exc)
                    span.set_status(_spans.error_status(exc))
                    attempt += 1
                    _raise_if_done(exc, attempt, max_attempts)
                    delay = mode.delay_for_attempt(attempt - 1)
                    span.set_attribute("retry_delay_seconds", delay or 0.0)
                except BaseException:
                    span.set_attribute("outcome", "cancelled")
                    if permit is not None:
                        permit.record_failure()
                    raise
                else:
                    span.set_attribute("outcome", "completed")
                    _completed(permit, sink)
                    return result
            await _before_next(observers, task_id, attempt, delay)
