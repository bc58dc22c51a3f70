"""Workflows traced with OpenTelemetry: task spans, your own spans, logs, the scheduler.

    python examples/tracing_demo.py

Port of cano's ``tracing_demo`` example (which uses the ``tracing`` crate). Needs the
``otel`` extra (``pip install -e '.[otel]'``; the ``test`` extra includes it). Spans
go to an in-memory exporter of the OpenTelemetry SDK and are printed as trees at the
end; swap in an OTLP or console exporter to send them elsewhere.

1. A basic run inside ``TracingObserver.run_span``: one span per task, and a span the
   processing task opens itself (``data_processing``) next to its task span.
2. A run whose run span carries a business id (``workflow_id="demo-run-42"``), the
   counterpart of cano's ``with_tracing_span``; its task fails once and is retried,
   which shows as a ``task retry`` event.
3. Scheduled runs: the same observer traces every run the scheduler starts.
4. A validation that fails routes to the ERROR exit state; a warning is logged.
5. `LoggingObserver`: the same hooks as log records (cano's ``TracingObserver``
   re-emits them as ``tracing`` events; in Python that is the logging module).
"""

from __future__ import annotations

import enum
import logging
import sys
from collections import defaultdict

import anyio

from cano_dsl import FlowStatus, MemoryStore, Resources, Scheduler, TaskConfig, Workflow, task

try:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from cano_dsl.observability import LoggingObserver, TracingObserver
except ImportError:  # pragma: no cover - depends on the installed extras
    print("tracing_demo needs OpenTelemetry: pip install -e '.[otel]'")
    sys.exit(0)

log = logging.getLogger("tracing_demo")
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("tracing_demo")


class Flow(enum.Enum):
    START = enum.auto()
    PROCESSING = enum.auto()
    COMPLETE = enum.auto()
    ERROR = enum.auto()


@task(state=Flow)
class Validation:
    def __init__(self, should_pass: bool) -> None:
        self.should_pass = should_pass

    def name(self) -> str:
        return "validation"

    async def run_bare(self) -> Flow:
        await anyio.sleep(0.02)
        if self.should_pass:
            log.info("validation passed")
            return Flow.PROCESSING
        log.warning("validation failed")
        return Flow.ERROR


@task(state=Flow)
class DataProcessor:
    def __init__(self, processor_id: str, delay: float) -> None:
        self.processor_id = processor_id
        self.delay = delay

    def name(self) -> str:
        return f"processor:{self.processor_id}"

    async def run(self, res: Resources) -> Flow:
        records = ["record_1", "record_2", "record_3"]
        with tracer.start_as_current_span(
            "data_processing", attributes={"processor_id": self.processor_id}
        ) as span:
            await anyio.sleep(self.delay)
            processed = [f"processed_{r}" for r in records]
            span.set_attribute("records", len(processed))
        res.get("store", MemoryStore).put("result", f"processed {len(processed)} records")
        log.info("processor %s: %d records", self.processor_id, len(processed))
        return Flow.COMPLETE


@task(state=Flow)
class MathTask:
    def __init__(self, operation: str, fail_first: bool = False) -> None:
        self.operation = operation
        self.fail_first = fail_first
        self.attempts = 0

    def name(self) -> str:
        return f"math:{self.operation}"

    def config(self) -> TaskConfig:
        return TaskConfig().with_fixed_retry(2, 0.1)

    async def run(self, res: Resources) -> Flow:
        self.attempts += 1
        if self.fail_first and self.attempts == 1:
            raise ConnectionError("operand service not ready")
        store = res.get("store", MemoryStore)
        a, b = store.get("a", int), store.get("b", int)
        ops = {"add": a + b, "multiply": a * b, "subtract": a - b}
        store.put("result", ops[self.operation])
        log.info("math %s(%d, %d) = %d", self.operation, a, b, ops[self.operation])
        return Flow.COMPLETE


