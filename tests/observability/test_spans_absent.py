"""Automatic tracing costs nothing without OpenTelemetry: with it blocked, or installed
but never imported, runs work and no ``opentelemetry`` module is imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_RUNS = """
import enum, sys
import anyio
from cano_dsl import JoinConfig, JoinStrategy, TaskConfig, Workflow, task

class Step(enum.Enum):
    A = 1
    SPLIT = 2
    DONE = 3

left = [1]

@task(config=TaskConfig().with_fixed_retry(2, 0), name="a")
async def a() -> Step:
    if left[0]:
        left[0] -= 1
        raise ConnectionError("once")
    return Step.SPLIT

@task(name="b")
async def b() -> int:
    return 1

wf = (Workflow().register(Step.A, a)
      .register_split(Step.SPLIT, [b, b], JoinConfig(JoinStrategy.all(), Step.DONE))
      .add_exit_state(Step.DONE))
for backend in ("asyncio", "trio"):
    left[0] = 1
    assert wf.run_sync(Step.A, backend=backend) is Step.DONE
    assert anyio.run(wf.execute_flow, Step.A, backend=backend) is Step.DONE
leaked = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not leaked, leaked
print("ok")
"""

_BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_runs_work_and_import_nothing_when_opentelemetry_is_absent() -> None:
    proc = _run(_BLOCK + _RUNS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_runs_do_not_import_an_installed_but_unused_opentelemetry() -> None:
    proc = _run(_RUNS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_a_provider_set_with_the_public_api_traces_runs() -> None:
    proc = _run(
        """
        import enum
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from cano_dsl import Workflow, task

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        class Step(enum.Enum):
            A = 1
            DONE = 2

        @task
        async def a() -> Step:
            return Step.DONE

        wf = Workflow().register(Step.A, a).add_exit_state(Step.DONE)
        for backend in ("asyncio", "trio"):
            wf.run_sync(Step.A, backend=backend)
        print(",".join(s.name for s in exporter.get_finished_spans()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    one = "task_attempt,run_with_retries,single_task_execution,workflow_orchestrate"
    assert proc.stdout.strip() == f"{one},{one}"
