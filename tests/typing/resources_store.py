"""Typed access to `Resources` and `MemoryStore`, and what a caught `StateFailure`
carries (checked by test_typing.py, not run)."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import attrs
from typing_extensions import assert_type

from cano_dsl import (
    FromResources,
    Key,
    MemoryStore,
    Res,
    Resources,
    StateFailure,
    from_resources,
)

NUMBERS: Key[list[int]] = Key("numbers")
STORE: Key[MemoryStore] = Key("store")

store = MemoryStore()
store.put(NUMBERS, [1, 2, 3])
store.put("anything", object())  # plain keys still take any value
store.append(NUMBERS, 4)
assert_type(store.get(NUMBERS), list[int])
assert_type(store.get_or(NUMBERS, []), list[int])
assert_type(store.get("numbers", list), list[Any])
assert_type(store.get("numbers"), Any)

res = Resources().insert(STORE, store)
assert_type(res.get(STORE), MemoryStore)
assert_type(res[STORE], MemoryStore)
assert_type(res.get("store", MemoryStore), MemoryStore)
assert_type(res.get("store", MemoryStore).get(NUMBERS), list[int])
assert NUMBERS == "numbers"  # a Key is its string

# a write through a Key is not checked against it (a Key is also a plain string key,
# and plain keys take any value); reads are typed


@from_resources
@attrs.frozen
class Deps(FromResources):
    store: Annotated[MemoryStore, Res("store")]


assert_type(Deps.from_resources(res), Deps)
assert_type(Deps.from_resources(res).store, MemoryStore)


class Step(enum.Enum):
    A = enum.auto()


def describe(exc: BaseException) -> str:
    if isinstance(exc, StateFailure):
        assert_type(exc.state, enum.Enum)
        assert_type(exc.path, list[enum.Enum])
        assert_type(exc.attempt, int)
        assert_type(exc.error, BaseException)
        return exc.state.name
    return ""
