"""A four-step data pipeline whose middle step chooses the next state.

    python examples/mixed_workflow.py [--seed N] [--threshold T]

Port of cano's ``mixed_workflow`` example. GENERATE_DATA draws 20 values in
[0, 100); PROCESS_DATA keeps those above the threshold, scales them by 1.5 and
computes their statistics; VALIDATE_RESULTS checks the statistics against the data;
GENERATE_REPORT writes a report. When nothing survives the threshold, PROCESS_DATA
skips validation and goes straight to the report: a task returning a different next
state is all the branching a workflow needs.
"""

from __future__ import annotations

import argparse
import enum
import math
import random

import anyio
import attrs

from cano_dsl import MemoryStore, Resources, Workflow, WorkflowObserver, task


class Stage(enum.Enum):
    GENERATE_DATA = enum.auto()
    PROCESS_DATA = enum.auto()
    VALIDATE_RESULTS = enum.auto()
    GENERATE_REPORT = enum.auto()
    COMPLETE = enum.auto()


@attrs.frozen
class Stats:
    count: int
    mean: float
    low: float
    high: float


@task(state=Stage)
class GenerateData:
    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng

    async def run(self, res: Resources) -> Stage:
        data = [self.rng.uniform(0, 100) for _ in range(self.size)]
        print(f"generate: {len(data)} points from {min(data):.2f} to {max(data):.2f}")
        res.get("store", MemoryStore).put("raw", data)
        return Stage.PROCESS_DATA


@task(state=Stage)
class ProcessData:
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        raw = store.get("raw", list)
        if not raw:
            raise ValueError("no data to process")
        kept = [x * 1.5 for x in raw if x > self.threshold]
        if kept:
            stats = Stats(len(kept), sum(kept) / len(kept), min(kept), max(kept))
        else:
            stats = Stats(0, 0.0, 0.0, 0.0)
        store.put("processed", kept)
        store.put("stats", stats)
        print(f"process: {stats.count} of {len(raw)} points above {self.threshold}")
        if stats.count == 0:
            print("process: nothing left, skipping validation")
            return Stage.GENERATE_REPORT
        return Stage.VALIDATE_RESULTS


@task(state=Stage)
class ValidateResults:
    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        stats = store.get("stats", Stats)
        data = store.get("processed", list)
        issues: list[str] = []
        if stats.count != len(data):
            issues.append("count differs between stats and data")
        if not math.isfinite(stats.mean):
            issues.append("mean is not a finite number")
        if any(not math.isfinite(x) for x in data):
            issues.append("data holds a non-finite value")
        store.put("issues", issues)
        print(f"validate: {len(issues)} issue(s)")
        return Stage.GENERATE_REPORT


@task(state=Stage)
class GenerateReport:
    async def run(self, res: Resources) -> Stage:
        store = res.get("store", MemoryStore)
        stats = store.get("stats", Stats)
        issues = store.get("issues", list) if "issues" in store else []
        await anyio.sleep(0.05)  # pretend to render something
        store.put(
            "report",
            "\n".join(
                [
                    "=== PROCESSING REPORT ===",
                    f"Data points processed: {stats.count}",
                    f"Mean value: {stats.mean:.2f}",
                    f"Min value: {stats.low:.2f}",
                    f"Max value: {stats.high:.2f}",
                    f"Validation issues: {len(issues)}",
                    f"Status: {'PASSED' if not issues else 'WITH WARNINGS'}",
                ]
            ),
        )
        return Stage.COMPLETE


class PathRecorder(WorkflowObserver):
    def __init__(self) -> None:
        self.states: list[str] = []

    def on_state_enter(self, state: str) -> None:
        self.states.append(state)


async def main(seed: int, threshold: float) -> None:
    store = MemoryStore()
    path = PathRecorder()
    wf = (
        Workflow(Resources().insert("store", store))
        .register(Stage.GENERATE_DATA, GenerateData(20, random.Random(seed)))
        .register(Stage.PROCESS_DATA, ProcessData(threshold))
        .register(Stage.VALIDATE_RESULTS, ValidateResults())
        .register(Stage.GENERATE_REPORT, GenerateReport())
        .add_exit_state(Stage.COMPLETE)
        .with_observer(path)
    )
    final = await wf.orchestrate(Stage.GENERATE_DATA)
    print(f"\npath: {' -> '.join(path.states)}")
    print(f"final state: {final.name}\n")
    print(store.get("report", str))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=25.0)
    args = parser.parse_args()
    anyio.run(main, args.seed, args.threshold)
