"""A lifecycle observer printing every event, and resource health probes.

Run with: python examples/workflow_observer.py

Scenario A: a flaky task fails twice, is retried, and the run completes.
Scenario B: a task behind an open circuit breaker is rejected without running.
Scenario C: `check_all_health` / `aggregate_health` over three resources.

The observer's hooks are synchronous and must be cheap: hand anything slow to a
queue. An exception raised by a hook is logged and never changes the run.
"""

from __future__ import annotations

import enum
import threading

import anyio

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    HealthStatus,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    resource,
    task,
)


class PrintingObserver(WorkflowObserver):
    def __init__(self) -> None:
        self.total = 0
        self.failures = 0
        self.log: list[str] = []
        self._lock = threading.Lock()

    def note(self, line: str) -> None:
        with self._lock:
            self.total += 1
            self.log.append(line)
        print(f"  observer > {line}")

    def on_state_enter(self, state: str) -> None:
        self.note(f"enter state {state}")

    def on_task_start(self, task_id: str) -> None:
        self.note(f"start  task  {task_id}")

    def on_task_success(self, task_id: str) -> None:
        self.note(f"ok     task  {task_id}")

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
        self.note(f"FAIL   task  {task_id}: {error}")

    def on_retry(self, task_id: str, attempt: int) -> None:
        self.note(f"retry  task  {task_id} (attempt {attempt} failed)")

    def on_circuit_open(self, task_id: str) -> None:
        self.note(f"circuit open, rejecting {task_id}")


class Step(enum.Enum):
    LOAD = enum.auto()
    PROBE = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class FlakyLoad:
    def __init__(self, failures: int) -> None:
        self.remaining_failures = failures

    def config(self) -> TaskConfig:
        return TaskConfig().with_fixed_retry(3, 0.02)

    def name(self) -> str:
        return "load"

    async def run_bare(self) -> Step:
        if self.remaining_failures > 0:
            self.remaining_failures -= 1
            raise ConnectionError("upstream not ready yet")
        return Step.DONE


@task(state=Step)
class GuardedProbe:
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def config(self) -> TaskConfig:
        return TaskConfig.minimal().with_circuit_breaker(self.breaker)

    def name(self) -> str:
        return "probe"

    async def run_bare(self) -> Step:
        return Step.DONE


@resource
class PrimaryDb:
    """No health hook: counts as healthy."""


@resource
class ReadReplica:
    async def health(self) -> HealthStatus:
        return HealthStatus.degraded("replication lag 8s")


@resource
class PaymentsApi:
    async def health(self) -> HealthStatus:
        return HealthStatus.unhealthy("503 from gateway")


async def main() -> None:
    observer = PrintingObserver()

    print("Scenario A: a flaky task recovers after retries\n")
    workflow = (
        Workflow.bare()
        .register(Step.LOAD, FlakyLoad(failures=2))
        .add_exit_state(Step.DONE)
        .with_observer(observer)
    )
    final = await workflow.orchestrate(Step.LOAD)
    print(f"  -> workflow finished in state {final.name}\n")

    print("Scenario B: the circuit breaker is open, the task is rejected\n")
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=1, reset_timeout=60, half_open_max_calls=1)
    )
    breaker.try_acquire().record_failure()  # one failure trips it
    guarded = (
        Workflow.bare()
        .register(Step.PROBE, GuardedProbe(breaker))
        .add_exit_state(Step.DONE)
        .with_observer(observer)
    )
    try:
        state = await guarded.orchestrate(Step.PROBE)
        print(f"  -> unexpectedly finished in {state.name}\n")
    except StateFailure as exc:
        print(f"  -> workflow errored as expected: {exc}\n")

    print(f"Observer saw {observer.total} events ({observer.failures} failures).\n")

    print("Scenario C: resource health probes\n")
    resources = (
        Resources()
        .insert("db", PrimaryDb())
        .insert("replica", ReadReplica())
        .insert("payments", PaymentsApi())
    )
    for key, status in sorted((await resources.check_all_health()).items()):
        print(f"  {key:>9}: {shown(status)}")
    print(f"  -> aggregate health: {shown(await resources.aggregate_health())}")


def shown(status: HealthStatus) -> str:
    return f"{status.kind} ({status.reason})" if status.reason else status.kind


if __name__ == "__main__":
    anyio.run(main)
