"""`RecordingMetricsSink`: cano's always-on metrics kept in memory, for assertions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .. import _metrics
from .._metrics import Labels

__all__ = ["RecordingMetricsSink"]


def _matches(labels: Labels, wanted: dict[str, str]) -> bool:
    have = dict(labels)
    return all(have.get(k) == v for k, v in wanted.items())


class RecordingMetricsSink:
    """A `MetricsSink` that records every emission in memory.

    Install it with `install` (or ``with sink.installed():``), run the workflow, then
    read the values back; the label filters match every series carrying at least the
    given labels and sum them::

        sink = RecordingMetricsSink()
        with sink.installed():
            await workflow.orchestrate(Step.START)
        assert sink.counter_value("cano_workflow_runs_total", outcome="completed") == 1
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], list[float]] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}

    # --- the MetricsSink protocol ---

    def counter(self, name: str, value: float, labels: Labels) -> None:
        """Add ``value`` to ``counters[(name, labels)]``."""
        key = (name, labels)
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + value

    def histogram(self, name: str, value: float, labels: Labels) -> None:
        """Append ``value`` to ``histograms[(name, labels)]``."""
        with self._lock:
            self.histograms.setdefault((name, labels), []).append(value)

    def gauge_add(self, name: str, delta: float, labels: Labels) -> None:
        """Add ``delta`` to ``gauges[(name, labels)]``."""
        key = (name, labels)
        with self._lock:
            self.gauges[key] = self.gauges.get(key, 0) + delta

    # --- installation ---

    def install(self) -> None:
        """Make this the process-wide sink."""
        _metrics.install(self)

    @staticmethod
    def uninstall() -> None:
        """Turn cano's metrics off again."""
        _metrics.uninstall()

    @contextmanager
    def installed(self) -> Iterator[RecordingMetricsSink]:
        """Install for the ``with`` block, then restore the previous sink."""
        with _metrics.installed(self):
            yield self

    # --- reading ---

    def counter_value(self, name: str, **labels: str) -> float:
        """Sum of the counter ``name`` over the series matching ``labels`` (0 if none)."""
        with self._lock:
            return sum(
                v for (n, lb), v in self.counters.items() if n == name and _matches(lb, labels)
            )

    def histogram_values(self, name: str, **labels: str) -> list[float]:
        """Every observation of the histogram ``name`` matching ``labels``."""
        with self._lock:
            return [
                x
                for (n, lb), xs in self.histograms.items()
                if n == name and _matches(lb, labels)
                for x in xs
            ]

    def gauge_value(self, name: str, **labels: str) -> float:
        """Current value of the gauge ``name`` summed over the matching series."""
        with self._lock:
            return sum(
                v for (n, lb), v in self.gauges.items() if n == name and _matches(lb, labels)
            )

    def names(self) -> set[str]:
        """Every metric name recorded at least once."""
        with self._lock:
            return {n for n, _ in (*self.counters, *self.histograms, *self.gauges)}

    def series(self, name: str) -> list[Labels]:
        """The label sets recorded for ``name``."""
        with self._lock:
            return [lb for (n, lb) in (*self.counters, *self.histograms, *self.gauges) if n == name]

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.counters.clear()
            self.histograms.clear()
            self.gauges.clear()
