"""The saga drain: compensate completed steps in LIFO order after a failure
(REFERENCE §10)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import anyio

from .. import _metrics
from .._errors import (
    CanoError,
    CompensationFailed,
    OrphanedCompensation,
    TaskTimeout,
)
from ..tasks._decorate import constant

__all__ = ["drain_stack", "decode_output"]


def decode_output(name: str, blob: bytes) -> Any:
    """A compensation output blob back to the value ``compensate`` receives."""
    try:
        return json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CanoError(f"deserialize compensation output for `{name}`: {exc}") from exc


async def _compensate_one(
    task: Any, res: Any, task_id: str, blob: bytes, deadline: float | None
) -> BaseException | None:
    try:
        output = decode_output(task_id, blob)
    except CanoError as exc:
        return exc
    attempt_timeout = constant(task, "config").attempt_timeout
    limit = math.inf if attempt_timeout is None else anyio.current_time() + attempt_timeout
    bound = min(limit, deadline if deadline is not None else math.inf)
    try:
        with anyio.CancelScope(deadline=bound) as scope:
            await task.compensate(res, output)
    except Exception as exc:
        return exc
    if scope.cancelled_caught:
        if deadline is not None and bound == deadline and deadline <= limit:
            return TaskTimeout(f"compensate for {task_id} exceeded compensation deadline")
        return TaskTimeout(f"compensate for {task_id} exceeded attempt_timeout {attempt_timeout}")
    return None


async def drain_stack(
    stack: Sequence[tuple[str, bytes]],
    compensators: dict[str, Any],
    res: Any,
    budget: float | None,
) -> list[BaseException]:
    """Compensate every entry of ``stack`` from the top, never retrying and never
    cancelled (the caller shields it); return the errors in drain order."""
    errors: list[BaseException] = []
    deadline = None if budget is None else anyio.current_time() + budget
    entries = list(reversed(stack))
    sink = _metrics.SINK
    for pos, (task_id, blob) in enumerate(entries):
        if deadline is not None and anyio.current_time() >= deadline:
            left = entries[pos:]
            if sink is not None:
                sink.counter(_metrics.COMPENSATIONS_RUN_TOTAL, len(left), _metrics.RESULT_ERR)
            errors.extend(OrphanedCompensation(tid, b) for tid, b in left)
            errors.append(
                TaskTimeout(f"compensation deadline elapsed; {len(left)} entries left unprocessed")
            )
            break
        task = compensators.get(task_id)
        if task is None:
            errors.append(OrphanedCompensation(task_id, blob))
            continue
        err = await _compensate_one(task, res, task_id, blob, deadline)
        if sink is not None:
            sink.counter(_metrics.COMPENSATIONS_RUN_TOTAL, 1, _metrics.result(err is None))
        if err is not None:
            errors.append(err)
    if sink is not None and entries:
        clean = _metrics.COMPENSATION_CLEAN if not errors else _metrics.COMPENSATION_PARTIAL
        sink.counter(_metrics.COMPENSATION_DRAINS_TOTAL, 1, clean)
    return errors


def compensation_failed(original: BaseException, errors: list[BaseException]) -> CompensationFailed:
    return CompensationFailed([original, *errors])
