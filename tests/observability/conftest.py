"""OpenTelemetry SDK fixtures: a meter on an in-memory reader, a tracer on an in-memory
exporter, and a small workflow vocabulary shared by the observability tests."""

from __future__ import annotations

import enum
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    SPLIT = enum.auto()
    JOIN = enum.auto()
    DONE = enum.auto()


class Metrics:
    """Reads what an in-memory reader collected: ``points(name)`` maps each data
    point's attributes (as a sorted tuple of pairs) to its value (counters) or to
    ``(count, sum)`` (histograms)."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.meter = self.provider.get_meter("test")

    def collect(self) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
        out: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    points = out.setdefault(metric.name, {})
                    for p in metric.data.data_points:
                        key = tuple(sorted((p.attributes or {}).items()))
                        if hasattr(p, "value"):
                            points[key] = p.value
                        else:
                            points[key] = (p.count, p.sum)
        return out

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        return self.collect().get(name, {})


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test")

    def finished(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[Any]:
        return [s for s in self.finished() if s.name == name]


@pytest.fixture
def spans() -> Spans:
    return Spans()
