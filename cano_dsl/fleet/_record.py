"""Run records: `RunStatus`, `RunRecord`, and the fleet's errors."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from .._errors import CanoError

__all__ = [
    "FleetError",
    "QueueLimits",
    "RunCancelledError",
    "RunFailedError",
    "RunNotFound",
    "RunRecord",
    "RunStatus",
]


class RunStatus(str, enum.Enum):
    """Where a run is in its life. ``QUEUED`` and ``RUNNING`` are live; the other three
    are final: a run in a final status never changes again."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Whether the run is over (``SUCCEEDED``, ``FAILED`` or ``CANCELLED``)."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@attrs.frozen
class RunRecord:
    """One run of the fleet, as stored in the run table (a snapshot: read it again with
    `Fleet.get` for news).

    Times are Unix seconds from the database server's clock (``None`` until the event
    happened). ``owner``/``lease_expires`` name the worker holding the run while it is
    ``RUNNING`` (``None`` otherwise); ``epoch`` counts the claims of the run (the lease
    generation that fences a former owner's writes); ``recoveries`` counts the claims
    that took the run over from an owner whose lease had expired. ``data`` is the run
    data given to `Fleet.enqueue`; on success ``exit_state`` is the exit state's label
    and ``result_data`` the run's final data. A failed run has ``error_category``,
    ``error_message`` and ``error_state`` (the state it failed in, when known).
    ``trace_context`` is the W3C trace context (``{"traceparent": ..., "tracestate":
    ...}``) of the OpenTelemetry span that was active when the run was enqueued
    (``None`` when there was none): the worker traces the run as that span's child.
    """

    run_id: str
    workflow_name: str
    workflow_version: int | None
    queue: str
    priority: int
    status: RunStatus
    initial_state: str
    data: Any
    owner: str | None
    epoch: int
    lease_expires: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    recoveries: int
    cancel_requested: bool
    exit_state: str | None
    result_data: Any
    error_category: str | None
    error_message: str | None
    error_state: str | None
    trace_context: dict[str, str] | None = None


@attrs.frozen
class QueueLimits:
    """A queue's fleet-wide limits, as `Fleet.queue_limits` reads them back.

    ``max_running``: at most this many of the queue's runs hold a live lease at once
    (``None``: no limit). ``start_capacity`` and ``start_rate``: a token bucket (the
    `RateLimiterPolicy` given to `Fleet.set_queue_limits`: its capacity, and its tokens
    per second) that every claim of one of the queue's runs takes one token from
    (``None``: no start rate)."""

    queue: str
    max_running: int | None
    start_capacity: float | None
    start_rate: float | None


class FleetError(CanoError):
    """A fleet operation failed (category ``"fleet"``)."""

    category = "fleet"
    _prefix = "Fleet error: "


class RunNotFound(FleetError, KeyError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        FleetError.__init__(self, f"no run with id {run_id!r}")
        self.run_id = run_id

    def __str__(self) -> str:  # KeyError would repr() the message
        return CanoError.__str__(self)


class RunFailedError(FleetError):
    """`RunHandle.result` of a run that ended ``FAILED``; ``record`` is its record."""

    def __init__(self, record: RunRecord) -> None:
        FleetError.__init__(
            self,
            f"run {record.run_id!r} failed in state {record.error_state!r} "
            f"({record.error_category}): {record.error_message}",
        )
        self.record = record


class RunCancelledError(FleetError):
    """`RunHandle.result` of a run that ended ``CANCELLED``; ``record`` is its record."""

    def __init__(self, record: RunRecord) -> None:
        FleetError.__init__(self, f"run {record.run_id!r} was cancelled")
        self.record = record
