"""The examples ported to close the parity gap with cano's examples/ run as scripts,
exit 0 and print what proves they did their job (values computed by the run, checked
for consistency where they are random)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(name: str, *args: str) -> str:
    """Run examples/<name>.py with the repo on PYTHONPATH; return its stdout
    with runs of whitespace collapsed on every line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stderr}"
    return "\n".join(" ".join(line.split()) for line in proc.stdout.splitlines())


def has(out: str, *expected: str) -> None:
    for text in expected:
        assert text in out, f"{text!r} missing from:\n{out}"


def number(pattern: str, out: str) -> int:
    found = re.search(pattern, out)
    assert found, f"{pattern!r} not found in:\n{out}"
    return int(found.group(1))


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- one checker per example -------------------------------------------------------


def check_task_simple(out: str) -> None:
    has(out, "workflow ended in COMPLETE")
    drawn = [int(n) for n in re.search(r"GENERATE drew \[([\d, ]+)\]", out).group(1).split(",")]  # type: ignore[union-attr]
    evens = [n for n in drawn if n % 2 == 0]
    has(out, f"even numbers: {evens}", f"count: {len(evens)}", f"sum: {sum(evens)}")


def check_task_interface_demo(out: str) -> None:
    has(
        out,
        "final state: COMPLETE",
        "final result: task_enhanced_processed_data_for_FirstProcessor",
        "task ids seen by the observer: ['__main__.Initializer', 'FirstProcessor', "
        "'SecondProcessor']",
    )


def check_mixed_workflow(out: str) -> None:
    has(out, "path: GENERATE_DATA -> PROCESS_DATA -> VALIDATE_RESULTS -> GENERATE_REPORT")
    has(out, "Validation issues: 0", "Status: PASSED")
    kept = number(r"process: (\d+) of 20 points above 25.0", out)
    assert kept > 0
    has(out, f"Data points processed: {kept}")


def check_mixed_workflow_nothing_kept(out: str) -> None:
    has(out, "process: 0 of 20 points above 100.0", "nothing left, skipping validation")
    has(out, "path: GENERATE_DATA -> PROCESS_DATA -> GENERATE_REPORT -> COMPLETE")
    has(out, "Data points processed: 0")


def check_workflow_stack_store(out: str) -> None:
    has(
        out,
        "revenue: $99.99",
        "customer cust_12345 made 1 transaction(s) totalling $99.99 (150 ms)",
        "revenue: $29.99",
        "customer cust_67890 made 1 transaction(s) totalling $29.99 (75 ms)",
        "No transactions processed for customer anonymous (75 ms)",
    )
    assert out.count("final state: COMPLETE") == 3


def check_workflow_validation(out: str) -> None:
    has(
        out,
        "validate() -> ok",
        "validate_initial_state(PREPARE) -> ok",
        "orchestrate -> DONE",
        "Split join_state ORPHAN is neither registered nor an exit state",
        "validate() with no exit state -> ConfigurationError",
        "orchestrate() refuses it too",
        "validate_initial_state(PROCESS) -> ConfigurationError",
        "validate_initial_state(DONE) -> ok",
        "orchestrate(DONE) -> DONE",
    )
    assert out.count("worker ") == 2  # only the well-formed run ran its split


def check_workflow_bare(out: str) -> None:
    has(out, "reached PERSIST", "persist: stored sanitized=100", "reached DONE")
    has(out, "store holds sanitized=100")
    assert out.count("persist:") == 1  # the bare workflow stopped before PERSIST


def check_testing_helpers(out: str) -> None:
    has(
        out,
        "1. reached DONE; path recorded: ['START', 'WORK', 'DONE']",
        "checkpoint appends observed: 3",
        "rows left after the clean run: 0",
        "processed=42",
        "2. run failed in START after 1 attempt(s)",
        "forced panic on attempt 1",
        "3. reached DONE on attempt 3: 20 s of retry delay on the mock clock",
        "undo order: ['charge', 'reserve']",
    )
    wall = float(re.search(r"clock, ([\d.]+) s of wall time", out).group(1))  # type: ignore[union-attr]
    assert wall < 20


