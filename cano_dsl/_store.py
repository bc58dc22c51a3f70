"""`MemoryStore`: a thread-safe in-memory key/value store, usable as a resource
(REFERENCE §6)."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any, TypeVar, overload

from ._errors import AppendTypeMismatch, KeyNotFound, TypeMismatch
from ._resources import Key

__all__ = ["MemoryStore"]

T = TypeVar("T")


class MemoryStore:
    """A shared dictionary for passing data between tasks.

    Synchronous and thread-safe; ``get`` returns the stored object itself (no copy).
    Missing keys raise `KeyNotFound` (also a ``KeyError``), a wrong requested type
    `TypeMismatch`, and ``append`` onto a non-list value `AppendTypeMismatch`.
    """

    __slots__ = ("_data", "_lock")

    def __init__(self) -> None:
        self._data: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    @overload
    def put(self, key: Key[T], value: T) -> None: ...
    @overload
    def put(self, key: Hashable, value: Any) -> None: ...
    def put(self, key: Hashable, value: Any) -> None:
        """Insert or replace ``key`` (the type may change)."""
        with self._lock:
            self._data[key] = value

    @overload
    def get(self, key: Key[T]) -> T: ...
    @overload
    def get(self, key: Hashable) -> Any: ...
    # a bare container class (``get(key, list)``) gives ``list[Any]``, not a list of
    # unknowns, so pyright's strict mode accepts it
    @overload
    def get(self, key: Hashable, kind: type[list[Any]]) -> list[Any]: ...
    @overload
    def get(self, key: Hashable, kind: type[dict[Any, Any]]) -> dict[Any, Any]: ...
    @overload
    def get(self, key: Hashable, kind: type[set[Any]]) -> set[Any]: ...
    @overload
    def get(self, key: Hashable, kind: type[T]) -> T: ...
    def get(self, key: Hashable, kind: type[T] | None = None) -> Any:
        """The value under ``key``; with ``kind``, checked with ``isinstance``."""
        try:
            value = self._data[key]
        except KeyError:
            raise KeyNotFound(key) from None
        if kind is not None and not isinstance(value, kind):
            raise TypeMismatch(key, kind)
        return value

    get_shared = get

    @overload
    def get_or(self, key: Key[T], default: T) -> T: ...
    @overload
    def get_or(self, key: Hashable, default: Any) -> Any: ...
    def get_or(self, key: Hashable, default: Any) -> Any:
        """The value under ``key``, or ``default`` when it is missing."""
        return self._data.get(key, default)

    def remove(self, key: Hashable) -> None:
        """Delete ``key``; a missing key is a no-op."""
        with self._lock:
            self._data.pop(key, None)

    @overload
    def append(self, key: Key[list[T]], item: T) -> None: ...
    @overload
    def append(self, key: Hashable, item: Any) -> None: ...
    def append(self, key: Hashable, item: Any) -> None:
        """Append to the list under ``key``, creating ``[item]`` when missing."""
        with self._lock:
            current = self._data.get(key, _MISSING)
            if current is _MISSING:
                self._data[key] = [item]
            elif isinstance(current, list):
                current.append(item)
            else:
                raise AppendTypeMismatch(key)

    def contains_key(self, key: Hashable) -> bool:
        """Whether ``key`` holds a value (also ``key in store``)."""
        return key in self._data

    __contains__ = contains_key

    def keys(self) -> list[Hashable]:
        """The keys, in insertion order (a snapshot)."""
        with self._lock:
            return list(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def len(self) -> int:
        """How many keys hold a value (also ``len(store)``)."""
        return len(self._data)

    def is_empty(self) -> bool:
        """Whether no key holds a value."""
        return not self._data

    def clear(self) -> None:
        """Remove every key."""
        with self._lock:
            self._data.clear()

    # Resource lifecycle: nothing to do.
    async def setup(self) -> None:
        """`Resource` hook: nothing to set up."""
        return None

    async def teardown(self) -> None:
        """`Resource` hook: nothing to tear down (the contents are kept)."""
        return None

    async def health(self) -> Any:
        """`Resource` hook: always `HealthStatus.healthy()`."""
        from ._resources import HealthStatus

        return HealthStatus.healthy()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._data)} key(s)>)"


_MISSING: Any = object()
