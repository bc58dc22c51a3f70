"""`Ok` and `Err`: one slot of a batch's ``outputs``.

`Ok` is an immutable one-field value built for the batch hot path (a tuple subclass:
creating one costs a third of a frozen attrs instance); `Err` is a frozen attrs
class. Both have ``__match_args__`` (``("value",)`` / ``("error",)``).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Generic, NoReturn, TypeVar, Union

import attrs

__all__ = ["Err", "Ok", "Outcome", "make_ok"]

T = TypeVar("T")


class Ok(tuple[T], Generic[T]):
    """A successful item result; ``value`` is what ``process_item`` returned."""

    __slots__ = ()
    __match_args__ = ("value",)

    def __new__(cls, value: T) -> Ok[T]:
        return tuple.__new__(cls, (value,))

    value: T = property(itemgetter(0))  # type: ignore[assignment]

    def is_ok(self) -> bool:
        """Always True."""
        return True

    def is_err(self) -> bool:
        """Always False."""
        return False

    def unwrap(self) -> T:
        """The value."""
        return self[0]

    def unwrap_or(self, default: Any) -> T:
        """The value (``default`` is ignored)."""
        return self[0]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False if isinstance(other, tuple) else NotImplemented
        return bool(self[0] == other[0])

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((Ok, self[0]))

    def __repr__(self) -> str:
        return f"Ok(value={self[0]!r})"

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self[0],)


def make_ok(value: Any, _new: Any = tuple.__new__, _ok: type = Ok) -> Ok[Any]:
    """`Ok(value)` without the Python-level ``__new__`` (the batch hot path)."""
    return _new(_ok, (value,))  # type: ignore[no-any-return]


@attrs.frozen
class Err:
    """A failed item result; ``error`` is the exception of the last attempt."""

    error: BaseException = attrs.field(eq=False)

    def is_ok(self) -> bool:
        """Always False."""
        return False

    def is_err(self) -> bool:
        """Always True."""
        return True

    def unwrap(self) -> NoReturn:
        """Raise the error."""
        raise self.error

    def unwrap_or(self, default: T) -> T:
        """``default``, in place of the missing value."""
        return default

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Err):
            return NotImplemented
        return self.error is other.error or (
            type(self.error) is type(other.error) and self.error.args == other.error.args
        )

    def __hash__(self) -> int:
        return hash((type(self.error), self.error.args))


Outcome = Union[Ok[T], Err]
"""One slot of `BatchTask.finish`'s ``outputs``: `Ok` (the output) or `Err` (the error)."""
