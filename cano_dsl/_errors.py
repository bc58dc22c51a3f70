"""The exception tree of cano_dsl.

Every error the library raises is a :class:`CanoError`. Each carries a ``category``
string (the categories of the Rust original) and a ``message``; ``str(err)`` gives
the original's display text.

```
Exception
 └── CanoError                          category "generic"
      ├── TaskExecutionError            "task_execution"
      ├── StoreError                    "store"
      │    ├── KeyNotFound              (also KeyError)
      │    ├── TypeMismatch             (also TypeError)
      │    └── AppendTypeMismatch       (also TypeError)
      ├── WorkflowError                 "workflow"
      ├── ConfigurationError            "configuration"   (also ValueError)
      │    └── TaskDefinitionError      (also TypeError)
      ├── RetryExhausted                "retry_exhausted"
      ├── TaskTimeout                   "timeout"          (also TimeoutError)
      ├── WorkflowTimeout               "workflow_timeout"
      ├── WorkflowCancelled             "cancelled"
      ├── CircuitOpenError              "circuit_open"
      ├── RateLimited                   "rate_limited"
      ├── CheckpointStoreError          "checkpoint_store"
      │    ├── CheckpointConflict       a row already at (workflow_id, sequence)
      │    └── RunClaimedError          the run is being run elsewhere (claimed)
      ├── CompensationFailed            "compensation_failed"
      ├── OrphanedCompensation          "orphaned_compensation"
      ├── ResourceNotFound              "resource_not_found"     (also KeyError)
      ├── ResourceTypeMismatch          "resource_type_mismatch" (also TypeError)
      ├── ResourceDuplicateKey          "resource_duplicate_key" (also KeyError)
      ├── WorkflowVersionMismatch       "workflow_version_mismatch"
      └── StateFailure                  outer "with_state_context"; ``category`` is the cause's
```

Any other ``Exception`` raised by a user's task is a task failure of category
``"task_execution"``. ``BaseException``s that are not ``Exception`` are never caught.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AppendTypeMismatch",
    "CanoError",
    "CheckpointConflict",
    "CheckpointStoreError",
    "CircuitOpenError",
    "CompensationFailed",
    "ConfigurationError",
    "KeyNotFound",
    "OrphanedCompensation",
    "RateLimited",
    "ResourceDuplicateKey",
    "ResourceNotFound",
    "ResourceTypeMismatch",
    "RetryExhausted",
    "RunClaimedError",
    "StateFailure",
    "StoreError",
    "TaskDefinitionError",
    "TaskExecutionError",
    "TaskTimeout",
    "TypeMismatch",
    "WorkflowCancelled",
    "WorkflowError",
    "WorkflowTimeout",
    "WorkflowVersionMismatch",
    "attempt_of",
    "category_of",
    "wrap_with_state",
]


def _rebuild(cls: type[CanoError], state: dict[str, Any], args: tuple[Any, ...]) -> CanoError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    err.args = args
    return err


class CanoError(Exception):
    """Root of every error raised by cano_dsl."""

    category: str = "generic"
    _prefix: str = "Error: "

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self._prefix}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy(), self.args))

    @property
    def outer_category(self) -> str:
        """The category of this very error, without looking through a `StateFailure`."""
        return type(self).category


class TaskExecutionError(CanoError):
    """A task failed: raised by user code or by the engine for a task-level defect."""

    category = "task_execution"
    _prefix = "Task execution error: "


class StoreError(CanoError):
    """A `MemoryStore` operation failed."""

    category = "store"
    _prefix = "Store error: "


class KeyNotFound(StoreError, KeyError):
    """The key is not in the store."""

    _prefix = "Store error: Key not found: "

    def __init__(self, key: object) -> None:
        StoreError.__init__(self, f"Key '{key}' not found in store")
        self.key = key

    def __str__(self) -> str:  # KeyError would repr() the message
        return CanoError.__str__(self)


class TypeMismatch(StoreError, TypeError):
    """The stored value is not of the requested type."""

    _prefix = "Store error: Type mismatch: "

    def __init__(self, key: object, expected: object = None) -> None:
        StoreError.__init__(self, f"Cannot downcast value for key '{key}' to requested type")
        self.key = key
        self.expected = expected


class AppendTypeMismatch(StoreError, TypeError):
    """`append` onto a value that is not a list."""

    _prefix = "Store error: Append type mismatch: "

    def __init__(self, key: object) -> None:
        StoreError.__init__(self, f"Cannot append to key '{key}': existing value is not a list")
        self.key = key


class WorkflowError(CanoError):
    """The state machine itself failed: a missing handler, a join not met, a bad result."""

    category = "workflow"
    _prefix = "Workflow error: "


class ConfigurationError(CanoError, ValueError):
    """Bad input rejected at the earliest point: construction, registration, validation."""

    category = "configuration"
    _prefix = "Configuration error: "


class TaskDefinitionError(ConfigurationError, TypeError):
    """A decorated class or function does not have the shape its decorator requires."""


class RetryExhausted(CanoError):
    """Every attempt of a multi-attempt retry policy failed; ``__cause__`` is the last error."""

    category = "retry_exhausted"

    def __init__(self, attempts: int, last: BaseException | None = None) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(_message_of(last) if last is not None else "")
        if last is not None:
            self.__cause__ = last

    def __str__(self) -> str:
        return f"Retry exhausted after {self.attempts} attempt(s): {self.last}"

    def __repr__(self) -> str:
        return f"RetryExhausted(attempts={self.attempts}, last={self.last!r})"


class TaskTimeout(CanoError, TimeoutError):
    """An attempt, a compensation or a stream item exceeded its time bound."""

    category = "timeout"
    _prefix = "Timeout error: "

    def __str__(self) -> str:
        return CanoError.__str__(self)


class WorkflowTimeout(CanoError):
    """The workflow's total timeout elapsed. ``elapsed`` and ``limit`` are float seconds."""

    category = "workflow_timeout"

    def __init__(self, elapsed: float, limit: float) -> None:
        self.elapsed = float(elapsed)
        self.limit = float(limit)
        super().__init__("workflow total timeout exceeded")

    def __str__(self) -> str:
        return (
            f"Workflow total timeout exceeded: elapsed={self.elapsed:.3f}s limit={self.limit:.3f}s"
        )

    def __repr__(self) -> str:
        return f"WorkflowTimeout(elapsed={self.elapsed!r}, limit={self.limit!r})"


