"""cano's always-on metrics (REFERENCE §11.3, "direct instrumentation").

The engine, the processing models, the resilience primitives and the scheduler emit
their metrics to one process-wide `MetricsSink`, or to nothing: with no sink installed
(the default) every emission site reads `SINK` once, finds ``None`` and does no other
work — no timing, no label tuples. Per-item and per-step loops read it once per run,
batch or window, never per item; a stream then adds to its item counter once per item,
as cano does (``install(sink, stream_items="window")`` makes that once per window).

Install a sink with `install` (or the `installed` context manager):
`cano_dsl.observability.OtelMetricsSink` forwards to OpenTelemetry and
`cano_dsl.testing.RecordingMetricsSink` keeps the values in memory. Labels are tuples
of ``(key, value)`` pairs; the bounded ones below are built once, here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol, runtime_checkable

from ._errors import ConfigurationError

__all__ = [
    "Labels",
    "MetricsSink",
    "SINK",
    "install",
    "installed",
    "uninstall",
]

Labels = tuple[tuple[str, str], ...]


@runtime_checkable
class MetricsSink(Protocol):
    """Where cano's always-on metrics go. Every method must be cheap, thread-safe and
    must not raise."""

    def counter(self, name: str, value: float, labels: Labels) -> None:
        """Add ``value`` (> 0) to the counter ``name`` with ``labels``."""

    def histogram(self, name: str, value: float, labels: Labels) -> None:
        """Record one observation ``value`` of the histogram ``name``."""

    def gauge_add(self, name: str, delta: float, labels: Labels) -> None:
        """Move the up-down gauge ``name`` by ``delta`` (+1 / -1)."""


SINK: MetricsSink | None = None
"""The installed sink; ``None`` means metrics are off (zero cost)."""

StreamItemCounting = Literal["item", "window"]

STREAM_ITEMS_PER_WINDOW = False
"""How ``cano_stream_items_total{result=ok}`` and ``cano_stream_windows_total`` are
counted (set by `install`): False, as cano, one ``ok`` per item as ``process_item``
succeeds and a window as its flush starts; True, ``ok`` items and the window together,
in one call, once ``flush_window`` has succeeded."""


def _stream_mode(stream_items: str) -> bool:
    if stream_items not in ("item", "window"):
        raise ConfigurationError(
            f"stream_items must be 'item' (count each processed item, as cano) or "
            f"'window' (count a window's items once it is flushed), got {stream_items!r}"
        )
    return stream_items == "window"


def install(sink: MetricsSink, *, stream_items: StreamItemCounting = "item") -> MetricsSink | None:
    """Route cano's metrics to ``sink`` process-wide; return the sink it replaces.

    ``stream_items`` chooses how a stream's items and windows are counted:

    - ``"item"`` (the default, as cano): ``cano_stream_items_total{result=ok}`` grows
      by one as each ``process_item`` succeeds, and ``cano_stream_windows_total`` as
      each window's ``flush_window`` is called, whether or not it then succeeds. A run
      failing on its third item has counted ``ok=2``.
    - ``"window"``: a window's ``ok`` items and the window itself are counted together,
      in one sink call each per window, once ``flush_window`` has returned: the items
      counted are the ones delivered. Fewer sink calls (one per window instead of one
      per item) for high-rate streams; a run failing on its third item (before any
      flush) has counted ``ok=0``.

    ``result=err`` is counted per failed item in both modes."""
    global SINK, STREAM_ITEMS_PER_WINDOW
    per_window = _stream_mode(stream_items)
    previous, SINK = SINK, sink
    STREAM_ITEMS_PER_WINDOW = per_window
    return previous


def uninstall() -> None:
    """Turn cano's metrics off (and the stream counting back to ``"item"``)."""
    global SINK, STREAM_ITEMS_PER_WINDOW
    SINK = None
    STREAM_ITEMS_PER_WINDOW = False


@contextmanager
def installed(
    sink: MetricsSink, *, stream_items: StreamItemCounting = "item"
) -> Iterator[MetricsSink]:
    """Install ``sink`` for the ``with`` block (``stream_items`` as in `install`), then
    restore the previous sink and counting."""
    global SINK, STREAM_ITEMS_PER_WINDOW
    previous_mode = STREAM_ITEMS_PER_WINDOW
    previous = install(sink, stream_items=stream_items)
    try:
        yield sink
    finally:
        SINK = previous
        STREAM_ITEMS_PER_WINDOW = previous_mode


# ----- names (cano/src/metrics.rs) -----

