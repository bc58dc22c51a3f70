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
    task: Any,
    res: Any,
    task_id: str,
    blob: bytes,
    deadline: float | None,
    data: tuple[Any, Any] | None = None,
) -> BaseException | None:
    try:
        output = decode_output(task_id, blob)
        args: tuple[Any, ...] = (res, output)
        if data is not None:
            codec, tree = data
            args = (res, output, codec.from_tree(tree))
    except CanoError as exc:
        return exc
    except Exception as exc:
        return CanoError(f"run data for compensate of `{task_id}`: {exc}")
    attempt_timeout = constant(task, "config").attempt_timeout
    limit = math.inf if attempt_timeout is None else anyio.current_time() + attempt_timeout
    bound = min(limit, deadline if deadline is not None else math.inf)
    try:
        with anyio.CancelScope(deadline=bound) as scope:
            await task.compensate(*args)
    except Exception as exc:
        return exc
    if scope.cancelled_caught:
        if deadline is not None and bound == deadline and deadline <= limit:
            return TaskTimeout(f"compensate for {task_id} exceeded compensation deadline")
        return TaskTimeout(f"compensate for {task_id} exceeded attempt_timeout {attempt_timeout}")
    return None


async def drain_stack(
    stack: Sequence[tuple[Any, ...]],
    compensators: dict[str, Any],
    res: Any,
    budget: float | None,
    data: tuple[Any, frozenset[str]] | None = None,
) -> list[BaseException]:
    """Compensate every entry of ``stack`` from the top, never retrying and never
    cancelled (the caller shields it); return the errors in drain order. An entry is
    ``(task_id, output blob)`` or ``(task_id, output blob, run data tree at its
    completion)``; ``data`` = ``(codec, ids of compensators taking the run data)``."""
    errors: list[BaseException] = []
    deadline = None if budget is None else anyio.current_time() + budget
    entries = list(reversed(stack))
    sink = _metrics.SINK
    for pos, item in enumerate(entries):
        task_id, blob = item[0], item[1]
        if deadline is not None and anyio.current_time() >= deadline:
            left = entries[pos:]
            if sink is not None:
                sink.counter(_metrics.COMPENSATIONS_RUN_TOTAL, len(left), _metrics.RESULT_ERR)
            errors.extend(OrphanedCompensation(e[0], e[1]) for e in left)
            errors.append(
                TaskTimeout(f"compensation deadline elapsed; {len(left)} entries left unprocessed")
            )
            break
        task = compensators.get(task_id)
        if task is None:
            errors.append(OrphanedCompensation(task_id, blob))
            continue
        with_data = None
        if data is not None and task_id in data[1]:
            with_data = (data[0], item[2] if len(item) > 2 else None)
        err = await _compensate_one(task, res, task_id, blob, deadline, with_data)
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
