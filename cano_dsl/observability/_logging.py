"""`LoggingObserver`: cano's `TracingObserver` events as standard-library log records
(REFERENCE §11.1)."""

from __future__ import annotations

import logging
from typing import Any

from .._observer import WorkflowObserver

__all__ = ["LoggingObserver"]

UNKNOWN_STATE_MESSAGE = (
    "checkpoint row references a state not registered on the current workflow "
    "— dropped from rehydrated path"
)


class LoggingObserver(WorkflowObserver):
    """Logs one record per hook on ``logger`` (default: the ``cano_dsl.observer``
    logger), with cano's messages and levels:

    | hook | level | message | fields |
    |---|---|---|---|
    | state enter | DEBUG | workflow entered state | state |
    | task start | DEBUG | task started | task_id |
    | task success | INFO | task succeeded | task_id |
    | task failure | ERROR | task failed | task_id, error |
    | retry | WARNING | task retry | task_id, attempt |
    | circuit open | WARNING | circuit breaker rejected task | task_id |
    | checkpoint | DEBUG | checkpoint appended | workflow_id, sequence |
    | resume | INFO | workflow resumed from checkpoint | workflow_id, sequence |
    | total timeout | WARNING | workflow total timeout exceeded | elapsed_ms, limit_ms |
    | cancelled | WARNING | workflow cancelled | state |
    | clear failed | WARNING | checkpoint log clear failed | workflow_id, error |
    | unknown resume state | WARNING | checkpoint row references a state not ... | (1) |

    (1) ``workflow_id``, ``sequence``, ``unknown_state_label``.

    The rendered message is the text followed by ``key=value`` pairs; each record also
    carries the bare text as ``record.cano_event`` and the fields as the dict
    ``record.cano_fields``, for structured handlers. Disabled levels cost one
    ``isEnabledFor`` check.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("cano_dsl.observer")

    def __repr__(self) -> str:
        return f"LoggingObserver(logger={self.logger.name!r})"

    def _emit(self, level: int, event: str, **fields: Any) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        shown = " ".join(f"{k}={v}" for k, v in fields.items())
        logger.log(
            level,
            "%s %s" if shown else "%s%s",
            event,
            shown,
            extra={"cano_event": event, "cano_fields": fields},
        )

    def on_state_enter(self, state: str) -> None:
        self._emit(logging.DEBUG, "workflow entered state", state=state)

    def on_task_start(self, task_id: str) -> None:
        self._emit(logging.DEBUG, "task started", task_id=task_id)

    def on_task_success(self, task_id: str) -> None:
        self._emit(logging.INFO, "task succeeded", task_id=task_id)

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self._emit(logging.ERROR, "task failed", task_id=task_id, error=error)

    def on_retry(self, task_id: str, attempt: int) -> None:
        self._emit(logging.WARNING, "task retry", task_id=task_id, attempt=attempt)

    def on_circuit_open(self, task_id: str) -> None:
        self._emit(logging.WARNING, "circuit breaker rejected task", task_id=task_id)

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self._emit(logging.DEBUG, "checkpoint appended", workflow_id=workflow_id, sequence=sequence)

    def on_resume(self, workflow_id: str, last_sequence: int) -> None:
        self._emit(
            logging.INFO,
            "workflow resumed from checkpoint",
            workflow_id=workflow_id,
            sequence=last_sequence,
        )

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self._emit(
            logging.WARNING,
            "workflow total timeout exceeded",
            elapsed_ms=int(elapsed * 1000),
            limit_ms=int(limit * 1000),
        )

    def on_cancelled(self, state: str) -> None:
        self._emit(logging.WARNING, "workflow cancelled", state=state)

    def on_checkpoint_clear_failed(self, workflow_id: str, error: BaseException) -> None:
        self._emit(
            logging.WARNING, "checkpoint log clear failed", workflow_id=workflow_id, error=error
        )

    def on_unknown_resume_state(self, workflow_id: str, sequence: int, state: str) -> None:
        self._emit(
            logging.WARNING,
            UNKNOWN_STATE_MESSAGE,
            workflow_id=workflow_id,
            sequence=sequence,
            unknown_state_label=state,
        )
