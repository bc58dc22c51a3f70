"""`OtelMetricsSink`: cano's always-on metrics (REFERENCE §11.3, direct
instrumentation) on an OpenTelemetry meter, and `install_metrics`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import _metrics
from .._metrics import Labels
from ._metrics import _library_version
from ._otel import require

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

_api = require("opentelemetry.metrics", "OtelMetricsSink")

__all__ = ["OtelMetricsSink", "install_metrics"]


class OtelMetricsSink:
    """A `MetricsSink` forwarding to OpenTelemetry: counters to ``Counter``, histograms
    (seconds) to ``Histogram``, gauges to ``UpDownCounter``, labels to attributes.

    ``meter`` defaults to ``opentelemetry.metrics.get_meter("cano_dsl")`` (the global
    meter provider). Instruments are created on first use, once per name, with cano's
    names, units and descriptions. It complements `MetricsObserver` (the
    observer-emitted family): attach both to get every metric cano defines.
    """

    def __init__(self, meter: Meter | None = None) -> None:
        if meter is None:
            meter = _api.get_meter("cano_dsl", _library_version())
        self.meter: Meter = meter
        self._lock = threading.Lock()
        self._instruments: dict[str, Any] = {}

    def _instrument(self, name: str, kind: str) -> Any:
        inst = self._instruments.get(name)
        if inst is not None:
            return inst
        with self._lock:
            inst = self._instruments.get(name)
            if inst is None:
                description = _metrics.DESCRIPTIONS.get(name, "")
                m = self.meter
                if kind == "histogram":
                    inst = m.create_histogram(name, unit="s", description=description)
                elif kind == "gauge":
                    inst = m.create_up_down_counter(name, unit="1", description=description)
                else:
                    inst = m.create_counter(name, unit="1", description=description)
                self._instruments[name] = inst
        return inst

    def counter(self, name: str, value: float, labels: Labels) -> None:
        """Add ``value`` to the OpenTelemetry counter ``name`` with ``labels`` as attributes."""
        self._instrument(name, "counter").add(value, dict(labels) if labels else None)

    def histogram(self, name: str, value: float, labels: Labels) -> None:
        """Record ``value`` (seconds) in the OpenTelemetry histogram ``name``."""
        self._instrument(name, "histogram").record(value, dict(labels) if labels else None)

    def gauge_add(self, name: str, delta: float, labels: Labels) -> None:
        """Move the OpenTelemetry up-down counter ``name`` by ``delta``."""
        self._instrument(name, "gauge").add(delta, dict(labels) if labels else None)


def install_metrics(meter: Meter | None = None) -> OtelMetricsSink:
    """Turn cano's always-on metrics on, process-wide, to ``meter`` (default: the
    global meter provider's ``cano_dsl`` meter). Returns the installed sink;
    `cano_dsl.observability.uninstall_metrics` turns them off again."""
    sink = OtelMetricsSink(meter)
    _metrics.install(sink)
    return sink
