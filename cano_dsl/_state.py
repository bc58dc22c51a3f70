"""States, labels and `TaskResult`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs

__all__ = ["S", "TaskResult", "label"]

S = TypeVar("S", bound=enum.Enum)


def label(state: object) -> str:
    """A state's label: ``member.name`` for an Enum member, ``str()`` otherwise."""
    if isinstance(state, enum.Enum):
        return state.name
    return str(state)


@attrs.frozen(repr=False)
class TaskResult(Generic[S]):
    """What a task returns: one next state (`single`) or, for parity with cano, several
    (`split`, which the engine rejects outside split states). A task may also simply
    return the Enum member."""

    states: tuple[S, ...]
    is_split: bool = False

    @classmethod
    def single(cls, state: S) -> TaskResult[S]:
        """Go to ``state`` next."""
        return cls((state,), False)

    @classmethod
    def split(cls, states: Iterable[S]) -> TaskResult[S]:
        """Run ``states`` in parallel (a state registered with `Workflow.register_split`)."""
        return cls(tuple(states), True)

    @property
    def state(self) -> S:
        """The next state of a `single` result."""
        if self.is_split:
            raise ValueError("a split TaskResult has no single state")
        return self.states[0]

    def __repr__(self) -> str:
        if self.is_split:
            return f"TaskResult.split({list(self.states)!r})"
        return f"TaskResult.single({self.states[0]!r})"