def check_resources_advanced(out: str) -> None:
    has(
        out,
        "ping='pong'",
        "get(Key.CACHE, AppConfig) -> ResourceTypeMismatch",
        "try_insert('counter', 2) -> ResourceDuplicateKey",
        "the first value is kept: 1",
        "setup_all() raised ConnectionError: gamma could not connect",
        "[2] setup:gamma",
        "torn down, in order: ['beta', 'alpha']",
        "gamma torn down: False; delta touched: False",
    )


def check_workflow_simple(out: str) -> None:
    has(out, "final state: COMPLETE", "keys left in the store: ['count']")
    evens = number(r"generate: (\d+) of them are even", out)
    has(out, f"even numbers found: {evens}", f"count: {evens} stored")


def check_workflow_negotiation(out: str) -> None:
    deal = number(r"-> DEAL at \$(\d+)", out)
    assert deal <= 1000
    has(out, f"buyer accepts ${deal} (budget $1000)")
    has(out, "-> NO_DEAL after 10 rounds, $50 apart", "buyer walks away: $100 is 2.0x")


def check_store_custom_backend(out: str) -> None:
    has(
        out,
        "read back a -> result=100, label='from-writer-a'",
        "read back b -> result=200, label='from-writer-b'",
        "keys in the shared MemoryStore: ['a/label', 'a/result', 'b/label', 'b/result']",
        "stored a 1048576 byte payload",
        "two reads are the same object: True",
        "and the one that was put: True",
        "first byte seen through the second read: 0x01",
        "finished in DONE",
    )


def check_workflow_resources(out: str) -> None:
    has(
        out,
        "INIT: value = 10 x multiplier = 30",
        "PROCESS: value + setup count = 31",
        "VERIFY: read back final_result = 31",
        "in-memory result: 31, read back: 31",
        "counter set up 1 time(s), torn down 1 time(s)",
        "database file still on disk: False",
    )
    lines = out.splitlines()
    opened = next(i for i, line in enumerate(lines) if "db: opened" in line)
    first_task = next(i for i, line in enumerate(lines) if "INIT:" in line)
    removed = next(i for i, line in enumerate(lines) if "db: closed and removed" in line)
    last_task = next(i for i, line in enumerate(lines) if "VERIFY:" in line)
    assert opened < first_task < last_task < removed


def check_workflow_on_request(out: str) -> None:
    has(
        out,
        "'Hello World From Cano' -> 200 "
        '{"original": "Hello World From Cano", "word_count": 4, '
        '"uppercased": "HELLO WORLD FROM CANO"}',
        "'state machines on anyio' -> 200",
        '"word_count": 4, "uppercased": "STATE MACHINES ON ANYIO"',
        '-> 422 {"error": "input text is empty", "state": "PARSE"}',
    )


def check_scheduler_book_prepositions(out: str) -> None:
    has(out, "download 1952: skipped", "analyse: 2 book(s)", "#1 ", "#2 ")
    assert "#3 " not in out
    for flow in ("download-1342", "download-11", "download-1952", "analyse"):
        has(out, f"{flow} completed runs=1")


def check_scheduler_mapreduce_books(out: str) -> None:
    has(
        out,
        "[batch-b] skipping a book: book 1952 is not on the mirror",
        "[batch-b] branch analyse-1952[2] failed: KeyNotFound",
        "[batch-a] summarised 4 of 4 books",
        "[batch-b] summarised 3 of 4 books",
        "[batch-c] summarised 4 of 4 books",
        "flows completed: 3 of 3",
        "batches reduced: 3, books analysed: 11",
    )
    ranks = re.findall(r"^#(\d+) ", out, re.M)
    assert [int(r) for r in ranks] == list(range(1, 12))


def check_scheduler_mixed_workflows(out: str) -> None:
    has(out, "registered 3 flows", "manual-task-1 executed 1 time(s); scheduler saw 1")
    assert number(r"scheduled-task-2 executed (\d+) time", out) >= 2
    assert number(r"scheduled-task-3 executed (\d+) time", out) >= 1
    has(out, "last execution written to the store: ")


