"""The transition graph of a workflow, from declared transitions (docs/transitions.md).

A registered state's successors are its task's declared targets (``to=`` or a
``Literal`` return annotation), its join state for a split, and *every* state for an
undeclared task ("may go anywhere", so it never causes a false alarm). An exit state
has no successor (the run stops there, even when a task is also registered for it).

* `unknown_targets`: declared targets that are neither registered nor exit states.
* `dead_ends`: registered states from which no exit state can be reached.
* `unreachable`: registered states no path from an initial state enters (only for a
  workflow with at least one declaration, from a non-exit initial state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._entry import SPLIT, Entry

__all__ = ["dead_ends", "successors", "transition_problems", "unknown_targets", "unreachable"]


def successors(entry: Entry) -> frozenset[Any] | None:
    """The states ``entry`` may move to, or None for "anywhere" (undeclared)."""
    if entry.kind == SPLIT:
        return frozenset((entry.join.join_state,))
    return entry.to


def _order(states: Iterable[Any]) -> list[Any]:
    """``states`` in their Enum's definition order."""
    items = list(states)
    if not items:
        return items
    members: list[Any] = list(type(items[0]).__members__.values())
    index = {m: i for i, m in enumerate(members)}
    return sorted(items, key=lambda s: index.get(s, len(index)))


def unknown_targets(entries: Mapping[Any, Entry], exits: frozenset[Any]) -> list[tuple[Any, Any]]:
    """``(state, target)`` for every declared target of a task that is neither
    registered nor an exit state (split join states are checked by the join config)."""
    out = []
    for state, entry in entries.items():
        if entry.kind == SPLIT or entry.to is None or state in exits:
            continue
        for target in _order(entry.to):
            if target not in entries and target not in exits:
                out.append((state, target))
    return out


def dead_ends(entries: Mapping[Any, Entry], exits: frozenset[Any]) -> list[Any]:
    """Registered non-exit states with no path to an exit state."""
    reverse: dict[Any, list[Any]] = {}
    live: set[Any] = set(exits)
    todo: list[Any] = list(exits)
    for state, entry in entries.items():
        if state in exits:
            continue
        nxt = successors(entry)
        if nxt is None:  # may go anywhere, an exit state included
            if state not in live:
                live.add(state)
                todo.append(state)
            continue
        for target in nxt:
            reverse.setdefault(target, []).append(state)
    while todo:
        for source in reverse.get(todo.pop(), ()):
            if source not in live:
                live.add(source)
                todo.append(source)
    return _order(s for s in entries if s not in live)


def unreachable(entries: Mapping[Any, Entry], exits: frozenset[Any], initial: Any) -> list[Any]:
    """Registered non-exit states that no run from ``initial`` can enter. Nothing is
    reported for a workflow without any ``to`` declaration (today's behaviour) or from
    an initial exit state (such a run does nothing)."""
    if initial in exits or all(e.to is None for e in entries.values()):
        return []
    seen = {initial}
    todo = [initial]
    while todo:
        state = todo.pop()
        entry = entries.get(state)
        if entry is None or state in exits:
            continue
        nxt = successors(entry)
        if nxt is None:  # an undeclared task may go anywhere: everything is reachable
            return []
        for target in nxt:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return _order(s for s in entries if s not in seen and s not in exits)


def _names(states: Iterable[Any]) -> str:
    return ", ".join(s.name for s in states)


def transition_problems(entries: Mapping[Any, Entry], exits: frozenset[Any]) -> list[str]:
    """One line per problem `Workflow.validate` reports for declared transitions."""
    lines = []
    for state, target in unknown_targets(entries, exits):
        who = entries[state].task_id
        lines.append(
            f"state {state.name} (task {who}) declares {target.name}, which is neither "
            "registered nor an exit state"
        )
    for state in dead_ends(entries, exits):
        nxt = successors(entries[state]) or frozenset()
        lines.append(
            f"state {state.name} cannot reach an exit state (it may go to "
            f"{{{_names(_order(nxt))}}})"
        )
    return lines
