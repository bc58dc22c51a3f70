"""Hypothesis properties of the engine loop: the path and the observer event grammar
agree with a reference interpretation of any random machine."""

from __future__ import annotations

import enum
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import CancellationToken, StateFailure, TaskConfig, Workflow, task
from cano_dsl.testing import RecordingObserver
from cano_dsl.testing._observer import (
    Retry,
    StateEntered,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
)

N = 5
S = enum.Enum("S", [f"S{i}" for i in range(N)] + ["END"])  # type: ignore[misc]
STATES = list(S)

# what a state's task does on its k-th visit: go to state j, fail f times then go to j,
# or fail for good
Action = tuple[str, int, int]
actions = st.one_of(
    st.tuples(st.just("go"), st.integers(0, N), st.just(0)),
    st.tuples(st.just("flaky"), st.integers(0, N), st.integers(1, 2)),
    st.tuples(st.just("fail"), st.just(0), st.just(0)),
)


def build(plan: list[list[Action]], obs: RecordingObserver) -> Workflow[Any]:
    wf: Workflow[Any] = Workflow.bare().add_exit_state(S.END).with_observer(obs)
    for i in range(N):
        visits = {"n": 0, "fails": 0}
        script = plan[i]

        @task(config=TaskConfig().with_fixed_retry(2, 0), name=f"t{i}")
        async def t(_script: list[Action] = script, _visits: dict[str, int] = visits) -> Any:
            kind, target, fails = _script[min(_visits["n"], len(_script) - 1)]
            await anyio.lowlevel.checkpoint()
            if kind == "fail":  # every attempt of this visit fails
                raise RuntimeError("for good")
            if kind == "flaky" and _visits["fails"] < fails:
                _visits["fails"] += 1
                raise ConnectionError("transient")
            _visits["n"] += 1
            _visits["fails"] = 0
            return STATES[target]

        wf = wf.register(STATES[i], t)
    return wf


def reference(plan: list[list[Action]], max_steps: int) -> tuple[list[str], str | None]:
    """The path taken and the failing state's label (None = reached END)."""
    visits = [0] * N
    path: list[str] = []
    current = 0
    for _ in range(max_steps):
        path.append(STATES[current].name)
        if current == N:
            return path, None
        kind, target, _fails = plan[current][min(visits[current], len(plan[current]) - 1)]
        visits[current] += 1
        if kind == "fail":
            return path, STATES[current].name
        current = target
    return path, "LIMIT"


@settings(max_examples=60, deadline=None)
@given(plan=st.lists(st.lists(actions, min_size=1, max_size=3), min_size=N, max_size=N))
def test_path_and_event_grammar_match_the_reference(plan: list[list[Action]]) -> None:
    expected_path, failing = reference(plan, 30)
    if failing == "LIMIT":
        return  # an endless loop: not this property's business
    for backend in ("asyncio", "trio"):
        obs = RecordingObserver()
        wf = build(plan, obs)

        async def go() -> BaseException | None:
            try:
                with anyio.fail_after(10):  # a diverging harness fails instead of hanging
                    await wf.orchestrate(S.S0, cancel=CancellationToken())
            except StateFailure as exc:
                return exc
            return None

        err = anyio.run(go, backend=backend)
        assert obs.states_entered() == expected_path
        if failing is None:
            assert err is None
        else:
            assert isinstance(err, StateFailure)
            assert err.state.name == failing
            assert [s.name for s in err.path] == expected_path
            assert err.attempt == 3 and err.category == "retry_exhausted"
        # grammar: enter -> start -> retry* -> (success | failure) -> next enter
        events = obs.events
        i = 0
        while i < len(events):
            assert isinstance(events[i], StateEntered)
            i += 1
            if i == len(events):
                break
            assert isinstance(events[i], TaskStarted)
            tid = events[i].task_id
            i += 1
            while isinstance(events[i], Retry):
                assert events[i].task_id == tid
                i += 1
            assert isinstance(events[i], (TaskSucceeded, TaskFailed))
            assert events[i].task_id == tid
            i += 1
