"""Every metric cano emits, captured by an in-memory OpenTelemetry reader.

    python examples/metrics_demo.py

Port of cano's ``metrics_demo`` example (which dumps a debugging recorder). Needs the
``otel`` extra (``pip install -e '.[otel]'``; the ``test`` extra includes it).

Two families, both on one meter of an SDK `MeterProvider` whose reader keeps the
values in memory:

- the observer-emitted counters (state enters, task runs, retries, ...), produced
  by a `MetricsObserver` attached to the workflow;
- the always-on metrics (workflow runs and duration, task attempts and duration,
  scheduler flow runs, ...), produced by the engine and the scheduler themselves
  once ``install_metrics(meter)`` has installed a sink.

The workflow FETCH -> PROCESS -> DONE runs three times directly, where FETCH fails
once and succeeds on its retry in the first run, then under the scheduler every
0.5 s for about 1.2 s. The script prints every metric point, sorted by name. In
production give the provider a Prometheus or OTLP reader instead.
"""

from __future__ import annotations

import enum
import sys

import anyio

from cano_dsl import FlowStatus, Scheduler, TaskConfig, Workflow, task

try:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        HistogramDataPoint,
        InMemoryMetricReader,
        NumberDataPoint,
    )

    from cano_dsl.observability import MetricsObserver, install_metrics, uninstall_metrics
except ImportError:  # pragma: no cover - depends on the installed extras
    print("metrics_demo needs OpenTelemetry: pip install -e '.[otel]'")
    sys.exit(0)


class Step(enum.Enum):
    FETCH = enum.auto()
    PROCESS = enum.auto()
    DONE = enum.auto()


fetch_calls = {"n": 0}


@task(config=TaskConfig().with_fixed_retry(2, 0.01), name="fetch")
async def fetch() -> Step:
    fetch_calls["n"] += 1
    await anyio.sleep(0.005)
    if fetch_calls["n"] == 1:
        raise ConnectionError("first call times out")
    return Step.PROCESS


@task(config=TaskConfig.minimal(), name="process")
async def process() -> Step:
    await anyio.sleep(0.003)
    return Step.DONE


def workflow(observer: MetricsObserver) -> Workflow[Step]:
    return (
        Workflow.bare()
        .register(Step.FETCH, fetch)
        .register(Step.PROCESS, process)
        .add_exit_state(Step.DONE)
        .with_observer(observer)
    )


def dump(reader: InMemoryMetricReader) -> list[str]:
    """One line per metric point: counters and gauges by value, histograms by count/sum."""
    lines: list[str] = []
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    labels = ",".join(f"{k}={v}" for k, v in sorted(attrs.items()))
                    shown = f"{metric.name}{{{labels}}}" if labels else metric.name
                    if isinstance(point, NumberDataPoint):
                        lines.append(f"{shown} = {point.value}")
                    elif isinstance(point, HistogramDataPoint):
                        lines.append(f"{shown} = count={point.count} sum={point.sum:.4f}s")
    return sorted(lines)


async def main() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("metrics_demo")
    observer = MetricsObserver(meter)
    install_metrics(meter)
    try:
        for _ in range(3):
            await workflow(observer).orchestrate(Step.FETCH)
        sched = Scheduler().every_seconds("demo_flow", workflow(observer), Step.FETCH, 0.5)
        async with sched.start() as running:
            await anyio.sleep(1.2)
            # stop between runs, so no run is cut short by the shutdown
            while any(f.status == FlowStatus.RUNNING for f in running.list()):
                await anyio.sleep(0.01)
            scheduled = running.status("demo_flow")
    finally:
        uninstall_metrics()
    assert scheduled is not None
    print(
        f"3 direct runs, {scheduled.run_count} scheduled runs, fetch called {fetch_calls['n']} times"
    )
    print("\n=== cano metrics ===")
    for line in dump(reader):
        print(f"  {line}")


if __name__ == "__main__":
    anyio.run(main)