WORKFLOW_RUNS_TOTAL = "cano_workflow_runs_total"
WORKFLOW_DURATION_SECONDS = "cano_workflow_duration_seconds"
WORKFLOW_ACTIVE = "cano_workflow_active"
TASK_DURATION_SECONDS = "cano_task_duration_seconds"
TASK_ATTEMPTS_TOTAL = "cano_task_attempts_total"
CIRCUIT_REJECTIONS_TOTAL = "cano_circuit_rejections_total"
SPLIT_BRANCH_RESULTS_TOTAL = "cano_split_branch_results_total"
CIRCUIT_TRANSITIONS_TOTAL = "cano_circuit_transitions_total"
CIRCUIT_ACQUIRES_TOTAL = "cano_circuit_acquires_total"
CIRCUIT_OUTCOMES_TOTAL = "cano_circuit_outcomes_total"
POLL_ITERATIONS_TOTAL = "cano_poll_iterations_total"
BATCH_RUNS_TOTAL = "cano_batch_runs_total"
BATCH_ITEMS_TOTAL = "cano_batch_items_total"
STREAM_RUNS_TOTAL = "cano_stream_runs_total"
STREAM_WINDOWS_TOTAL = "cano_stream_windows_total"
STREAM_ITEMS_TOTAL = "cano_stream_items_total"
STEP_ITERATIONS_TOTAL = "cano_step_iterations_total"
CHECKPOINT_APPENDS_TOTAL = "cano_checkpoint_appends_total"
CHECKPOINT_CLEARS_TOTAL = "cano_checkpoint_clears_total"
COMPENSATIONS_RUN_TOTAL = "cano_compensations_run_total"
COMPENSATION_DRAINS_TOTAL = "cano_compensation_drains_total"
RATE_LIMITER_ACQUIRED_TOTAL = "cano_rate_limiter_acquired_total"
RATE_LIMITER_THROTTLED_TOTAL = "cano_rate_limiter_throttled_total"
RATE_LIMITER_WAIT_SECONDS = "cano_rate_limiter_wait_seconds"
RATE_LIMITER_TOKENS_CONSUMED_TOTAL = "cano_rate_limiter_tokens_consumed_total"
MULTI_RATE_LIMITER_THROTTLED_TOTAL = "cano_multi_rate_limiter_throttled_total"
SCHEDULER_FLOW_RUNS_TOTAL = "cano_scheduler_flow_runs_total"
SCHEDULER_FLOW_DURATION_SECONDS = "cano_scheduler_flow_duration_seconds"
SCHEDULER_FLOW_BACKOFF_TOTAL = "cano_scheduler_flow_backoff_total"
SCHEDULER_FLOW_TRIPPED_TOTAL = "cano_scheduler_flow_tripped_total"
SCHEDULER_ACTIVE_FLOWS = "cano_scheduler_active_flows"

COUNTERS: tuple[str, ...] = (
    WORKFLOW_RUNS_TOTAL,
    TASK_ATTEMPTS_TOTAL,
    CIRCUIT_REJECTIONS_TOTAL,
    SPLIT_BRANCH_RESULTS_TOTAL,
    CIRCUIT_TRANSITIONS_TOTAL,
    CIRCUIT_ACQUIRES_TOTAL,
    CIRCUIT_OUTCOMES_TOTAL,
    POLL_ITERATIONS_TOTAL,
    BATCH_RUNS_TOTAL,
    BATCH_ITEMS_TOTAL,
    STREAM_RUNS_TOTAL,
    STREAM_WINDOWS_TOTAL,
    STREAM_ITEMS_TOTAL,
    STEP_ITERATIONS_TOTAL,
    CHECKPOINT_APPENDS_TOTAL,
    CHECKPOINT_CLEARS_TOTAL,
    COMPENSATIONS_RUN_TOTAL,
    COMPENSATION_DRAINS_TOTAL,
    RATE_LIMITER_ACQUIRED_TOTAL,
    RATE_LIMITER_THROTTLED_TOTAL,
    RATE_LIMITER_TOKENS_CONSUMED_TOTAL,
    MULTI_RATE_LIMITER_THROTTLED_TOTAL,
    SCHEDULER_FLOW_RUNS_TOTAL,
    SCHEDULER_FLOW_BACKOFF_TOTAL,
    SCHEDULER_FLOW_TRIPPED_TOTAL,
)
HISTOGRAMS: tuple[str, ...] = (
    WORKFLOW_DURATION_SECONDS,
    TASK_DURATION_SECONDS,
    RATE_LIMITER_WAIT_SECONDS,
    SCHEDULER_FLOW_DURATION_SECONDS,
)
GAUGES: tuple[str, ...] = (WORKFLOW_ACTIVE, SCHEDULER_ACTIVE_FLOWS)

