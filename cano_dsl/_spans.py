"""Automatic tracing: cano's span tree on OpenTelemetry (REFERENCE §11.2).

Whether a run is traced is decided once, when it starts (`tracer`): only when
``opentelemetry.trace`` is already imported by the process (cano_dsl never imports it
for this) and a real tracer provider is configured (not the API's proxy or no-op
provider). An untraced run pays one ``sys.modules`` lookup at its start and nothing
per state; a traced one publishes its tracer in `TRACER`, which the retry loop and the
split branches read.

The tree (names and fields as in cano)::

    workflow_orchestrate {workflow_id}    (orchestrate; workflow_resume for resume_from,
    |                                      execute_flow for scheduler runs; a span given
    |                                      to with_tracing_span takes the place of the
    |                                      first two)
    +- single_task_execution {state, kind}     (compensatable_task_execution for a saga step)
    |  +- run_with_retries {max_attempts}
    |     +- task_attempt {attempt, max_attempts, outcome, retry_delay_seconds}
    +- split_task {task_id, state, kind, outcome}   (one per branch)
       +- run_with_retries ...
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ATTEMPT",
    "RETRIES",
    "SPLIT",
    "TRACER",
    "check_span",
    "current_trace_context",
    "error_status",
    "remote_parent",
    "state_span_name",
    "tracer",
    "workflow_span",
]

ATTEMPT = "task_attempt"
RETRIES = "run_with_retries"
SPLIT = "split_task"
SINGLE = "single_task_execution"
COMPENSATABLE = "compensatable_task_execution"

#: The tracer of the traced run the caller belongs to (unset: not traced).
TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "cano_dsl_tracer", default=None
)

# (provider, tracer) of the last configured provider seen
_cache: tuple[Any, Any] | None = None


def tracer() -> Tracer | None:
    """The tracer for a run starting now, or None: OpenTelemetry not imported by the
    process, or no tracer provider configured."""
    global _cache
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    cached = _cache
    if cached is not None and cached[0] is provider:
        return cached[1]  # type: ignore[no-any-return]
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    from . import __version__

    found = provider.get_tracer("cano_dsl", __version__)
    _cache = (provider, found)
    return found  # type: ignore[no-any-return]


def check_span(span: Any, what: str) -> Span:
    """``span`` must be an OpenTelemetry span; raise `ConfigurationError` otherwise."""
    from ._errors import ConfigurationError

    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or not isinstance(span, trace.Span):
        raise ConfigurationError(
            f"{what} takes an OpenTelemetry span (opentelemetry.trace.Span, e.g. from "
            f"tracer.start_span(...)), got {span!r}"
        )
    return span  # type: ignore[no-any-return]


def error_status(exc: BaseException) -> Any:
    """An ERROR span status describing ``exc``."""
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


def state_span_name(kind: str) -> str:
    """cano's span name for a state of ``kind`` (not split: its branches have theirs)."""
    return COMPENSATABLE if kind == "compensatable" else SINGLE


@contextlib.contextmanager
def workflow_span(
    found: Tracer | None, custom: Span | None, name: str, workflow_id: str | None
) -> Iterator[Span | None]:
    """The run's root span, current for the block, with `TRACER` published in it.

    ``custom`` (from `Workflow.with_tracing_span`) is made current instead of a new
    span and is not ended here (it is the caller's)."""
    token = TRACER.set(found) if found is not None else None
    try:
        if custom is not None:
            from opentelemetry import trace

            with trace.use_span(custom, end_on_exit=False):
                yield custom
        else:
            assert found is not None
            attributes = {"workflow_id": workflow_id} if workflow_id is not None else None
            with found.start_as_current_span(name, attributes=attributes) as span:
                yield span
    finally:
        if token is not None:
            TRACER.reset(token)


def current_trace_context() -> dict[str, str] | None:
    """The W3C trace context (``traceparent``, and ``tracestate`` when there is one) of
    the caller's active span, for a run queued now to be traced as its child; ``None``
    when OpenTelemetry is not imported, no tracer provider is configured, or no valid
    span is active (one ``sys.modules`` lookup then)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or tracer() is None:
        return None
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier if "traceparent" in carrier else None


@contextlib.contextmanager
def remote_parent(carrier: dict[str, str] | None) -> Iterator[None]:
    """Make the span that ``carrier`` (from `current_trace_context`, possibly in another
    process) describes the current span for the block, as a remote parent: the root
    span of a run started inside is its child. A no-op without a carrier or when the
    process has not imported OpenTelemetry."""
    if not carrier or sys.modules.get("opentelemetry.trace") is None:
        yield
        return
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    token = context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        yield
    finally:
        context.detach(token)
