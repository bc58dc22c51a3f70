"""`TracingObserver`: a run's hooks as OpenTelemetry spans and span events."""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import category_of
from .._observer import WorkflowObserver
from ._logging import UNKNOWN_STATE_MESSAGE
from ._otel import require

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

_trace = require("opentelemetry.trace", "TracingObserver")

__all__ = ["TracingObserver"]

_BRANCH = re.compile(r"\[\d+\]\Z")


def _owner() -> object | None:
    """The anyio task calling the hook (None outside an event loop)."""
    try:
        return anyio.get_current_task().id
    except Exception:
        return None


class _Open:
    __slots__ = ("branch", "owner", "span")

    def __init__(self, span: Span, owner: object | None, branch: bool) -> None:
        self.span = span
        self.owner = owner
        self.branch = branch


class TracingObserver(WorkflowObserver):
    """Turns a run's hooks into OpenTelemetry spans and events.

    * One span per task execution, ``task <task_id>``: opened by ``on_task_start``,
      ended by ``on_task_success`` (status OK) or ``on_task_failure`` (status ERROR,
      the exception recorded). Attributes ``cano.task_id``, ``cano.state`` (the state
      the task runs in) and, on failure, ``cano.error.category``. Retries and breaker
      rejections are events on that span (``task retry`` with ``cano.attempt``,
      ``circuit breaker rejected task``).
    * Run-level hooks (state enter, checkpoint, resume, total timeout, cancel, failed
      log clear, unknown resumed state) are events on the span that is *current* when
      they fire: wrap the run in `run_span` (or any span of your own) to collect them
      there, and the task spans become its children. With no recording span current,
      such an event gets a zero-length span of its own, so nothing is lost.
    * Split branches cut short by an early-exit join (``any``, ``partial_results``,
      ``partial_timeout``) get no hook from the engine; their spans are ended at the
      run's next state enter, cancel or timeout with ``cano.outcome = "abandoned"``.

    ``tracer`` defaults to ``opentelemetry.trace.get_tracer("cano_dsl")`` (the global
    tracer provider). Task spans are not made current, so spans your task code opens
    are siblings of the task span, children of the run span. One observer may serve
    concurrent runs; spans are matched to their outcome by task id.

    Independent of this observer, a run with a configured global tracer provider
    produces cano's own span tree (``workflow_orchestrate``, ``single_task_execution``,
    ``run_with_retries``, ``task_attempt``, ...; see docs/tracing.md); this observer's
    task spans are then children of the state spans, its run events land on the run's
    root span.
    """

    def __init__(self, tracer: Tracer | None = None) -> None:
        if tracer is None:
            tracer = _trace.get_tracer("cano_dsl")
        self.tracer: Tracer = tracer
        self._lock = threading.Lock()
        self._open: dict[str, list[_Open]] = {}
        # the state the calling run is in (hooks run in the engine's own context)
        self._state: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            f"cano_tracing_state_{id(self)}", default=None
        )

    def __repr__(self) -> str:
        return f"TracingObserver(tracer={self.tracer!r})"

    @contextlib.contextmanager
    def run_span(
        self, name: str = "workflow_orchestrate", *, workflow_id: str | None = None
    ) -> Iterator[Span]:
        """A span made current for the ``with`` block: run the workflow inside it to
        collect the run-level events and parent the task spans.

        ```python no-run
        with observer.run_span("checkout", workflow_id="order-7"):
            await wf.orchestrate(Step.START)
        ```
        """
        attributes = {"cano.workflow_id": workflow_id} if workflow_id is not None else None
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    # -- span bookkeeping ---------------------------------------------------------------
    def _pop(self, task_id: str) -> _Open | None:
        with self._lock:
            stack = self._open.get(task_id)
            if not stack:
                return None
            item = stack.pop(0)
            if not stack:
                del self._open[task_id]
            return item

    def _peek(self, task_id: str) -> Span | None:
        with self._lock:
            stack = self._open.get(task_id)
            return stack[-1].span if stack else None

    def _abandon(self, owner: object | None) -> None:
        """End the branch spans of ``owner``'s run that never got an outcome."""
        if owner is None:
            return
        ended: list[Span] = []
        with self._lock:
            for task_id in list(self._open):
                stack = self._open[task_id]
                keep = [o for o in stack if not (o.branch and o.owner == owner)]
                ended.extend(o.span for o in stack if o.branch and o.owner == owner)
                if keep:
                    self._open[task_id] = keep
                else:
                    del self._open[task_id]
        for span in ended:
            span.set_attribute("cano.outcome", "abandoned")
            span.add_event("task cancelled without an outcome")
            span.end()

    def _event(self, name: str, attributes: dict[str, Any]) -> None:
        current = _trace.get_current_span()
        if current.is_recording():
            current.add_event(name, attributes)
            return
        span = self.tracer.start_span(name, attributes=attributes)
        span.add_event(name, attributes)
        span.end()

    # -- hooks ----------------------------------------------------------------------------
    def on_state_enter(self, state: str) -> None:
        owner = _owner()
        self._abandon(owner)
        self._state.set(state)
        self._event("workflow entered state", {"cano.state": state})

    def on_task_start(self, task_id: str) -> None:
        owner = _owner()
        state = self._state.get()
        attributes: dict[str, Any] = {"cano.task_id": task_id}
        if state is not None:
            attributes["cano.state"] = state
        span = self.tracer.start_span(f"task {task_id}", attributes=attributes)
        item = _Open(span, owner, _BRANCH.search(task_id) is not None)
        with self._lock:
            self._open.setdefault(task_id, []).append(item)

    def on_task_success(self, task_id: str) -> None:
        item = self._pop(task_id)
        if item is None:
            return
        item.span.set_attribute("cano.outcome", "completed")
        item.span.set_status(_trace.Status(_trace.StatusCode.OK))
        item.span.end()

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        item = self._pop(task_id)
        if item is None:  # a failure with no start (defensive): still leave a span
            span = self.tracer.start_span(f"task {task_id}", attributes={"cano.task_id": task_id})
        else:
            span = item.span
        span.set_attribute("cano.outcome", "failed")
        span.set_attribute("cano.error.category", category_of(error))
        span.record_exception(error)
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    def on_retry(self, task_id: str, attempt: int) -> None:
        attributes: dict[str, Any] = {"cano.task_id": task_id, "cano.attempt": attempt}
        span = self._peek(task_id)
        if span is not None:
            span.add_event("task retry", attributes)
        else:
            self._event("task retry", attributes)

    def on_circuit_open(self, task_id: str) -> None:
        attributes = {"cano.task_id": task_id}
        span = self._peek(task_id)
        if span is not None:
            span.add_event("circuit breaker rejected task", attributes)
        else:
            self._event("circuit breaker rejected task", attributes)

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self._event(
            "checkpoint appended", {"cano.workflow_id": workflow_id, "cano.sequence": sequence}
        )

    def on_resume(self, workflow_id: str, last_sequence: int) -> None:
        self._event(
            "workflow resumed from checkpoint",
            {"cano.workflow_id": workflow_id, "cano.sequence": last_sequence},
        )

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self._abandon(_owner())
        self._event(
            "workflow total timeout exceeded",
            {"cano.elapsed_seconds": elapsed, "cano.limit_seconds": limit},
        )

    def on_cancelled(self, state: str) -> None:
        self._abandon(_owner())
        self._event("workflow cancelled", {"cano.state": state})

    def on_checkpoint_clear_failed(self, workflow_id: str, error: BaseException) -> None:
        self._event(
            "checkpoint log clear failed",
            {"cano.workflow_id": workflow_id, "cano.error": f"{type(error).__name__}: {error}"},
        )

    def on_unknown_resume_state(self, workflow_id: str, sequence: int, state: str) -> None:
        self._event(
            UNKNOWN_STATE_MESSAGE,
            {
                "cano.workflow_id": workflow_id,
                "cano.sequence": sequence,
                "cano.unknown_state": state,
            },
        )
