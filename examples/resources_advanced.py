"""`Resources` beyond the basics: Enum keys, duplicate keys, and rollback of a failed setup.

    python examples/resources_advanced.py

Port of cano's ``resources_advanced`` example, in three parts:

a. Keys may be members of an Enum instead of strings, so a typo is an
   ``AttributeError`` at the call site rather than a lookup that fails at run time;
   ``get(key, T)`` checks the type and raises `ResourceTypeMismatch` when it differs.
b. ``try_insert`` (and ``insert``) refuse a key that is already taken with
   `ResourceDuplicateKey`, which matters when the resources come from configuration.
c. ``setup_all()`` sets resources up in insertion order; when one fails, the ones
   already set up are torn down in reverse order and the failing one gets no
   teardown. A workflow calls ``setup_all()`` itself; here it is called directly so
   the order can be printed.
"""

from __future__ import annotations

import enum

import anyio
import attrs

from cano_dsl import (
    MemoryStore,
    ResourceDuplicateKey,
    Resources,
    ResourceTypeMismatch,
    resource,
)


class Key(enum.Enum):
    STORE = enum.auto()
    CACHE = enum.auto()
    CONFIG = enum.auto()


@attrs.frozen
class AppConfig:
    max_connections: int


@attrs.frozen
class Cache:
    label: str


@resource
class Tracked:
    """Writes each lifecycle call to a shared log; ``fail`` makes its setup raise."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail = fail

    async def setup(self) -> None:
        self.log.append(f"setup:{self.name}")
        if self.fail:
            raise ConnectionError(f"{self.name} could not connect")

    async def teardown(self) -> None:
        self.log.append(f"teardown:{self.name}")


def enum_keys() -> None:
    print("a. Enum keys")
    res = (
        Resources()
        .insert(Key.STORE, MemoryStore())
        .insert(Key.CACHE, Cache("L1"))
        .insert(Key.CONFIG, AppConfig(max_connections=32))
    )
    store = res.get(Key.STORE, MemoryStore)
    store.put("ping", "pong")
    print(f"  Key.STORE  -> MemoryStore, ping={store.get('ping')!r}")
    print(f"  Key.CACHE  -> {res.get(Key.CACHE, Cache)}")
    print(f"  Key.CONFIG -> {res.get(Key.CONFIG, AppConfig)}")
    try:
        res.get(Key.CACHE, AppConfig)
    except ResourceTypeMismatch as exc:
        print(f"  get(Key.CACHE, AppConfig) -> ResourceTypeMismatch: {exc.message}")


def duplicate_keys() -> None:
    print("\nb. duplicate keys")
    res = Resources()
    res.try_insert("counter", 1)
    print("  try_insert('counter', 1) -> ok")
    try:
        res.try_insert("counter", 2)
    except ResourceDuplicateKey as exc:
        print(f"  try_insert('counter', 2) -> ResourceDuplicateKey: {exc.message}")
    print(f"  the first value is kept: {res.get('counter')}")


async def rollback() -> None:
    print("\nc. a failed setup_all() rolls back")
    log: list[str] = []
    res = (
        Resources()
        .insert("alpha", Tracked("alpha", log))
        .insert("beta", Tracked("beta", log))
        .insert("gamma", Tracked("gamma", log, fail=True))
        .insert("delta", Tracked("delta", log))
    )
    try:
        await res.setup_all()
    except ConnectionError as exc:
        print(f"  setup_all() raised {type(exc).__name__}: {exc}")
    for i, event in enumerate(log):
        print(f"  [{i}] {event}")
    torn_down = [e.split(":")[1] for e in log if e.startswith("teardown:")]
    print(f"  torn down, in order: {torn_down}")
    print(f"  gamma torn down: {'teardown:gamma' in log}; delta touched: {'delta' in str(log)}")


async def main() -> None:
    enum_keys()
    duplicate_keys()
    await rollback()


if __name__ == "__main__":
    anyio.run(main)
