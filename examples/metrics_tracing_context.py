"""Metrics labelled with the current span's attributes: a workflow id, a request id.

    python examples/metrics_tracing_context.py

Port of cano's ``metrics_tracing_context`` example. Needs the ``otel`` extra
(``pip install -e '.[otel]'``; the ``test`` extra includes it).

cano relies on the ``metrics-tracing-context`` crate to copy span fields onto every
metric recorded inside the span. The Python counterpart is a few lines you can copy:
``SpanLabelsSink`` wraps the sink of cano's always-on metrics and, on each emission,
adds the allow-listed attributes of the current OpenTelemetry span as labels. The
engine emits from inside the caller's context (anyio child tasks inherit it), so
the span around ``orchestrate`` is the current one for every metric of the run.

Two paths, as in cano:

1. ``TracingObserver.run_span(..., workflow_id=...)`` sets ``cano.workflow_id`` on the
   run span, which becomes a ``workflow_id`` label;
2. a span of your own around ``orchestrate`` (``api_request`` with a ``request_id``)
   labels that run's metrics with ``request_id``.

Keep the allow-list short: every distinct value is a new time series. Only the
always-on family goes through the sink; `MetricsObserver`'s counters are recorded on
its meter directly and are not relabelled here.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

import anyio

from cano_dsl import TaskConfig, Workflow, task
from cano_dsl.observability import MetricsSink, install_metrics_sink, uninstall_metrics

try:
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        HistogramDataPoint,
        InMemoryMetricReader,
        NumberDataPoint,
    )
    from opentelemetry.sdk.trace import TracerProvider

    from cano_dsl.observability import OtelMetricsSink, TracingObserver
except ImportError:  # pragma: no cover - depends on the installed extras
    print("metrics_tracing_context needs OpenTelemetry: pip install -e '.[otel]'")
    sys.exit(0)

Labels = tuple[tuple[str, str], ...]


class SpanLabelsSink:
    """A `MetricsSink` that adds chosen attributes of the current span to the labels.

    ``promote`` maps a span attribute name to the label name it becomes.
    """

    def __init__(self, inner: MetricsSink, promote: dict[str, str]) -> None:
        self.inner = inner
        self.promote = promote

    def _labels(self, labels: Labels) -> Labels:
        attributes = getattr(trace.get_current_span(), "attributes", None)
        if not attributes:
            return labels
        extra = tuple(
            (label, str(attributes[attr]))
            for attr, label in self.promote.items()
            if attr in attributes
        )
        return labels + extra if extra else labels

    def counter(self, name: str, value: float, labels: Labels) -> None:
        self.inner.counter(name, value, self._labels(labels))

    def histogram(self, name: str, value: float, labels: Labels) -> None:
        self.inner.histogram(name, value, self._labels(labels))

    def gauge_add(self, name: str, delta: float, labels: Labels) -> None:
        self.inner.gauge_add(name, delta, self._labels(labels))


def install_metrics_with_span_labels(meter: Any, promote: dict[str, str]) -> SpanLabelsSink:
    """cano's always-on metrics to ``meter``, labelled from the current span."""
    sink = SpanLabelsSink(OtelMetricsSink(meter), promote)
    install_metrics_sink(sink)
    return sink


class Step(enum.Enum):
    FETCH = enum.auto()
    PROCESS = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="fetch")
async def fetch() -> Step:
    await anyio.sleep(0.005)
    return Step.PROCESS


@task(config=TaskConfig.minimal(), name="process")
async def process() -> Step:
    await anyio.sleep(0.003)
    return Step.DONE


def workflow() -> Workflow[Step]:
    return (
        Workflow.bare()
        .register(Step.FETCH, fetch)
        .register(Step.PROCESS, process)
        .add_exit_state(Step.DONE)
    )


def dump(reader: InMemoryMetricReader) -> list[str]:
    lines: list[str] = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    labels = ",".join(
                        f"{k}={v!s}" for k, v in sorted((point.attributes or {}).items())
                    )
                    shown = f"{metric.name}{{{labels}}}" if labels else metric.name
                    if isinstance(point, NumberDataPoint):
                        lines.append(f"{shown} = {point.value}")
                    elif isinstance(point, HistogramDataPoint):
                        lines.append(f"{shown} = count={point.count} sum={point.sum:.4f}s")
    return sorted(lines)


async def main() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("metrics_tracing_context")
    tracer = TracerProvider().get_tracer("metrics_tracing_context")
    install_metrics_with_span_labels(
        meter, {"cano.workflow_id": "workflow_id", "request_id": "request_id"}
    )
    try:
        observer = TracingObserver(tracer)
        with observer.run_span("workflow_orchestrate", workflow_id="demo-run-1"):
            await workflow().with_observer(observer).orchestrate(Step.FETCH)
        with tracer.start_as_current_span("api_request", attributes={"request_id": "abc"}):
            await workflow().orchestrate(Step.FETCH)
        await workflow().orchestrate(Step.FETCH)  # outside any span: no extra labels
    finally:
        uninstall_metrics()
    print("=== cano metrics (labels include the current span's attributes) ===")
    for line in dump(reader):
        print(f"  {line}")


if __name__ == "__main__":
    anyio.run(main)
