"""Helpers for testing workflows: a recording observer, resource and checkpoint-store
doubles, a mock clock, compensation assertions and a store conformance suite. The
pytest plugin (``cano_dsl.testing._plugin``) exposes them as fixtures.
``cano_dsl.testing.strategies`` property-tests a workflow under drawn failures, process
deaths and completion orders (hypothesis, from the ``test`` extra)."""

from __future__ import annotations

from ._faults import PanicOnAttempt as PanicOnAttempt
from ._faults import panic_on_attempt as panic_on_attempt
from ._helpers import TestResources as TestResources
from ._helpers import assert_compensation_ran as assert_compensation_ran
from ._metrics import RecordingMetricsSink as RecordingMetricsSink
from ._observer import Cancelled as Cancelled
from ._observer import Checkpoint as Checkpoint
from ._observer import CircuitOpen as CircuitOpen
from ._observer import Event as Event
from ._observer import RecordingObserver as RecordingObserver
from ._observer import Resume as Resume
from ._observer import Retry as Retry
from ._observer import StateEntered as StateEntered
from ._observer import TaskFailed as TaskFailed
from ._observer import TaskStarted as TaskStarted
from ._observer import TaskSucceeded as TaskSucceeded

# --- checkpoint exports ---
from ._checkpoint import InMemoryCheckpointStore as InMemoryCheckpointStore
# --- end checkpoint exports ---

# --- clock exports ---
from ._clock import MockClock as MockClock
# --- end clock exports ---

__all__ = [
    "Cancelled",
    "Checkpoint",
    "CircuitOpen",
    "Event",
    "InMemoryCheckpointStore",
    "MockClock",
    "PanicOnAttempt",
    "RecordingMetricsSink",
    "RecordingObserver",
    "Resume",
    "Retry",
    "StateEntered",
    "TaskFailed",
    "TaskStarted",
    "TaskSucceeded",
    "TestResources",
    "assert_compensation_ran",
    "panic_on_attempt",
]
