"""Observers that turn a run's hooks into logs, OpenTelemetry metrics and spans, and
the sinks of cano's always-on metrics.

`install_metrics` / `OtelMetricsSink` route the always-on (direct-instrumentation)
metrics to OpenTelemetry; `install_metrics_sink` / `uninstall_metrics` /
`metrics_sink` install any `MetricsSink` (see ``cano_dsl.testing.RecordingMetricsSink``).

`LoggingObserver` needs nothing beyond the standard library. `MetricsObserver` and
`TracingObserver` need the ``otel`` extra (``pip install 'cano-dsl[otel]'``); they are
imported on first access, so ``import cano_dsl`` and ``import cano_dsl.observability``
never import OpenTelemetry, and a missing extra surfaces as an `ImportError` naming
the extra when one of them is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._metrics import MetricsSink as MetricsSink
from .._metrics import install as install_metrics_sink
from .._metrics import installed as metrics_sink
from .._metrics import uninstall as uninstall_metrics
from ._logging import LoggingObserver as LoggingObserver
from ._otel import OTEL_HINT as OTEL_HINT

if TYPE_CHECKING:
    from ._metrics import METRIC_NAMES as METRIC_NAMES
    from ._metrics import MetricsObserver as MetricsObserver
    from ._sink import OtelMetricsSink as OtelMetricsSink
    from ._sink import install_metrics as install_metrics
    from ._tracing import TracingObserver as TracingObserver

__all__ = [
    "METRIC_NAMES",
    "OTEL_HINT",
    "LoggingObserver",
    "MetricsObserver",
    "MetricsSink",
    "OtelMetricsSink",
    "TracingObserver",
    "install_metrics",
    "install_metrics_sink",
    "metrics_sink",
    "uninstall_metrics",
]


def __getattr__(name: str) -> Any:
    if name in ("MetricsObserver", "METRIC_NAMES"):
        from . import _metrics

        return getattr(_metrics, name)
    if name in ("OtelMetricsSink", "install_metrics"):
        from . import _sink

        return getattr(_sink, name)
    if name == "TracingObserver":
        from ._tracing import TracingObserver

        return TracingObserver
    raise AttributeError(f"module 'cano_dsl.observability' has no attribute {name!r}")
