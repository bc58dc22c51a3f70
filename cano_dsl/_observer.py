"""`WorkflowObserver` and its isolated, ordered dispatch (REFERENCE §11.1)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

from ._errors import ConfigurationError

__all__ = ["HOOKS", "WorkflowObserver", "check_observer", "notify"]

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

    def on_teardown_timeout(self, resource: str, limit: float) -> None:
        """A resource's ``teardown`` overran its bound (``limit`` float seconds, see
        `Workflow.with_teardown_timeout`) and was abandoned; ``resource`` is its key (a
        str key itself, ``"EnumName.MEMBER"`` for an Enum key)."""


HOOKS: tuple[str, ...] = tuple(n for n in vars(WorkflowObserver) if n.startswith("on_"))
"""The names of every observer hook, in declaration order."""


def check_observer(observer: Any, where: str) -> None:
    """Raise `ConfigurationError` unless ``observer`` is an instance with at least one
    observer hook and every hook it has is a plain (synchronous) callable."""
    if isinstance(observer, type):
        raise ConfigurationError(
            f"{where}: got the class {observer.__qualname__}; pass an instance "
            f"(`{observer.__qualname__}()`)"
        )
    present = [h for h in HOOKS if getattr(observer, h, None) is not None]
    if not present:
        raise ConfigurationError(
            f"{where}: {observer!r} is not an observer; pass an object with at least one "
            "synchronous hook method (on_state_enter, on_task_failure, ...), e.g. a "
            "WorkflowObserver subclass instance"
        )
    for hook in present:
        method = getattr(observer, hook)
        if not callable(method):
            raise ConfigurationError(
                f"{where}: {type(observer).__qualname__}.{hook} is {method!r}, not a method"
            )
        if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
            raise ConfigurationError(
                f"{where}: {type(observer).__qualname__}.{hook} is `async def`; observer "
                "hooks are synchronous (the engine never awaits them): make it a plain "
                "`def` and hand slow work to a queue or a task of your own"
            )


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
