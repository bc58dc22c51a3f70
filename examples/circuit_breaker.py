"""Circuit breaker on a flaky upstream, driven by the task's retry loop.

Run with: python examples/circuit_breaker.py

One `CircuitBreaker` is shared by every run of the workflow (and would be shared by
every task calling the same upstream). It is attached with
`TaskConfig().with_circuit_breaker(breaker)` next to a retry policy, so the retry loop
asks the breaker before each attempt and reports each attempt's outcome to it:

    CLOSED --3 consecutive failed attempts--> OPEN --0.2 s, next attempt--> HALF_OPEN
    HALF_OPEN --1 successful probe--> CLOSED

Once the breaker opens, the remaining retries are skipped and the run fails with a
`StateFailure` whose category is "circuit_open" (attempt 0: the body was not run for it).
While it is open, further runs fail fast without calling the task body at all.
"""

from __future__ import annotations

import enum

import anyio

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    CircuitState,
    Resources,
    RetryMode,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)


class Step(enum.Enum):
    FETCH = enum.auto()
    DONE = enum.auto()


class Upstream:
    """A pretend HTTP dependency that fails until someone flips `healthy`."""

    def __init__(self) -> None:
        self.healthy = False
        self.hits = 0

    async def get(self) -> str:
        self.hits += 1
        await anyio.sleep(0)
        if not self.healthy:
            raise ConnectionError(f"upstream hit #{self.hits}: 503 Service Unavailable")
        return f"quote #{self.hits}"


@task(state=Step)
class FetchQuote:
    """Calls the upstream; the breaker and the retries come from `config()`."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.body_calls = 0

    def name(self) -> str:
        return "fetch_quote"

    def config(self) -> TaskConfig:
        # up to 5 retries, 10 ms apart; the breaker cuts the loop short when it trips
        return TaskConfig().with_retry(RetryMode.fixed(5, 0.01)).with_circuit_breaker(self.breaker)

    async def run(self, res: Resources) -> Step:
        self.body_calls += 1
        print(f"    body call #{self.body_calls} (breaker={self.breaker.state})")
        quote = await res.get("upstream", Upstream).get()
        print(f"    -> got {quote}")
        return Step.DONE


async def attempt_run(workflow: Workflow[Step], label: str) -> StateFailure | None:
    """Run once; print and return the failure, if any."""
    print(f"{label}:")
    try:
        final = await workflow.orchestrate(Step.FETCH)
    except StateFailure as failure:
        print(
            f"  run failed in {failure.state.name}: category={failure.category!r}, "
            f"attempt={failure.attempt}, cause={type(failure.error).__name__}"
        )
        return failure
    print(f"  run finished in {final.name}")
    return None


def current(breaker: CircuitBreaker) -> CircuitState:
    """Read the state afresh (it changes behind the type checker's back)."""
    return breaker.state


async def main() -> None:
    print("=== Circuit breaker with the retry loop ===\n")
    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=3, reset_timeout=0.2, half_open_max_calls=1)
    )
    upstream = Upstream()
    fetch = FetchQuote(breaker)
    workflow = (
        Workflow[Step](Resources().insert("upstream", upstream))
        .register(Step.FETCH, fetch)
        .add_exit_state(Step.DONE)
    )
    print(f"breaker starts {breaker.state}\n")

    # 1. The upstream is down: three failed attempts trip the breaker mid-retry-loop.
    failure = await attempt_run(workflow, "Run 1: upstream down (threshold 3, 6 attempts allowed)")
    assert failure is not None
    assert failure.category == "circuit_open" and failure.attempt == 0
    print(f"  upstream hits: {upstream.hits}, breaker={breaker.state}")
    print("  (attempt 4 was refused by the breaker; attempts 5 and 6 were never tried)\n")
    assert breaker.state is CircuitState.OPEN and upstream.hits == 3

    # 2. While open, a run fails fast: the task body is not called at all.
    calls_before = fetch.body_calls
    failure = await attempt_run(workflow, "Run 2: breaker open, fail fast")
    assert failure is not None and failure.category == "circuit_open"
    print(f"  body calls during this run: {fetch.body_calls - calls_before}")
    print(f"  upstream hits: {upstream.hits}, breaker={breaker.state}\n")
    assert fetch.body_calls == calls_before

    # 3. The upstream heals; wait out the reset timeout. `state` is lazy: still OPEN.
    upstream.healthy = True
    await anyio.sleep(0.25)
    print("Upstream healed, waited 0.25 s (> reset_timeout 0.2 s)")
    print(f"  breaker={breaker.state} (lazy: it moves on at the next acquire)\n")
    assert breaker.state is CircuitState.OPEN

    # 4. The next run is admitted as the half-open probe; its success closes the breaker.
    failure = await attempt_run(workflow, "Run 3: half-open probe")
    assert failure is None
    print(f"  upstream hits: {upstream.hits}, breaker={breaker.state}\n")
    assert current(breaker) is CircuitState.CLOSED

    # 5. Business as usual.
    failure = await attempt_run(workflow, "Run 4: closed again")
    assert failure is None
    print(f"  upstream hits: {upstream.hits}, breaker={breaker.state}\n")

    print(f"Final: upstream hits={upstream.hits}, body calls={fetch.body_calls}")
    print(f"Final breaker state: {breaker.state}")
    print("\n=== Done ===")


if __name__ == "__main__":
    anyio.run(main)
