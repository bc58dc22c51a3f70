"""`OtelMetricsSink` / `install_metrics`: cano's always-on metrics on an OpenTelemetry
meter, read back through the SDK's in-memory reader."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cano_dsl import Resources, Workflow, task
from cano_dsl.observability import OtelMetricsSink, install_metrics, uninstall_metrics

from .conftest import Metrics, Step

pytestmark = pytest.mark.anyio


@pytest.fixture
def installed(metrics: Metrics) -> Iterator[OtelMetricsSink]:
    sink = install_metrics(metrics.meter)
    try:
        yield sink
    finally:
        uninstall_metrics()


@task(name="hop")
async def hop() -> Step:
    return Step.DONE


async def test_a_run_lands_as_otel_counter_histogram_and_gauge(
    metrics: Metrics, installed: OtelMetricsSink
) -> None:
    wf = Workflow(Resources()).register(Step.A, hop).add_exit_state(Step.DONE)
    await wf.orchestrate(Step.A)
    await wf.orchestrate(Step.A)
    assert metrics.points("cano_workflow_runs_total") == {(("outcome", "completed"),): 2}
    ((count, total),) = metrics.points("cano_workflow_duration_seconds").values()
    assert count == 2 and total >= 0
    assert metrics.points("cano_workflow_active") == {(): 0}
    (key,) = metrics.points("cano_task_duration_seconds")
    assert key == (("kind", "single"), ("state", "A"))
    assert metrics.points("cano_task_attempts_total") == {(("outcome", "completed"),): 2}


def test_instruments_carry_units_and_descriptions(
    metrics: Metrics, installed: OtelMetricsSink
) -> None:
    installed.histogram("cano_rate_limiter_wait_seconds", 0.5, ())
    installed.counter("cano_stream_windows_total", 1, ())
    data = metrics.reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert found["cano_rate_limiter_wait_seconds"].unit == "s"
    assert "StreamTask windows" in found["cano_stream_windows_total"].description