def check_metrics_demo(out: str) -> None:
    scheduled = number(r"3 direct runs, (\d+) scheduled runs", out)
    assert scheduled >= 1
    runs = 3 + scheduled
    has(
        out,
        "cano_task_retries_total{task=fetch} = 1",
        "cano_task_attempts_total{outcome=failed} = 1",
        f"cano_task_attempts_total{{outcome=completed}} = {2 * runs}",
        f"cano_state_enters_total{{state=DONE}} = {runs}",
        f"cano_observed_task_runs_total{{outcome=completed,task=process}} = {runs}",
        "cano_workflow_runs_total{outcome=completed} = 3",
        f"cano_scheduler_flow_runs_total{{flow=demo_flow,outcome=completed}} = {scheduled}",
        "cano_workflow_active = 0",
    )


def check_tracing_demo(out: str) -> None:
    has(
        out,
        "ended in COMPLETE: processed 3 records",
        "basic_workflow [UNSET]",
        "task validation [OK]",
        "task processor:basic [OK]",
        "data_processing [UNSET]",
        "'cano.workflow_id': 'demo-run-42'",
        "task retry",
        "ended in COMPLETE: result 42",
        "log WARNING tracing_demo: validation failed",
        "ended in ERROR",
        "cano_dsl.observer: task succeeded task_id=math:add",
        "ended in COMPLETE: result 7",
    )
    runs = number(r"scheduler ran the flow (\d+) times", out)
    spans = number(r"times: (\d+) task spans", out)
    assert runs >= 2 and spans >= runs


def check_metrics_tracing_context(out: str) -> None:
    has(
        out,
        "cano_workflow_runs_total{outcome=completed,workflow_id=demo-run-1} = 1",
        "cano_workflow_runs_total{outcome=completed,request_id=abc} = 1",
        "cano_workflow_runs_total{outcome=completed} = 1",
        "cano_task_attempts_total{outcome=completed,request_id=abc} = 2",
        "cano_task_duration_seconds{kind=single,state=FETCH,workflow_id=demo-run-1} = count=1",
    )


def check_ai_workflow_yes_and(out: str) -> None:
    has(out, "scripted partner ready", "ended in END after 8 turns")
    has(out, "lines from the model: 8, stock lines: 0", "closed after 8 calls")
    assert len(re.findall(r"^actor2: Yes, and ", out, re.M)) == 4


def check_ai_workflow_yes_and_unreachable(out: str) -> None:
    has(out, "ended in END after 8 turns", "lines from the model: 0, stock lines: 8")
    assert out.count("model call failed") == 8


def check_simd_pipeline(out: str) -> None:
    has(out, "MULTIPLY 10 pairs", "TRANSFORM 10 products", "COMPLETE in ")
    has(out, "products: 10, summaries: 1")


CASES: dict[str, tuple[str, tuple[str, ...], Callable[[str], None]]] = {
    "task_simple": ("task_simple", (), check_task_simple),
    "task_simple_seed": ("task_simple", ("--seed", "99"), check_task_simple),
    "task_interface_demo": ("task_interface_demo", (), check_task_interface_demo),
    "mixed_workflow": ("mixed_workflow", (), check_mixed_workflow),
    "mixed_workflow_high_threshold": (
        "mixed_workflow",
        ("--threshold", "100"),
        check_mixed_workflow_nothing_kept,
    ),
    "workflow_stack_store": ("workflow_stack_store", (), check_workflow_stack_store),
    "workflow_validation": ("workflow_validation", (), check_workflow_validation),
    "workflow_bare": ("workflow_bare", (), check_workflow_bare),
    "testing_helpers": ("testing_helpers", (), check_testing_helpers),
    "resources_advanced": ("resources_advanced", (), check_resources_advanced),
    "workflow_simple": ("workflow_simple", (), check_workflow_simple),
    "workflow_negotiation": ("workflow_negotiation", (), check_workflow_negotiation),
    "store_custom_backend": ("store_custom_backend", (), check_store_custom_backend),
    "workflow_resources": ("workflow_resources", (), check_workflow_resources),
    "workflow_on_request": ("workflow_on_request", (), check_workflow_on_request),
    "scheduler_book_prepositions": (
        "scheduler_book_prepositions",
        (),
        check_scheduler_book_prepositions,
    ),
    "scheduler_mapreduce_books": ("scheduler_mapreduce_books", (), check_scheduler_mapreduce_books),
    "scheduler_mixed_workflows": ("scheduler_mixed_workflows", (), check_scheduler_mixed_workflows),
    "ai_workflow_yes_and": ("ai_workflow_yes_and", (), check_ai_workflow_yes_and),
    "workflow_simd_matrix_pipeline_pure": (
        "workflow_simd_matrix_pipeline",
        ("--pure",),
        check_simd_pipeline,
    ),
}

