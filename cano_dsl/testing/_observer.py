"""`RecordingObserver`: an observer that records every event, with assertions."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterable
from typing import Any, Union

import attrs

from .._observer import WorkflowObserver

__all__ = [
    "Cancelled",
    "Checkpoint",
    "CircuitOpen",
    "Event",
    "RecordingObserver",
    "Resume",
    "Retry",
    "StateEntered",
    "TaskFailed",
    "TaskStarted",
    "TaskSucceeded",
]


@attrs.frozen
class StateEntered:
    """The run entered ``state`` (`WorkflowObserver.on_state_enter`)."""

    state: str
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""


@attrs.frozen
class TaskStarted:
    """An attempt of task ``task_id`` started (`WorkflowObserver.on_task_start`)."""

    task_id: str
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def state(self) -> str:
        """The original's field name for the task id."""
        return self.task_id


@attrs.frozen
class TaskSucceeded:
    """Task ``task_id`` finished successfully (`WorkflowObserver.on_task_success`)."""

    task_id: str
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def state(self) -> str:
        """The original's field name for the task id."""
        return self.task_id


@attrs.frozen
class TaskFailed:
    """Task ``task_id`` failed for good, after its retries
    (`WorkflowObserver.on_task_failure`)."""

    task_id: str
    error: str
    """``str()`` of the underlying error."""
    category: str = ""
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def state(self) -> str:
        """The original's field name for the task id."""
        return self.task_id


@attrs.frozen
class Retry:
    """Task ``task_id`` failed attempt ``attempt`` and will be retried
    (`WorkflowObserver.on_retry`)."""

    task_id: str
    attempt: int
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def state(self) -> str:
        """The original's field name for the task id."""
        return self.task_id


@attrs.frozen
class CircuitOpen:
    """Task ``task_id``'s circuit breaker refused an attempt
    (`WorkflowObserver.on_circuit_open`)."""

    task_id: str
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def state(self) -> str:
        """The original's field name for the task id."""
        return self.task_id


@attrs.frozen
class Checkpoint:
    """A checkpoint row ``sequence`` of ``workflow_id`` was persisted
    (`WorkflowObserver.on_checkpoint`)."""

    workflow_id: str
    sequence: int
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""


@attrs.frozen
class Resume:
    """``workflow_id`` resumed after row ``last_sequence`` (`WorkflowObserver.on_resume`)."""

    workflow_id: str
    last_sequence: int
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""

    @property
    def sequence(self) -> int:
        """The original's field name for the last persisted row's sequence."""
        return self.last_sequence


@attrs.frozen
class Cancelled:
    """The run was cancelled in ``state`` (`WorkflowObserver.on_cancelled`)."""

    state: str
    at: float = attrs.field(factory=time.monotonic, eq=False, repr=False, kw_only=True)
    """When it was recorded (`time.monotonic`); not part of equality."""


Event = Union[
    StateEntered,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    Retry,
    CircuitOpen,
    Checkpoint,
    Resume,
    Cancelled,
]
"""Every recorded event type (the original's ``RecordedEvent``)."""


def _label(value: Any) -> str:
    return value.name if isinstance(value, enum.Enum) else str(value)


class RecordingObserver(WorkflowObserver):
    """Records observer events in arrival order in ``events`` (frozen event objects).
    Thread-safe. Assertions accept labels or Enum members and raise `AssertionError`
    saying what is missing."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def _add(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    # hooks ---------------------------------------------------------------------
    def on_state_enter(self, state: str) -> None:
        self._add(StateEntered(state))

    def on_task_start(self, task_id: str) -> None:
        self._add(TaskStarted(task_id))

    def on_task_success(self, task_id: str) -> None:
        self._add(TaskSucceeded(task_id))

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        from .._errors import category_of

        self._add(TaskFailed(task_id, str(error), category_of(error)))

    def on_retry(self, task_id: str, attempt: int) -> None:
        self._add(Retry(task_id, attempt))

    def on_circuit_open(self, task_id: str) -> None:
        self._add(CircuitOpen(task_id))

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self._add(Checkpoint(workflow_id, sequence))

    def on_resume(self, workflow_id: str, last_sequence: int) -> None:
        self._add(Resume(workflow_id, last_sequence))

    def on_cancelled(self, state: str) -> None:
        self._add(Cancelled(state))

    # reading -------------------------------------------------------------------
    def states_entered(self) -> list[str]:
        """Labels of every state entered, in order (repeats included)."""
        return [e.state for e in self.events if isinstance(e, StateEntered)]

    def of_type(self, kind: type[Any]) -> list[Any]:
        """The recorded events of one class."""
        return [e for e in self.events if isinstance(e, kind)]

    def clear(self) -> None:
        """Forget the events recorded so far."""
        with self._lock:
            self.events.clear()

    def take(self) -> list[Event]:
        """The events so far; the recorder is emptied."""
        with self._lock:
            out, self.events = self.events, []
        return out

    # assertions ----------------------------------------------------------------
    def assert_path(self, expected: Iterable[Any]) -> None:
        """The states entered are exactly ``expected``, in order."""
        want = [_label(s) for s in expected]
        got = self.states_entered()
        if got != want:
            raise AssertionError(f"state path mismatch:\n  expected {want}\n  actual   {got}")

    def assert_completed_with(self, state: Any) -> None:
        """The last state entered is ``state``."""
        got = self.states_entered()
        want = _label(state)
        if not got or got[-1] != want:
            last = got[-1] if got else None
            raise AssertionError(f"expected the run to end in {want}, last state entered: {last}")

    def assert_all_states_entered(self, states: Iterable[Any]) -> None:
        """Every one of ``states`` was entered at least once."""
        seen = set(self.states_entered())
        missing: list[str] = []
        for s in states:
            lab = _label(s)
            if lab not in seen and lab not in missing:
                missing.append(lab)
        if missing:
            raise AssertionError(f"states never entered: {missing}")

    def assert_registered_states_entered(self, workflow: Any) -> None:
        """Every state with a handler in ``workflow`` was entered (a dead-state check;
        exit-only states are not required)."""
        self.assert_all_states_entered(workflow.registered_states())