def print_trees(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> None:
    """Print finished spans as trees (children under their parent)."""
    by_parent: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    ids = {s.context.span_id for s in spans if s.context is not None}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None else None
        by_parent[parent if parent in ids else None].append(s)

    def walk(span: ReadableSpan, depth: int) -> None:
        ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        attrs = {k: v for k, v in (span.attributes or {}).items() if k != "cano.task_id"}
        events = [
            f"{e.name}: {dict(e.attributes or {}).get('cano.state') or dict(e.attributes or {})}"
            for e in span.events
        ]
        extra = f" events={events}" if events else ""
        print(
            f"  {'  ' * depth}{span.name} [{span.status.status_code.name}] {ms:.0f} ms {attrs}{extra}"
        )
        span_id = span.context.span_id if span.context is not None else None
        for child in sorted(by_parent[span_id], key=lambda c: c.start_time or 0):
            walk(child, depth + 1)

    for root in sorted(by_parent[None], key=lambda s: s.start_time or 0):
        walk(root, 0)


async def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="    log %(levelname)s %(name)s: %(message)s", stream=sys.stdout
    )
    observer = TracingObserver(tracer)

    print("1. basic workflow")
    store = MemoryStore()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Flow.START, Validation(True))
        .register(Flow.PROCESSING, DataProcessor("basic", 0.05))
        .add_exit_states([Flow.COMPLETE, Flow.ERROR])
        .with_observer(observer)
    )
    with observer.run_span("basic_workflow"):
        final = await wf.orchestrate(Flow.START)
    print(f"   ended in {final.name}: {store.get('result')}")
    print_trees(exporter.get_finished_spans())
    exporter.clear()

    print("\n2. a run span with a business id")
    store = MemoryStore()
    store.put("a", 7)
    store.put("b", 6)
    wf2 = (
        Workflow(Resources().insert("store", store))
        .register(Flow.START, MathTask("multiply", fail_first=True))
        .add_exit_state(Flow.COMPLETE)
        .with_observer(observer)
    )
    with observer.run_span("math_workflow", workflow_id="demo-run-42") as span:
        span.set_attribute("operation", "multiply")
        final = await wf2.orchestrate(Flow.START)
    print(f"   ended in {final.name}: result {store.get('result')}")
    print_trees(exporter.get_finished_spans())
    exporter.clear()

    print("\n3. scheduled runs")
    scheduled = (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Flow.START, Validation(True))
        .register(Flow.PROCESSING, DataProcessor("scheduled", 0.02))
        .add_exit_state(Flow.COMPLETE)
        .with_observer(observer)
    )
    logging.getLogger("tracing_demo").setLevel(logging.WARNING)  # quiet while it repeats
    async with Scheduler().every_seconds("traced", scheduled, Flow.START, 0.3).start() as running:
        await anyio.sleep(0.85)
        while any(f.status == FlowStatus.RUNNING for f in running.list()):
            await anyio.sleep(0.01)  # stop between runs, not in the middle of one
        info = running.status("traced")
    logging.getLogger("tracing_demo").setLevel(logging.INFO)
    spans = exporter.get_finished_spans()
    task_spans = [s for s in spans if s.name.startswith("task ")]
    assert info is not None
    print(f"   scheduler ran the flow {info.run_count} times: {len(task_spans)} task spans")
    exporter.clear()

    print("\n4. a failing validation")
    wf4 = (
        Workflow(Resources().insert("store", MemoryStore()))
        .register(Flow.START, Validation(False))
        .register(Flow.PROCESSING, DataProcessor("never", 0.01))
        .add_exit_states([Flow.COMPLETE, Flow.ERROR])
        .with_observer(observer)
    )
    with observer.run_span("error_workflow"):
        final = await wf4.orchestrate(Flow.START)
    print(f"   ended in {final.name}")
    print_trees(exporter.get_finished_spans())
    exporter.clear()

    print("\n5. LoggingObserver")
    store = MemoryStore()
    store.put("a", 3)
    store.put("b", 4)
    logging.getLogger("cano_dsl.observer").setLevel(logging.DEBUG)
    wf5 = (
        Workflow(Resources().insert("store", store))
        .register(Flow.START, MathTask("add"))
        .add_exit_state(Flow.COMPLETE)
        .with_observer(LoggingObserver())
    )
    final = await wf5.orchestrate(Flow.START)
    print(f"   ended in {final.name}: result {store.get('result')}")


if __name__ == "__main__":
    try:
        anyio.run(main)
    finally:
        provider.shutdown()