DESCRIPTIONS: dict[str, str] = {
    WORKFLOW_RUNS_TOTAL: "Workflow runs (orchestrate/resume_from), by outcome (completed|failed)",
    WORKFLOW_DURATION_SECONDS: "Wall-clock duration of a workflow run, by outcome",
    WORKFLOW_ACTIVE: "Workflows currently executing",
    TASK_DURATION_SECONDS: "Duration of a state-handler dispatch including retries, by state "
    "and kind (single|router|split|compensatable|stepped|stream)",
    TASK_ATTEMPTS_TOTAL: "Task attempts inside the retry loop, by outcome (completed|failed)",
    CIRCUIT_REJECTIONS_TOTAL: "Task attempts short-circuited by an open circuit breaker",
    SPLIT_BRANCH_RESULTS_TOTAL: "Split branch outcomes, by result (success|failure|cancelled)",
    CIRCUIT_TRANSITIONS_TOTAL: "Circuit-breaker state transitions, by transition",
    CIRCUIT_ACQUIRES_TOTAL: "Circuit-breaker permit acquisitions, by result (acquired|rejected)",
    CIRCUIT_OUTCOMES_TOTAL: "Outcomes recorded against a circuit breaker (success|failure)",
    POLL_ITERATIONS_TOTAL: "PollTask poll iterations, by outcome (ready|pending)",
    BATCH_RUNS_TOTAL: "BatchTask load-process-finish dispatches, by outcome (completed|failed)",
    BATCH_ITEMS_TOTAL: "BatchTask items processed, by result (ok|err)",
    STREAM_RUNS_TOTAL: "StreamTask runs, by outcome (completed|cancelled|failed)",
    STREAM_WINDOWS_TOTAL: "StreamTask windows flushed",
    STREAM_ITEMS_TOTAL: "StreamTask items processed, by result (ok|err)",
    STEP_ITERATIONS_TOTAL: "SteppedTask step iterations, by outcome (more|done)",
    CHECKPOINT_APPENDS_TOTAL: "Checkpoint-store appends from the engine, by result (ok|err)",
    CHECKPOINT_CLEARS_TOTAL: "Checkpoint-store clears from the engine, by result (ok|err)",
    COMPENSATIONS_RUN_TOTAL: "compensate() calls during a rollback drain, by result (ok|err)",
    COMPENSATION_DRAINS_TOTAL: "Compensation-stack drains, by outcome (clean|partial)",
    RATE_LIMITER_ACQUIRED_TOTAL: "Successful rate-limiter acquisitions",
    RATE_LIMITER_THROTTLED_TOTAL: "Rate-limiter acquisitions that waited or were rejected",
    RATE_LIMITER_WAIT_SECONDS: "Time a rate-limiter acquire blocked",
    RATE_LIMITER_TOKENS_CONSUMED_TOTAL: "Weighted units consumed from a rate limiter",
    MULTI_RATE_LIMITER_THROTTLED_TOTAL: "MultiRateLimiter rejections, by the tier that blocked",
    SCHEDULER_FLOW_RUNS_TOTAL: "Scheduled-flow runs, by flow and outcome (completed|failed)",
    SCHEDULER_FLOW_DURATION_SECONDS: "Duration of a scheduled-flow run, by flow",
    SCHEDULER_FLOW_BACKOFF_TOTAL: "Times a scheduled flow entered a backoff window, by flow",
    SCHEDULER_FLOW_TRIPPED_TOTAL: "Times a scheduled flow tripped, by flow",
    SCHEDULER_ACTIVE_FLOWS: "Scheduled flows currently executing",
}

# ----- label sets built once -----

NO_LABELS: Labels = ()
OUTCOME_COMPLETED: Labels = (("outcome", "completed"),)
OUTCOME_FAILED: Labels = (("outcome", "failed"),)
OUTCOME_CANCELLED: Labels = (("outcome", "cancelled"),)
RESULT_OK: Labels = (("result", "ok"),)
RESULT_ERR: Labels = (("result", "err"),)
COMPENSATION_CLEAN: Labels = (("outcome", "clean"),)
COMPENSATION_PARTIAL: Labels = (("outcome", "partial"),)


def outcome(ok: bool) -> Labels:
    return OUTCOME_COMPLETED if ok else OUTCOME_FAILED


def result(ok: bool) -> Labels:
    return RESULT_OK if ok else RESULT_ERR


def ok_err(sink: MetricsSink, name: str, ok: int, err: int) -> None:
    """Add ``ok`` / ``err`` to ``name{result=ok|err}``, skipping zeros (cano's
    ``batch_items`` / ``stream_items``)."""
    if ok:
        sink.counter(name, ok, RESULT_OK)
    if err:
        sink.counter(name, err, RESULT_ERR)
