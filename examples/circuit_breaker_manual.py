"""Circuit breaker, manual API: try_acquire / record_success / record_failure.

Run with: python examples/circuit_breaker_manual.py

A task drives a `CircuitBreaker` by hand instead of through
`TaskConfig.with_circuit_breaker`: it looks the breaker up in `Resources`, asks for a
permit, makes the call and records the outcome. A permit that is dropped unresolved
counts as a failure, so early returns and exceptions cannot leak a trial slot.

    CLOSED --3 consecutive failures--> OPEN --reset_timeout, next try_acquire--> HALF_OPEN
    HALF_OPEN --1 trial success--> CLOSED

Use this manual form when one task body wraps several sub-calls behind one breaker;
the integrated form (retry loop short-circuit, before/after ordering) is usually better.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitPolicy,
    CircuitState,
    Resources,
    StateFailure,
    TaskConfig,
    TaskExecutionError,
    Workflow,
    task,
)


class Step(enum.Enum):
    CALL = enum.auto()
    DONE = enum.auto()


class FlakyClient:
    """A fake upstream that fails while unhealthy."""

    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0

    async def fetch(self) -> str:
        self.calls += 1
        if not self.healthy:
            raise TaskExecutionError(f"upstream call #{self.calls} failed")
        return f"data-{self.calls}"


@task(state=Step)
class ManualTask:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()  # no retries, no automatic breaker: we do it by hand

    async def run(self, res: Resources) -> Step:
        breaker = res.get("breaker", CircuitBreaker)
        client = res.get("client", FlakyClient)
        permit = breaker.try_acquire()  # raises CircuitOpenError when open / saturated
        try:
            payload = await client.fetch()
        except Exception:
            permit.record_failure()  # CLOSED: count it; HALF_OPEN: reopen at once
            raise
        permit.record_success()  # CLOSED: reset the count; HALF_OPEN: count a trial success
        print(f"    -> got: {payload}")
        return Step.DONE


def describe(error: BaseException) -> str:
    cause = error.error if isinstance(error, StateFailure) else error
    if isinstance(cause, CircuitOpenError):
        return "rejected (breaker open)"
    return f"err: {cause}"


async def main() -> None:
    print("=== Circuit breaker, manual API ===\n")
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=3, reset_timeout=0.15, half_open_max_calls=1)
    )
    client = FlakyClient()
    resources = Resources().insert("breaker", breaker).insert("client", client)
    workflow = Workflow(resources).register(Step.CALL, ManualTask()).add_exit_state(Step.DONE)

    print("Phase 1: dependency unhealthy (threshold = 3 consecutive failures)")
    for attempt in range(1, 6):
        try:
            await workflow.orchestrate(Step.CALL)
            label = "ok"
        except Exception as error:
            label = describe(error)
        print(f"  call {attempt}: {label} | breaker={breaker.state.name}")
    print(f"\nUpstream hit count: {client.calls} (3 reached it; 2 were rejected by the breaker)")

    print("\nPhase 2: heal the dependency and wait past reset_timeout (150 ms)")
    client.healthy = True
    await anyio.sleep(0.2)
    print(f"  breaker after the wait: {breaker.state.name} (lazy: still OPEN until asked)")

    print("\nPhase 3: half-open trial; one successful probe closes the breaker")
    for attempt in range(1, 4):
        await workflow.orchestrate(Step.CALL)
        print(f"  call {attempt}: ok | breaker={breaker.state.name}")

    print("\nPhase 4: a permit dropped without an outcome counts as a failure")
    solo = CircuitBreaker(CircuitPolicy(failure_threshold=1))
    permit = solo.try_acquire()
    del permit
    print(f"  breaker after the dropped permit: {solo.state.name}")

    print(f"\nFinal upstream hit count: {client.calls}")
    print(f"Final breaker state: {breaker.state.name}")
    assert breaker.state is CircuitState.CLOSED
    assert solo.state is CircuitState.OPEN
    print("\n=== Done ===")


if __name__ == "__main__":
    anyio.run(main)