class WorkflowCancelled(CanoError):
    """The run's `CancellationToken` fired."""

    category = "cancelled"

    def __init__(self, message: str = "workflow cancelled") -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return "Workflow cancelled"


class CircuitOpenError(CanoError):
    """A circuit breaker rejected the call."""

    category = "circuit_open"
    _prefix = "Circuit open: "


class RateLimited(CanoError):
    """A `MultiRateLimiter` tier rejected the call. ``retry_after`` is float seconds."""

    category = "rate_limited"

    def __init__(self, tier: str, retry_after: float) -> None:
        self.tier = tier
        self.retry_after = float(retry_after)
        super().__init__("rate limited")

    def __str__(self) -> str:
        return f"Rate limited by tier `{self.tier}`: retry after {self.retry_after:.3f}s"

    def __repr__(self) -> str:
        return f"RateLimited(tier={self.tier!r}, retry_after={self.retry_after!r})"


class CheckpointStoreError(CanoError):
    """A checkpoint store failed, or a checkpointing precondition was not met."""

    category = "checkpoint_store"
    _prefix = "Checkpoint store error: "


class CheckpointConflict(CheckpointStoreError):
    """A store refused a row because ``(workflow_id, sequence)`` already has one: some
    other writer is extending this run's log. A run that meets it stops with it and
    neither compensates nor clears (the log is the other writer's)."""

    def __init__(self, workflow_id: str, sequence: int, message: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.sequence = sequence
        super().__init__(
            message
            if message is not None
            else f"checkpoint conflict: workflow {workflow_id} already has a row at sequence "
            f"{sequence}; resume the existing run (resume_from) or clear it before starting "
            "a new one"
        )


class RunClaimedError(CheckpointStoreError):
    """``orchestrate`` / ``resume_from`` found the run claimed by another process or
    task: it ran nothing (no resource setup, no state, no compensation, no clear).
    ``detail`` says who holds it ("by another process, ..."), when the store knows."""

    def __init__(self, workflow_id: str, detail: str = "") -> None:
        self.workflow_id = workflow_id
        self.detail = detail
        by = detail or "by another process or task"
        super().__init__(
            f"workflow run {workflow_id!r} is being run elsewhere (claimed {by}); wait for "
            "it to finish, or resume it after that process has died"
        )


class OrphanedCompensation(CanoError):
    """A completed saga step could not be compensated; its output blob is kept."""

    category = "orphaned_compensation"

    def __init__(self, task_id: str, blob: bytes) -> None:
        self.task_id = task_id
        self.blob = bytes(blob)
        super().__init__(f"orphaned compensation for task {task_id!r}")

    def __str__(self) -> str:
        return (
            f"No compensator registered for task {self.task_id!r} — output_blob "
            f"({len(self.blob)} bytes) was kept for manual recovery"
        )

    def __repr__(self) -> str:
        return f"OrphanedCompensation(task_id={self.task_id!r}, blob={self.blob!r})"


class CompensationFailed(CanoError):
    """A rollback was dirty. ``errors[0]`` is the original failure, then each
    compensation error in drain order. Nested `CompensationFailed`s are flattened."""

    category = "compensation_failed"
    errors: list[BaseException]

    def __init__(self, errors: Sequence[BaseException]) -> None:
        flat: list[BaseException] = []
        for e in errors:
            if isinstance(e, CompensationFailed):
                flat.extend(e.errors)
            else:
                flat.append(e)
        self.errors = flat
        super().__init__(_message_of(flat[0]) if flat else "")
        if flat:
            self.__cause__ = flat[0]

    def __str__(self) -> str:
        parts = [f"Compensation failed ({len(self.errors)} error(s))"]
        if self.errors:
            parts.append(f"original: {self.errors[0]}")
        for i, e in enumerate(self.errors[1:], 1):
            parts.append(f"compensation #{i}: {e}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"CompensationFailed(errors={self.errors!r})"


class ResourceNotFound(CanoError, KeyError):
    """No resource under that key."""

    category = "resource_not_found"
    _prefix = "Resource not found: "

    def __str__(self) -> str:
        return CanoError.__str__(self)


class ResourceTypeMismatch(CanoError, TypeError):
    """The resource under that key is not of the requested type."""

    category = "resource_type_mismatch"
    _prefix = "Resource type mismatch: "


class ResourceDuplicateKey(CanoError, KeyError):
    """A resource is already inserted under that key."""

    category = "resource_duplicate_key"
    _prefix = "Resource duplicate key: "

    def __str__(self) -> str:
        return CanoError.__str__(self)


class WorkflowVersionMismatch(CanoError):
    """The checkpoint log was written by another workflow version."""

    category = "workflow_version_mismatch"

    def __init__(self, stored: int, expected: int) -> None:
        self.stored = stored
        self.expected = expected
        super().__init__(f"workflow version mismatch: stored={stored}, expected={expected}")

    def __str__(self) -> str:
        return f"Workflow version mismatch: stored={self.stored}, expected={self.expected}"

    def __repr__(self) -> str:
        return f"WorkflowVersionMismatch(stored={self.stored!r}, expected={self.expected!r})"


def _label(state: object) -> str:
    return state.name if isinstance(state, enum.Enum) else str(state)


class StateFailure(CanoError):
    """A failure inside the state machine, with the state it happened in.

    ``state`` is the Enum member, ``attempt`` how many attempts ran (0 for a cancel, a
    total timeout or an open circuit), ``path`` the states entered (the failing one
    included) and ``error`` the underlying exception (also ``__cause__``). ``category``
    is the underlying error's category.
    """

    state: enum.Enum
    path: list[enum.Enum]

    def __init__(self, state: Any, attempt: int, path: Sequence[Any], error: BaseException) -> None:
        self.state = state
        self.attempt = attempt
        self.path = list(path)
        self.error = error
        super().__init__(_message_of(error))
        self.__cause__ = error

    @property
    def category(self) -> str:  # type: ignore[override]
        return category_of(self.error)

    @property
    def outer_category(self) -> str:
        return "with_state_context"

    def __str__(self) -> str:
        path = ", ".join(_label(s) for s in self.path)
        return (
            f"state={_label(self.state)} attempt={self.attempt} path=[{path}] "
            f"caused by: {self.error}"
        )

    def __repr__(self) -> str:
        return (
            f"StateFailure(state={self.state!r}, attempt={self.attempt!r}, "
            f"path={self.path!r}, error={self.error!r})"
        )


def _message_of(err: BaseException | None) -> str:
    if isinstance(err, CanoError):
        return err.message
    return str(err)


def category_of(err: BaseException) -> str:
    """The category of any exception: a `CanoError`'s own, else ``"task_execution"``."""
    if isinstance(err, CanoError):
        return err.category
    return "task_execution"


def attempt_of(err: BaseException) -> int:
    """The attempt number REFERENCE §13 derives from an error."""
    if isinstance(err, RetryExhausted):
        return err.attempts
    if isinstance(err, (CircuitOpenError, WorkflowTimeout, WorkflowCancelled)):
        return 0
    if isinstance(err, StateFailure):
        return err.attempt
    return 1


def wrap_with_state(state: Any, path: Sequence[Any], err: BaseException) -> CanoError:
    """Wrap ``err`` in a `StateFailure` (idempotent; a `CompensationFailed` keeps its shape
    and gets only its first error wrapped)."""
    if isinstance(err, StateFailure):
        return err
    if isinstance(err, CompensationFailed):
        if err.errors and not isinstance(err.errors[0], StateFailure):
            first = err.errors[0]
            err.errors[0] = StateFailure(state, attempt_of(first), path, first)
            err.__cause__ = err.errors[0]
        return err
    return StateFailure(state, attempt_of(err), path, err)
