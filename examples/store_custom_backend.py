"""A resource of your own wrapping `MemoryStore`, and values shared without copying.

    python examples/store_custom_backend.py

Port of cano's ``store_custom_backend`` example, in two parts:

1. ``NamespacedStore`` is a plain class registered as a resource that prefixes every
   key with its namespace. Two of them share one `MemoryStore`; two writers use the
   same key names and do not collide.
2. `MemoryStore.get` returns the stored object itself, never a copy (cano needs
   ``get_shared`` and an ``Arc`` for this; in Python it is what ``get`` does). A 1 MiB
   payload put once is read by a later task as the very same object.
"""

from __future__ import annotations

import enum
from typing import Any

import anyio

from cano_dsl import MemoryStore, Resources, Workflow, resource, task


@resource
class NamespacedStore:
    """A view of a `MemoryStore` where every key is stored as ``"{namespace}/{key}"``."""

    def __init__(self, namespace: str, inner: MemoryStore) -> None:
        self.namespace = namespace
        self.inner = inner

    def _key(self, key: str) -> str:
        return f"{self.namespace}/{key}"

    def put(self, key: str, value: Any) -> None:
        self.inner.put(self._key(key), value)

    def get(self, key: str, kind: type[Any] | None = None) -> Any:
        if kind is None:
            return self.inner.get(self._key(key))
        return self.inner.get(self._key(key), kind)


class Step(enum.Enum):
    WRITE_A = enum.auto()
    WRITE_B = enum.auto()
    READ_BACK = enum.auto()
    LOAD_LARGE = enum.auto()
    SHARE = enum.auto()
    DONE = enum.auto()


@task(state=Step)
class Writer:
    def __init__(self, key: str, value: int, next_state: Step) -> None:
        self.key = key
        self.value = value
        self.next_state = next_state

    def name(self) -> str:
        return f"writer-{self.key}"

    async def run(self, res: Resources) -> Step:
        ns = res.get(self.key, NamespacedStore)
        ns.put("result", self.value)
        ns.put("label", f"from-writer-{ns.namespace}")
        print(f"  writer {ns.namespace}: result={self.value}, label='from-writer-{ns.namespace}'")
        return self.next_state


@task(state=Step)
class ReadBack:
    async def run(self, res: Resources) -> Step:
        for key in ("ns_a", "ns_b"):
            ns = res.get(key, NamespacedStore)
            print(
                f"  read back {ns.namespace} -> result={ns.get('result', int)}, label={ns.get('label')!r}"
            )
        shared = res.get("mem", MemoryStore)
        print(f"  keys in the shared MemoryStore: {sorted(shared.keys(), key=str)}")
        return Step.LOAD_LARGE


class Payload:
    def __init__(self, size: int) -> None:
        self.data = bytearray(b"\xab" * size)


@task(state=Step)
class LoadLarge:
    async def run(self, res: Resources) -> Step:
        payload = Payload(1 << 20)
        res.get("mem", MemoryStore).put("payload", payload)
        res.get("mem", MemoryStore).put("payload_id", id(payload))
        print(f"  load: stored a {len(payload.data)} byte payload")
        return Step.SHARE


@task(state=Step)
class Share:
    async def run(self, res: Resources) -> Step:
        mem = res.get("mem", MemoryStore)
        first = mem.get("payload", Payload)
        second = mem.get("payload", Payload)
        print(f"  share: two reads are the same object: {first is second}")
        print(f"  share: and the one that was put: {id(first) == mem.get('payload_id')}")
        first.data[0] = 0x01  # a change through one reference is seen through the other
        print(f"  share: first byte seen through the second read: {second.data[0]:#04x}")
        return Step.DONE


async def main() -> None:
    mem = MemoryStore()
    res = (
        Resources()
        .insert("mem", mem)
        .insert("ns_a", NamespacedStore("a", mem))
        .insert("ns_b", NamespacedStore("b", mem))
    )
    wf = (
        Workflow(res)
        .register(Step.WRITE_A, Writer("ns_a", 100, Step.WRITE_B))
        .register(Step.WRITE_B, Writer("ns_b", 200, Step.READ_BACK))
        .register(Step.READ_BACK, ReadBack())
        .register(Step.LOAD_LARGE, LoadLarge())
        .register(Step.SHARE, Share())
        .add_exit_state(Step.DONE)
    )
    print("namespaced views over one MemoryStore, then a shared payload:")
    final = await wf.orchestrate(Step.WRITE_A)
    print(f"\nfinished in {final.name}")


if __name__ == "__main__":
    anyio.run(main)
