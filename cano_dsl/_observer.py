"""`WorkflowObserver` and its isolated, ordered dispatch (REFERENCE §11.1)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["WorkflowObserver", "notify"]

_log = logging.getLogger("cano_dsl.observer")


class WorkflowObserver:
    """Base class for observers. Every hook is a synchronous no-op; override the ones
    you need. Hooks are called in registration order; an exception raised by a hook is
    logged and never changes the run."""

    def on_state_enter(self, state: str) -> None:
        """A state was entered (before its checkpoint row and its task)."""

    def on_task_start(self, task_id: str) -> None:
        """A task (or split branch ``name[idx]``) started."""

    def on_task_success(self, task_id: str) -> None:
        """A task finished successfully, after its retries."""

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        """A task failed for good; ``error`` is the underlying exception."""

    def on_retry(self, task_id: str, attempt: int) -> None:
        """A failed attempt (1-based number ``attempt``) is about to be retried."""

    def on_circuit_open(self, task_id: str) -> None:
        """A circuit breaker rejected the task's attempt."""

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        """A checkpoint row was appended."""

    def on_resume(self, workflow_id: str, last_sequence: int) -> None:
        """A run was resumed from its checkpoint log."""

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        """The total timeout elapsed (float seconds)."""

    def on_cancelled(self, state: str) -> None:
        """The run was cancelled while in ``state``."""

    def on_checkpoint_clear_failed(self, workflow_id: str, error: BaseException) -> None:
        """Clearing the checkpoint log after a run failed (the run's result is unchanged)."""

    def on_unknown_resume_state(self, workflow_id: str, sequence: int, state: str) -> None:
        """A resumed log names a state this workflow no longer has."""


def notify(observers: Sequence[Any], hook: str, *args: Any) -> None:
    """Call ``hook(*args)`` on every observer in order, isolating each call."""
    for obs in observers:
        method = getattr(obs, hook, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:
            _log.exception("observer %r raised in %s; ignored", obs, hook)
