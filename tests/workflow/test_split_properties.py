"""Property tests of the join decision (REFERENCE §4.2-4.3) against a reference model,
on asyncio and trio.

Branch delays are counted in scheduling points (``anyio.lowlevel.checkpoint``), never
wall-clock, and distinct per branch (spaced by three points) so the completion order
is the delay order on both backends. A hung branch only exists under a split timeout
(or when the strategy exits early before it matters); on trio the run uses trio's
autojumping MockClock so the timeout costs no wall time, on asyncio the timeout is
20 ms.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    task,
)

BACKENDS = ["asyncio", "trio"]
HANG_TIMEOUT = 0.3  # asyncio runs on the real clock: room for 18 checkpoints on a loaded machine
NEVER = 60.0
FOREVER = "runs forever"


class Step(enum.Enum):
    SPLIT = enum.auto()
    JOIN = enum.auto()


@task
class Branch:
    def __init__(self, idx: int, outcome: str, delay: int, live: list[int]) -> None:
        self.idx = idx
        self.outcome = outcome
        self.delay = delay
        self.live = live  # [in flight now, peak]

    def name(self) -> str:
        return "b"

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run_bare(self) -> Step:
        live = self.live
        live[0] += 1
        live[1] = max(live[1], live[0])
        try:
            for _ in range(self.delay):
                await anyio.lowlevel.checkpoint()
            if self.outcome == "hang":
                await anyio.sleep_forever()
            if self.outcome == "fail":
                raise ValueError(f"branch {self.idx} broke")
            return Step.JOIN
        finally:
            live[0] -= 1


class Hooks(WorkflowObserver):
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []

    def on_task_success(self, task_id: str) -> None:
        self.outcomes.append(("success", task_id))

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self.outcomes.append(("failure", task_id))


# -- the reference model -----------------------------------------------------------------


def summary(errors: list[int]) -> str:
    parts = [f"task {i}: branch {i} broke" for i in errors[:3]]
    if len(errors) > 3:
        parts.append(f"... and {len(errors) - 3} more error(s)")
    return "; errors: " + "; ".join(parts) if parts else ""


def reference(
    outcomes: list[str], delays: list[int], strategy: JoinStrategy, timeout: bool
) -> tuple[Any, list[tuple[str, str]]]:
    """``(Step.JOIN | error message | FOREVER, expected success/failure hooks)``."""
    total = len(outcomes)
    kind = strategy.kind
    succ: list[int] = []
    errs: list[int] = []
    early = False
    for i in sorted((i for i in range(total) if outcomes[i] != "hang"), key=lambda i: delays[i]):
        (succ if outcomes[i] == "ok" else errs).append(i)
        if (kind == "any" and succ) or (kind == "partial_results" and len(succ) >= strategy.n):
            early = True
            break
    hooks = [("success", f"b[{i}]") for i in succ] + [("failure", f"b[{i}]") for i in errs]
    if not early and "hang" in outcomes:
        if not timeout:
            return FOREVER, []
        if kind != "partial_timeout":
            running = ", ".join(f"b[{i}]" for i, o in enumerate(outcomes) if o == "hang")
            return f"Split task timeout exceeded ({HANG_TIMEOUT:g} s); still running: {running}", []
    ok = len(succ)
    if kind == "partial_results":
        if ok >= strategy.n:
            return Step.JOIN, hooks
        return (
            f"Partial results condition not met: {ok} completed successfully, "
            f"{strategy.n} required{summary(errs)}",
            hooks,
        )
    if kind == "partial_timeout":
        if succ or errs:
            return Step.JOIN, hooks
        return "PartialTimeout: No tasks completed before timeout", hooks
    needed = {
        "all": total,
        "any": 1,
        "quorum": strategy.n,
        "percentage": math.ceil(total * strategy.p),
    }[kind]
    if ok >= needed:
        return Step.JOIN, hooks
    shown = {"all": "All", "any": "Any", "quorum": f"Quorum({strategy.n})"}.get(
        kind, f"Percentage({strategy.p})"
    )
    return (
        f"Join condition not met: {ok} of {total} tasks completed successfully, "
        f"strategy: {shown}{summary(errs)}",
        hooks,
    )


# -- running -----------------------------------------------------------------------------


def run_split(
    backend: str,
    outcomes: list[str],
    delays: list[int],
    cfg: JoinConfig[Step],
) -> tuple[Any, list[tuple[str, str]], int]:
    live = [0, 0]
    hooks = Hooks()
    tasks = [Branch(i, o, d, live) for i, (o, d) in enumerate(zip(outcomes, delays, strict=True))]
    wf = (
        Workflow.bare()
        .register_split(Step.SPLIT, tasks, cfg)
        .add_exit_state(Step.JOIN)
        .with_observer(hooks)
    )

    async def main() -> Any:
        try:
            return await wf.orchestrate(Step.SPLIT)
        except StateFailure as exc:
            return exc.error.message  # type: ignore[attr-defined]

    options: dict[str, Any] = {}
    if backend == "trio":
        import trio.testing

        options["clock"] = trio.testing.MockClock(autojump_threshold=0)
    got = anyio.run(main, backend=backend, backend_options=options)
    assert live[0] == 0, "a branch is still running after the split returned"
    return got, hooks.outcomes, live[1]


strategies = st.one_of(
    st.just(JoinStrategy.all()),
    st.just(JoinStrategy.any()),
    st.integers(0, 8).map(JoinStrategy.quorum),
    st.sampled_from([0.01, 0.25, 1 / 3, 0.5, 0.75, 0.9, 1.0]).map(JoinStrategy.percentage),
    st.integers(0, 8).map(JoinStrategy.partial_results),
    st.just(JoinStrategy.partial_timeout()),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[str], list[int], JoinStrategy, bool]:
    outcomes = draw(st.lists(st.sampled_from(["ok", "fail", "hang"]), max_size=7))
    order = draw(st.permutations(range(len(outcomes))))
    delays = [3 * rank for rank in order]
    strategy = draw(strategies)
    timeout = strategy.kind == "partial_timeout" or draw(st.booleans())
    return outcomes, delays, strategy, timeout


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
@example(scenario=(["fail", "hang"], [0, 3], JoinStrategy.partial_results(0), True))
@example(scenario=(["ok", "ok", "hang"], [0, 3, 6], JoinStrategy.quorum(2), True))
@example(scenario=(["fail", "fail", "hang"], [3, 0, 6], JoinStrategy.partial_timeout(), True))
@example(scenario=(["fail"] * 5, [12, 9, 6, 3, 0], JoinStrategy.any(), False))
def test_join_decision_matches_the_reference(
    backend: str, scenario: tuple[list[str], list[int], JoinStrategy, bool]
) -> None:
    outcomes, delays, strategy, timeout = scenario
    want, want_hooks = reference(outcomes, delays, strategy, timeout)
    assume(want is not FOREVER)
    cfg = JoinConfig(strategy, Step.JOIN)
    if timeout:
        cfg = cfg.with_timeout(HANG_TIMEOUT if "hang" in outcomes else NEVER)
    got, hooks, _ = run_split(backend, outcomes, delays, cfg)
    assert got == want
    assert hooks == want_hooks


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=10),
    delays=st.lists(st.integers(1, 6), min_size=10, max_size=10),
    permits=st.integers(1, 4),
    strategy=st.sampled_from(
        [JoinStrategy.all(), JoinStrategy.quorum(2), JoinStrategy.percentage(0.5)]
    ),
)
def test_bulkhead_bounds_branches_in_flight(
    backend: str, outcomes: list[str], delays: list[int], permits: int, strategy: JoinStrategy
) -> None:
    delays = delays[: len(outcomes)]
    cfg = JoinConfig(strategy, Step.JOIN).with_bulkhead(permits)
    got, hooks, peak = run_split(backend, outcomes, delays, cfg)
    assert peak <= permits
    assert peak == min(permits, len(outcomes))
    # no early exit for these strategies: every branch ran and reported exactly once
    assert sorted(task_id for _, task_id in hooks) == sorted(
        f"b[{i}]" for i in range(len(outcomes))
    )
    # the decision does not depend on the completion order (the error list does)
    spaced = [3 * i for i in range(len(outcomes))]
    want, _ = reference(outcomes, spaced, strategy, False)
    if want is Step.JOIN:
        assert got is Step.JOIN
    else:
        assert isinstance(got, str)
        assert got.split("; errors:")[0] == want.split("; errors:")[0]
