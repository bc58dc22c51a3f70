"""Trace context through a queued run: `Fleet.enqueue` inside an OpenTelemetry span keeps
its W3C trace context in the run record, and the worker's root span of the run is a child
of that span (a remote parent), in the same process or in a worker process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from cano_dsl.fleet import Fleet, RunStatus, Worker

from .flows import Step, registry
from .support import child_env, make_store


def _set_global(provider: Any) -> None:
    # what opentelemetry's own test utilities do to swap the once-only global provider
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    found = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(found))
    saved = trace._TRACER_PROVIDER  # type: ignore[attr-defined]
    _set_global(provider)
    try:
        yield found
    finally:
        _set_global(saved)


async def _serve(fleet: Fleet, run_id: str) -> None:
    worker = Worker(fleet, registry, lease=10, poll_interval=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        record = await fleet.handle(run_id).result(timeout=60)
        assert record.status is RunStatus.SUCCEEDED
        worker.stop()


@pytest.mark.anyio
async def test_the_run_root_span_is_a_child_of_the_enqueuers_span(
    fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("handle_request") as request:
        handle = await fleet.enqueue("steps", Step.A, run_id="traced")
    record = await fleet.get("traced")
    assert record.trace_context is not None
    ctx = request.get_span_context()
    assert record.trace_context["traceparent"] == (
        f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    )
    await _serve(fleet, handle.run_id)
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.name == "workflow_orchestrate"]
    assert root.context.trace_id == ctx.trace_id
    assert root.parent is not None and root.parent.span_id == ctx.span_id
    assert root.parent.is_remote
    assert root.attributes is not None and root.attributes["workflow_id"] == "traced"
    # the states' spans hang under the root, in the enqueuer's trace
    states = [s for s in spans if s.name == "single_task_execution"]
    assert len(states) == 3
    assert all(s.parent.span_id == root.context.span_id for s in states)
    assert all(s.context.trace_id == ctx.trace_id for s in spans if s.name != "handle_request")


@pytest.mark.anyio
async def test_a_run_handed_over_resumes_under_the_same_parent(
    fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    """The first worker is stopped with no grace in state B (handing the run back); the
    second resumes it from its checkpoint: both root spans are children of the span
    that enqueued the run."""
    with trace.get_tracer("test").start_as_current_span("handle_request") as request:
        await fleet.enqueue("steps", Step.A, {"sleep": 0.3}, run_id="moved")
    ctx = request.get_span_context()
    first = Worker(fleet, registry, lease=10, poll_interval=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: first.run(grace=0))
        with anyio.fail_after(60):
            while not await fleet.store.load_run("moved"):  # its first checkpoint
                await anyio.sleep(0.01)
        first.stop()
    assert (await fleet.get("moved")).status is RunStatus.QUEUED
    await _serve(fleet, "moved")
    roots = [
        s
        for s in exporter.get_finished_spans()
        if s.name in ("workflow_orchestrate", "workflow_resume")
    ]
    assert sorted(s.name for s in roots) == ["workflow_orchestrate", "workflow_resume"]
    for root in roots:
        assert root.context.trace_id == ctx.trace_id
        assert root.parent is not None and root.parent.span_id == ctx.span_id
        assert root.parent.is_remote


@pytest.mark.anyio
async def test_a_run_enqueued_outside_a_span_starts_its_own_trace(
    fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    await fleet.enqueue("steps", Step.A, run_id="untraced")
    assert (await fleet.get("untraced")).trace_context is None
    await _serve(fleet, "untraced")
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "workflow_orchestrate"]
    assert root.parent is None


@pytest.mark.anyio
async def test_without_a_provider_nothing_is_stored(fleet: Fleet) -> None:
    saved = trace._TRACER_PROVIDER  # type: ignore[attr-defined]
    _set_global(None)
    try:
        with trace.get_tracer("test").start_as_current_span("request"):
            await fleet.enqueue("steps", Step.A, run_id="noprovider")
    finally:
        _set_global(saved)
    assert (await fleet.get("noprovider")).trace_context is None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_worker_process_parents_the_run_under_the_enqueuers_span(
    store_url: str, tmp_path: Path, backend: str, exporter: InMemorySpanExporter
) -> None:
    async def enqueue() -> Any:
        store = make_store(store_url)
        try:
            async with Fleet(store) as fleet:
                with trace.get_tracer("test").start_as_current_span("api_call") as span:
                    await fleet.enqueue("mixed", Step.A, run_id="remote")
                return span.get_span_context()
        finally:
            await store.aclose()

    ctx = anyio.run(enqueue)
    out = tmp_path / "spans.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fleet.traced_worker", store_url, "remote", str(out), backend],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    spans = json.loads(out.read_text())
    (root,) = [s for s in spans if s["name"] == "workflow_orchestrate"]
    assert root["trace_id"] == ctx.trace_id
    assert root["parent"] == ctx.span_id and root["remote"] is True
    assert {s["trace_id"] for s in spans} == {ctx.trace_id}
    assert any(s["name"] == "split_task" for s in spans)


def test_enqueue_without_opentelemetry_imported_imports_none(store_url: str) -> None:
    code = (
        "import sys, anyio\n"
        "from cano_dsl.fleet import Fleet\n"
        "from tests.fleet.support import make_store\n"
        "async def main():\n"
        f"    store = make_store({store_url!r})\n"
        "    async with Fleet(store) as fleet:\n"
        "        await fleet.enqueue('steps', 'A', run_id='plain')\n"
        "        assert (await fleet.get('plain')).trace_context is None\n"
        "    await store.aclose()\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.anyio
async def test_a_run_table_made_before_the_column_gets_it(
    fleet: Fleet, store_url: str, exporter: InMemorySpanExporter
) -> None:
    await fleet.enqueue("steps", Step.A, run_id="old")
    await fleet.aclose()
    # a run table as the fleet's first version made it: no trace_context column
    if store_url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(store_url.removeprefix("sqlite:"))
        conn.execute("ALTER TABLE cano_fleet_runs DROP COLUMN trace_context")
        conn.commit()
        conn.close()
    else:
        import psycopg

        dsn, table = store_url.rsplit("#", 1)
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute(f"ALTER TABLE {table}_runs DROP COLUMN trace_context")
    other = Fleet(make_store(store_url))
    try:
        with trace.get_tracer("test").start_as_current_span("request"):
            await other.enqueue("steps", Step.A, run_id="new")
        assert (await other.get("old")).trace_context is None
        assert (await other.get("new")).trace_context is not None
    finally:
        await other.aclose()
        await other.store.aclose()


@pytest.mark.anyio
async def test_enqueue_many_keeps_the_enqueuers_span_on_every_run(
    fleet: Fleet, exporter: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("bulk_request") as request:
        handles = await fleet.enqueue_many("steps", Step.A, [None, None], run_ids=["m1", "m2"])
    ctx = request.get_span_context()
    parent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    for h in handles:
        record = await h.record()
        assert record.trace_context is not None
        assert record.trace_context["traceparent"] == parent
    await _serve(fleet, "m2")
    roots = [s for s in exporter.get_finished_spans() if s.name == "workflow_orchestrate"]
    assert roots and all(r.parent is not None and r.parent.span_id == ctx.span_id for r in roots)
