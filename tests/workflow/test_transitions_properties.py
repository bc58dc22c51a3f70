"""For random workflows with declared (and undeclared) transitions, `validate` and
`validate_initial_state` report exactly the unknown targets, the dead ends and the
unreachable states a plain reference search finds."""

from __future__ import annotations

import enum
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import ConfigurationError, TaskConfig, Workflow, task

N = 7  # states S0..S6 in the Enum


def _task(name: str, target: Any, to: frozenset[Any] | None) -> Any:
    async def fn() -> Any:
        return target

    return task(config=TaskConfig.minimal(), name=name, to=to)(fn)


@st.composite
def workflows(
    draw: st.DrawFn,
) -> tuple[type[enum.Enum], dict[Any, frozenset[Any] | None], set[Any], Any]:
    states = enum.Enum("G", [f"S{i}" for i in range(N)])  # type: ignore[misc]
    members = list(states)
    exits = set(draw(st.sets(st.sampled_from(members), min_size=1, max_size=3)))
    registered = draw(st.sets(st.sampled_from(members), min_size=1, max_size=N))
    declared: dict[Any, frozenset[Any] | None] = {}
    for state in sorted(registered, key=members.index):
        if draw(st.booleans()) or draw(st.booleans()):  # three in four declare
            targets = draw(st.sets(st.sampled_from(members), min_size=1, max_size=3))
            declared[state] = frozenset(targets)
        else:
            declared[state] = None
    initial = draw(st.sampled_from(sorted(set(registered) | exits, key=members.index)))
    return states, declared, exits, initial


def _reference(
    states: type[enum.Enum],
    declared: dict[Any, frozenset[Any] | None],
    exits: set[Any],
    initial: Any,
) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    everything = set(states)

    def successors(s: Any) -> set[Any]:
        if s in exits or s not in declared:
            return set()  # the run stops (exit) or fails (nothing registered)
        to = declared[s]
        return set(everything) if to is None else set(to)

    def reach(start: Any) -> set[Any]:
        seen, todo = {start}, [start]
        while todo:
            for t in successors(todo.pop()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    known = set(declared) | exits
    unknown = {
        (s.name, t.name)
        for s, to in declared.items()
        if to is not None and s not in exits
        for t in to
        if t not in known
    }
    dead = {s.name for s in declared if s not in exits and not (reach(s) & exits)}
    any_declared = any(to is not None for to in declared.values())
    if initial in exits or not any_declared:
        unreachable: set[str] = set()
    else:
        seen = reach(initial)
        unreachable = {s.name for s in declared if s not in exits and s not in seen}
    return unknown, dead, unreachable


_UNKNOWN = re.compile(r"state (\w+) \(task [^)]*\) declares (\w+), which is neither")
_DEAD = re.compile(r"state (\w+) cannot reach an exit state")
_UNREACHABLE = re.compile(r"no run can enter ([\w, ]+) \(")


@settings(max_examples=150, deadline=None)
@given(workflows())
def test_validate_finds_exactly_the_reference_problems(drawn: Any) -> None:
    states, declared, exits, initial = drawn
    wf: Workflow[Any] = Workflow()
    for state, to in declared.items():
        wf = wf.register(state, _task(f"t_{state.name}", initial, to))
    wf = wf.add_exit_states(sorted(exits, key=list(states).index))
    unknown, dead, unreachable = _reference(states, declared, exits, initial)

    try:
        wf.validate()
        message = ""
    except ConfigurationError as exc:
        message = str(exc)
    assert set(_UNKNOWN.findall(message)) == unknown
    assert set(_DEAD.findall(message)) == dead
    assert bool(message) == bool(unknown or dead)

    try:
        wf.validate_initial_state(initial)
        found: set[str] = set()
    except ConfigurationError as exc:
        match = _UNREACHABLE.search(str(exc))
        assert match is not None, str(exc)
        found = set(match.group(1).split(", "))
    assert found == unreachable


@pytest.mark.parametrize("n", [200])
def test_a_long_declared_chain_validates_in_one_pass(n: int) -> None:
    states = enum.Enum("Chain", [f"S{i}" for i in range(n)])  # type: ignore[misc]
    members = list(states)
    wf: Workflow[Any] = Workflow()
    for i in range(n - 1):
        wf = wf.register(members[i], _task(f"t{i}", members[i + 1], frozenset({members[i + 1]})))
    wf = wf.add_exit_state(members[-1])
    wf.validate()
    wf.validate_initial_state(members[0])
    with pytest.raises(ConfigurationError, match=r"no run can enter S0, S1 \("):
        wf.validate_initial_state(members[2])
