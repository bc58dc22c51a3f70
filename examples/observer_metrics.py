"""A silent observer that only counts events, reported once at the end.

Run with: python examples/observer_metrics.py

`examples/workflow_observer.py` prints every event live. This observer prints nothing
during the run: each hook bumps a counter, and `report()` prints the totals afterwards.
That is the shape to feed Prometheus, StatsD or a log pipeline (push the numbers from
`snapshot()` instead of printing them).

The workflow is OPEN -> WARM_UP -> GUARDED -> DONE, and it is run twice:

- `warm_up` fails on its very first call and succeeds on the retry (one `on_retry`);
- `guarded` always fails and sits behind a breaker with `failure_threshold=1`: run 1
  trips it, run 2 is rejected before the body runs (`on_circuit_open`, then an
  `on_task_failure` carrying the `CircuitOpenError`).
"""

from __future__ import annotations

import enum
import threading
from collections import Counter

import anyio

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    task,
)


class CountingObserver(WorkflowObserver):
    """Counts the lifecycle hooks. Hooks are synchronous and must stay cheap: a lock
    and an increment (split branches may report from several tasks at once)."""

    KEYS = (
        "state_enters",
        "task_starts",
        "task_successes",
        "task_failures",
        "retries",
        "circuit_opens",
    )

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _bump(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def on_state_enter(self, state: str) -> None:
        self._bump("state_enters")

    def on_task_start(self, task_id: str) -> None:
        self._bump("task_starts")

    def on_task_success(self, task_id: str) -> None:
        self._bump("task_successes")

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self._bump("task_failures")

    def on_retry(self, task_id: str, attempt: int) -> None:
        self._bump("retries")

    def on_circuit_open(self, task_id: str) -> None:
        self._bump("circuit_opens")

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {key: self._counts[key] for key in self.KEYS}

    def report(self) -> None:
        print("\nworkflow metrics:")
        for key, value in self.snapshot().items():
            print(f"  {key.replace('_', ' '):<16}{value:>3}")


class Step(enum.Enum):
    OPEN = enum.auto()
    WARM_UP = enum.auto()
    GUARDED = enum.auto()
    DONE = enum.auto()


@task(state=Step, name="open")
async def open_step() -> Step:
    return Step.WARM_UP


@task(state=Step)
class WarmUp:
    """Fails on the first call it ever gets, then always succeeds."""

    def __init__(self) -> None:
        self.calls = 0

    def name(self) -> str:
        return "warm_up"

    def config(self) -> TaskConfig:
        return TaskConfig().with_fixed_retry(3, 0.01)

    async def run_bare(self) -> Step:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("cache not warmed up yet")
        return Step.GUARDED


@task(state=Step)
class Guarded:
    """A dependency that is down for good, behind a one-strike breaker."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.calls = 0

    def name(self) -> str:
        return "guarded"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal().with_circuit_breaker(self.breaker)

    async def run_bare(self) -> Step:
        self.calls += 1
        raise ConnectionError("dependency down")


async def main() -> None:
    metrics = CountingObserver()
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, reset_timeout=3600, half_open_max_calls=1)
    )
    warm_up = WarmUp()
    guarded = Guarded(breaker)
    workflow = (
        Workflow.bare()
        .register(Step.OPEN, open_step)
        .register(Step.WARM_UP, warm_up)
        .register(Step.GUARDED, guarded)
        .add_exit_state(Step.DONE)
        .with_observer(metrics)
    )

    for run in (1, 2):
        try:
            final = await workflow.orchestrate(Step.OPEN)
            print(f"run {run}: reached {final.name}")
        except StateFailure as failure:
            print(
                f"run {run}: stopped in {failure.state.name} ({failure.category}): {failure.error}"
            )

    print(f"\nwarm_up body calls: {warm_up.calls}, guarded body calls: {guarded.calls}")
    print(f"breaker: {breaker.state}")
    metrics.report()

    # two runs x 3 states; one retry (warm_up's first call only: a failed attempt that
    # is retried is not a task failure); guarded failed once per run, by its own error
    # in run 1 and by the open breaker in run 2
    assert metrics.snapshot() == {
        "state_enters": 6,
        "task_starts": 6,
        "task_successes": 4,
        "task_failures": 2,
        "retries": 1,
        "circuit_opens": 1,
    }, metrics.snapshot()


if __name__ == "__main__":
    anyio.run(main)
