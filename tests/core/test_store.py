"""MemoryStore (REFERENCE §6)."""

from __future__ import annotations

import threading

import pytest

from cano_dsl import AppendTypeMismatch, KeyNotFound, MemoryStore, Resources, TypeMismatch


def test_put_get_replace_and_type_change() -> None:
    store = MemoryStore()
    store.put("k", 1)
    assert store.get("k") == 1 and store.get("k", int) == 1
    store.put("k", "text")
    assert store.get("k", str) == "text"
    with pytest.raises(TypeMismatch):
        store.get("k", int)


def test_missing_key_is_a_key_error() -> None:
    store = MemoryStore()
    with pytest.raises(KeyNotFound) as info:
        store.get("nope")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "Store error: Key not found: Key 'nope' not found in store"


def test_get_returns_the_stored_object() -> None:
    store = MemoryStore()
    payload = [1, 2, 3]
    store.put("list", payload)
    assert store.get("list") is payload


def test_append_creates_extends_and_rejects_non_lists() -> None:
    store = MemoryStore()
    store.append("xs", 1)
    store.append("xs", 2)
    assert store.get("xs") == [1, 2]
    store.put("n", 5)
    with pytest.raises(AppendTypeMismatch):
        store.append("n", 6)
    assert store.get("n") == 5


def test_remove_keys_len_clear() -> None:
    store = MemoryStore()
    store.put("a", 1)
    store.put("b", 2)
    store.remove("a")
    store.remove("missing")
    assert store.keys() == ["b"] and len(store) == 1 and "b" in store
    assert store.contains_key("b") and not store.is_empty()
    store.clear()
    assert store.is_empty() and len(store) == 0


def test_thread_safe_appends() -> None:
    store = MemoryStore()

    def work() -> None:
        for i in range(1000):
            store.append("xs", i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get("xs")) == 4000


@pytest.mark.anyio
async def test_memory_store_is_a_resource() -> None:
    res = Resources().insert("store", MemoryStore())
    await res.setup_all()
    await res.teardown_all()
    assert (await res.aggregate_health()).is_healthy()
