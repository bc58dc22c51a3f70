"""States, labels and `TaskResult`."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs

__all__ = ["S", "S_co", "TaskResult", "label"]

S = TypeVar("S", bound=enum.Enum)
#: The state type of a value that only produces states (tasks, outcomes, protocols).
S_co = TypeVar("S_co", bound=enum.Enum, covariant=True)


def label(state: object) -> str:
    """A state's label: ``member.name`` for an Enum member, ``str()`` otherwise."""
    if isinstance(state, enum.Enum):
        return state.name
    return str(state)


@attrs.frozen(repr=False)
class TaskResult(Generic[S_co]):
    """What a task returns: one next state (`single`) or, for parity with cano, several
    (`split`, which the engine rejects outside split states). A task may also simply
    return the Enum member."""

    states: tuple[S_co, ...]
    is_split: bool = False

    @classmethod
    def single(cls, state: S) -> TaskResult[S]:
        """Go to ``state`` next."""
        out: TaskResult[S] = cls((state,), False)  # type: ignore[arg-type,assignment]
        return out

    @classmethod
    def split(cls, states: Iterable[S]) -> TaskResult[S]:
        """Run ``states`` in parallel (a state registered with `Workflow.register_split`)."""
        out: TaskResult[S] = cls(tuple(states), True)  # type: ignore[arg-type,assignment]
        return out

    @property
    def state(self) -> S_co:
        """The next state of a `single` result."""
        if self.is_split:
            raise ValueError("a split TaskResult has no single state")
        return self.states[0]

    def __repr__(self) -> str:
        if self.is_split:
            return f"TaskResult.split({list(self.states)!r})"
        return f"TaskResult.single({self.states[0]!r})"
