"""A traced worker process for the fleet tests: ``python -m tests.fleet.traced_worker URL
RUN_ID OUT BACKEND`` installs the OpenTelemetry SDK with an in-memory exporter, serves
``tests.fleet.flows:registry`` until run RUN_ID is final, and writes the finished spans
to OUT as JSON (name, trace id, span id, parent span id, whether the parent is remote)."""

from __future__ import annotations

import json
import sys

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cano_dsl.fleet import Fleet, Worker
from tests.fleet.flows import registry
from tests.fleet.support import make_store


async def main(url: str, run_id: str, out: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    store = make_store(url)
    async with Fleet(store) as fleet:
        worker = Worker(fleet, registry, lease=10, poll_interval=0.01)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await fleet.handle(run_id).result(timeout=90)
            worker.stop()
    await store.aclose()
    spans = [
        {
            "name": s.name,
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "parent": None if s.parent is None else s.parent.span_id,
            "remote": None if s.parent is None else s.parent.is_remote,
        }
        for s in exporter.get_finished_spans()
    ]
    with open(out, "w") as f:
        json.dump(spans, f)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], backend=sys.argv[4])
