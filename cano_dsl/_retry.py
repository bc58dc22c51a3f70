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
                permit = None
                if breaker is not None:
                    try:
                        permit = breaker.try_acquire()
                    except CircuitOpenError as exc:
                        span.set_attribute("outcome", "circuit_open")
                        span.set_status(_spans.error_status(exc))
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
                    span.set_attribute(
                        "outcome", "timed_out" if isinstance(exc, TaskTimeout) else "failed"
                    )
                    span.record_exception(exc)
                    span.set_status(_spans.error_status(exc))
                    if is_final(exc):
                        raise
                    attempt += 1
                    if attempt >= max_attempts:
                        if max_attempts <= 1:
                            raise
                        raise RetryExhausted(attempt, exc) from exc
                    delay = mode.delay_for_attempt(attempt - 1)
                    span.set_attribute("retry_delay_seconds", delay or 0.0)
                except BaseException:
                    span.set_attribute("outcome", "cancelled")
                    if permit is not None:
                        permit.record_failure()
                    raise
                else:
                    span.set_attribute("outcome", "completed")
                    if permit is not None:
                        permit.record_success()
                    if sink is not None:
                        sink.counter(_metrics.TASK_ATTEMPTS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)
                    return result
            if observers:
                notify(observers, "on_retry", task_id, attempt)
            if delay:
                await _clock.sleep(delay)
