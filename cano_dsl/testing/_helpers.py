"""`TestResources` and `assert_compensation_ran`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._resources import ResourceKey, Resources
from .._store import MemoryStore

__all__ = ["TestResources", "assert_compensation_ran"]


class TestResources:
    """A small builder of `Resources` for tests:
    ``TestResources().with_store("store").with_resource("db", db).build()``."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._items: list[tuple[ResourceKey, Any]] = []

    def with_store(self, key: ResourceKey = "store") -> TestResources:
        """Add a fresh `MemoryStore` under ``key``."""
        return self.with_resource(key, MemoryStore())

    def with_resource(self, key: ResourceKey, value: Any) -> TestResources:
        """A copy that also inserts ``value`` under ``key``."""
        out = TestResources()
        out._items = [*self._items, (key, value)]
        return out

    def build(self) -> Resources:
        """A new `Resources` holding every added resource (duplicate keys raise)."""
        res = Resources()
        for key, value in self._items:
            res.insert(key, value)
        return res


def assert_compensation_ran(actual: Sequence[Any], expected: Sequence[Any]) -> None:
    """``actual`` (what your compensators recorded) equals ``expected`` (the undo order,
    most recent step first); the message shows both and the first difference."""
    got, want = list(actual), list(expected)
    if got == want:
        return
    pairs = zip(got, want, strict=False)
    first = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(got), len(want)))
    raise AssertionError(
        "compensation order mismatch (expected is the undo order, last step first):\n"
        f"  expected {want}\n  actual   {got}\n  first difference at index {first}"
    )