OTEL_CASES: dict[str, Callable[[str], None]] = {
    "metrics_demo": check_metrics_demo,
    "tracing_demo": check_tracing_demo,
    "metrics_tracing_context": check_metrics_tracing_context,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_example_prints_what_it_did(case: str) -> None:
    name, args, check = CASES[case]
    check(run(name, *args))


@pytest.mark.parametrize("name", sorted(OTEL_CASES))
def test_otel_example_prints_its_telemetry(name: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    OTEL_CASES[name](run(name))


def test_yes_and_falls_back_to_stock_lines_when_the_model_is_unreachable() -> None:
    out = run("ai_workflow_yes_and", "--ollama", f"http://127.0.0.1:{closed_port()}")
    check_ai_workflow_yes_and_unreachable(out)


def test_matrix_pipeline_numpy_and_pure_python_agree() -> None:
    pytest.importorskip("numpy")
    vectorised = run("workflow_simd_matrix_pipeline")
    pure = run("workflow_simd_matrix_pipeline", "--pure")
    check_simd_pipeline(vectorised)
    has(vectorised, "pipeline on numpy", "largest difference between the two: ")
    has(pure, "pipeline on pure Python")
    stats = r"matrix 1: sum=[\d.]+ mean=([\d.]+) variance=([\d.]+)"
    got_np = re.search(stats, vectorised)
    got_py = re.search(stats, pure)
    assert got_np and got_py
    # same seed, same data: float32 (numpy) and float64 (lists) agree closely
    for a, b in zip(got_np.groups(), got_py.groups(), strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-5)
    diff = float(re.search(r"largest difference between the two: (\S+)", vectorised).group(1))  # type: ignore[union-attr]
    assert diff < 1e-2


def test_workflow_on_request_serves_until_stopped() -> None:
    """``--serve`` keeps listening: a request from outside the script gets its answer."""
    import json
    import time
    import urllib.request

    port = closed_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "workflow_on_request.py"),
            "--serve",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/process",
                    data=json.dumps({"text": "one two three"}).encode(),
                    method="POST",
                )
                with urllib.request.urlopen(request, timeout=10) as reply:
                    body = json.loads(reply.read())
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert body == {"original": "one two three", "word_count": 3, "uppercased": "ONE TWO THREE"}
        # a request that is not HTTP gets an error reply, and the server keeps serving
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GARBAGE\r\n\r\n")
            assert raw.recv(200).startswith(b"HTTP/1.1 404 ")
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["word_count"] == 3
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_index_page_lists_every_cano_example_with_an_existing_port() -> None:
    """docs/examples.md has one row per cano example (53), each naming a Python file
    of the same name that exists, and every example script is in the index."""
    index = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| \[`(\w+)`\]\(https://github\.com/nassor/cano/blob/main/cano/"
        r"examples/(\w+)\.rs\) \| `examples/(\w+)\.py` \|",
        index,
        re.M,
    )
    assert len(rows) == 53
    assert len({name for name, _, _ in rows}) == 53
    for name, rust, python in rows:
        assert name == rust == python
        assert (ROOT / "examples" / f"{python}.py").is_file(), python
    # every other script is listed under "Examples with no cano original"
    page = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    own = page.split("## Examples with no cano original", 1)[1]
    listed = set(re.findall(r"`examples/(\w+)\.py`", own))
    scripts = {p.stem for p in (ROOT / "examples").glob("*.py")}
    assert scripts - listed == {name for name, _, _ in rows}
    assert listed <= scripts, f"listed but missing: {sorted(listed - scripts)}"
