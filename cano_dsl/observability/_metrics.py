"""`MetricsObserver`: the observer-emitted metrics of cano (REFERENCE §11.3) on an
OpenTelemetry meter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._observer import WorkflowObserver
from ._otel import require

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

_api = require("opentelemetry.metrics", "MetricsObserver")

__all__ = ["METRIC_NAMES", "MetricsObserver"]

STATE_ENTERS = "cano_state_enters_total"
TASK_RUNS = "cano_observed_task_runs_total"
TASK_RETRIES = "cano_task_retries_total"
CIRCUIT_OPEN_EVENTS = "cano_circuit_open_events_total"
CHECKPOINTS = "cano_checkpoints_observed_total"
RESUMES = "cano_resumes_total"
TIMEOUTS = "cano_observed_workflow_timeouts_total"
TIMEOUT_LIMIT = "cano_observed_workflow_timeout_limit_seconds"
TIMEOUT_ELAPSED = "cano_observed_workflow_timeout_elapsed_seconds"
UNKNOWN_RESUME_STATES = "cano_observed_unknown_resume_states_total"
CANCELLATIONS = "cano_observed_cancellations_total"
CHECKPOINT_CLEARS = "cano_checkpoint_clears_total"

METRIC_NAMES: tuple[str, ...] = (
    STATE_ENTERS,
    TASK_RUNS,
    TASK_RETRIES,
    CIRCUIT_OPEN_EVENTS,
    CHECKPOINTS,
    RESUMES,
    TIMEOUTS,
    TIMEOUT_LIMIT,
    TIMEOUT_ELAPSED,
    UNKNOWN_RESUME_STATES,
    CANCELLATIONS,
    CHECKPOINT_CLEARS,
)
"""Every instrument a `MetricsObserver` creates."""


def _library_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("cano-dsl")
    except metadata.PackageNotFoundError:
        return "0"


class MetricsObserver(WorkflowObserver):
    """Counts what the hooks report, as OpenTelemetry counters and histograms.

    ``meter`` defaults to ``opentelemetry.metrics.get_meter("cano_dsl")`` (the global
    meter provider; a no-op until the application installs one). The instruments are
    created once, here, with cano's names and labels:

    ==============================================  ===========  ======================
    name                                            kind         attributes
    ==============================================  ===========  ======================
    cano_state_enters_total                         counter      state
    cano_observed_task_runs_total                   counter      task, outcome
    cano_task_retries_total                         counter      task
    cano_circuit_open_events_total                  counter      task
    cano_checkpoints_observed_total                 counter      —
    cano_resumes_total                              counter      —
    cano_observed_workflow_timeouts_total           counter      —
    cano_observed_workflow_timeout_limit_seconds    histogram    —
    cano_observed_workflow_timeout_elapsed_seconds  histogram    —
    cano_observed_unknown_resume_states_total       counter      —
    cano_observed_cancellations_total               counter      —
    cano_checkpoint_clears_total                    counter      result="err"
    ==============================================  ===========  ======================

    ``outcome`` is ``completed`` or ``failed``. ``on_task_start`` records nothing: the
    runs counter already counts every dispatch by its outcome. Instruments are
    thread-safe, so one observer may serve many concurrent runs.
    """

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is None:
            meter = _api.get_meter("cano_dsl", _library_version())
        self.meter: Meter = meter
        m = meter
        self._state_enters = m.create_counter(
            STATE_ENTERS, unit="{entry}", description="FSM state entries, by state"
        )
        self._task_runs = m.create_counter(
            TASK_RUNS,
            unit="{run}",
            description="Task dispatches, by task and outcome (completed|failed)",
        )
        self._retries = m.create_counter(
            TASK_RETRIES, unit="{retry}", description="Retry attempts, by task"
        )
        self._circuit_open = m.create_counter(
            CIRCUIT_OPEN_EVENTS,
            unit="{rejection}",
            description="Times a task was short-circuited by an open breaker, by task",
        )
        self._checkpoints = m.create_counter(
            CHECKPOINTS, unit="{row}", description="Checkpoint rows durably appended"
        )
        self._resumes = m.create_counter(
            RESUMES, unit="{resume}", description="Workflow resumes from a checkpoint store"
        )
        self._timeouts = m.create_counter(
            TIMEOUTS, unit="{timeout}", description="Workflow total-timeout trips"
        )
        self._timeout_limit = m.create_histogram(
            TIMEOUT_LIMIT,
            unit="s",
            description="Configured total-timeout budget when the trip fired",
        )
        self._timeout_elapsed = m.create_histogram(
            TIMEOUT_ELAPSED, unit="s", description="Elapsed time at the total-timeout trip"
        )
        self._unknown_states = m.create_counter(
            UNKNOWN_RESUME_STATES,
            unit="{row}",
            description="Checkpoint rows naming a state the resumed workflow no longer has",
        )
        self._cancellations = m.create_counter(
            CANCELLATIONS, unit="{run}", description="Workflow runs cancelled"
        )
        self._clears = m.create_counter(
            CHECKPOINT_CLEARS,
            unit="{clear}",
            description="Checkpoint log clears, by result (ok|err)",
        )

    def __repr__(self) -> str:
        return f"MetricsObserver(meter={self.meter!r})"

    def on_state_enter(self, state: str) -> None:
        self._state_enters.add(1, {"state": state})

    def on_task_success(self, task_id: str) -> None:
        self._task_runs.add(1, {"task": task_id, "outcome": "completed"})

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self._task_runs.add(1, {"task": task_id, "outcome": "failed"})

    def on_retry(self, task_id: str, attempt: int) -> None:
        self._retries.add(1, {"task": task_id})

    def on_circuit_open(self, task_id: str) -> None:
        self._circuit_open.add(1, {"task": task_id})

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self._checkpoints.add(1)

    def on_resume(self, workflow_id: str, last_sequence: int) -> None:
        self._resumes.add(1)

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self._timeouts.add(1)
        self._timeout_limit.record(limit)
        self._timeout_elapsed.record(elapsed)

    def on_cancelled(self, state: str) -> None:
        self._cancellations.add(1)

    def on_checkpoint_clear_failed(self, workflow_id: str, error: BaseException) -> None:
        self._clears.add(1, {"result": "err"})

    def on_unknown_resume_state(self, workflow_id: str, sequence: int, state: str) -> None:
        self._unknown_states.add(1)
