"""An ad-exchange auction as a state machine with five split states.

    python examples/workflow_ad_exchange.py

    ENRICH   split All            profile, geo and fraud lookups in parallel
    GATE     router               fraud -> REJECT, else -> AUCTION
    AUCTION  split PartialTimeout five bidders, 30 ms to answer; late ones are cut
    SCORE    split All            one scorer per bid slot (quality x price)
    PICK     task                 best scored bid -> TRACK, no bids -> NO_FILL
    TRACK    split All            impression log, billing and analytics
    REJECT   split Any            tell the first reachable channel about the fraud
    exits:   SERVED, NO_FILL, REJECTED

Branches share data through one MemoryStore per request (keys per branch); each
join state reads what its split produced.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any

import anyio

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    TaskConfig,
    Workflow,
    router,
    task,
)


class Ad(enum.Enum):
    ENRICH = enum.auto()
    GATE = enum.auto()
    AUCTION = enum.auto()
    SCORE = enum.auto()
    PICK = enum.auto()
    TRACK = enum.auto()
    REJECT = enum.auto()
    SERVED = enum.auto()
    NO_FILL = enum.auto()
    REJECTED = enum.auto()


def store_of(res: Resources) -> MemoryStore:
    return res.get("store", MemoryStore)


@task
class Step:
    """A small branch: sleep ``delay``, then run ``body(store)`` (may raise)."""

    def __init__(self, name: str, delay: float, body: Callable[[MemoryStore], None]) -> None:
        self._name, self.delay, self.body = name, delay, body

    def name(self) -> str:
        return self._name

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def run(self, res: Resources) -> Ad:
        await anyio.sleep(self.delay)
        self.body(store_of(res))
        return Ad.GATE  # ignored inside a split


def lookup(key: str, value: Callable[[dict[str, Any]], object]) -> Callable[[MemoryStore], None]:
    def body(store: MemoryStore) -> None:
        store.put(key, value(store.get("request")))

    return body


ENRICH = [
    Step("profile", 0.004, lookup("segment", lambda r: "sports" if r["user"] % 2 else "news")),
    Step(
        "geo", 0.006, lookup("country", lambda r: (r["ip"].split(".")[0] == "10" and "NL") or "US")
    ),
    Step("fraud", 0.002, lookup("fraud", lambda r: r["user"] == 666)),
]


@router
class Gate:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def route(self, res: Resources) -> Ad:
        return Ad.REJECT if store_of(res).get("fraud") else Ad.AUCTION


def bidder(name: str, delay: float, price: float | None) -> Step:
    def body(store: MemoryStore) -> None:
        if price is None:
            raise ConnectionError(f"{name} returned 500")
        store.append("bids", (name, price))

    return Step(f"dsp:{name}", delay, body)


AUCTION = [
    bidder("alpha", 0.005, 1.20),
    bidder("beta", 0.010, 1.75),
    bidder("gamma", 0.008, None),  # errors: still a completion for PartialTimeout
    bidder("delta", 0.200, 3.00),  # too slow: cut at the 30 ms deadline
    bidder("epsilon", 0.015, 0.90),
]

QUALITY = {"alpha": 0.9, "beta": 0.6, "epsilon": 1.0, "gamma": 1.0, "delta": 1.0}


def scorer(slot: int) -> Step:
    def body(store: MemoryStore) -> None:
        bids: list[tuple[str, float]] = store.get("bids") if "bids" in store else []
        if slot < len(bids):
            name, price = bids[slot]
            store.append("scored", (round(price * QUALITY[name], 3), name, price))

    return Step(f"score:{slot}", 0.001, body)


@task(config=TaskConfig.minimal())
async def pick(res: Resources) -> Ad:
    store = store_of(res)
    scored: list[tuple[float, str, float]] = store.get("scored") if "scored" in store else []
    if not scored:
        return Ad.NO_FILL
    _score, name, price = max(scored)
    store.put("winner", (name, price))
    return Ad.TRACK


TRACK = [
    Step("impression-log", 0.002, lambda s: s.append("log", f"impression {s.get('winner')[0]}")),
    Step("billing", 0.003, lambda s: s.append("log", f"bill {s.get('winner')[1]:.2f}")),
    Step("analytics", 0.001, lambda s: s.append("log", f"segment {s.get('segment')}")),
]


def notify(channel: str, delay: float, up: bool) -> Step:
    def body(store: MemoryStore) -> None:
        if not up:
            raise ConnectionError(f"{channel} unreachable")
        store.append("log", f"fraud reported via {channel}")

    return Step(f"notify:{channel}", delay, body)


REJECT = [notify("pager", 0.002, False), notify("email", 0.004, True), notify("slack", 0.02, True)]


def exchange(store: MemoryStore) -> Workflow[Ad]:
    def join(strategy: JoinStrategy, state: Ad) -> JoinConfig[Ad]:
        return JoinConfig(strategy, state)

    return (
        Workflow(Resources().insert("store", store))
        .register_split(Ad.ENRICH, ENRICH, join(JoinStrategy.all(), Ad.GATE).with_timeout(0.1))
        .register_router(Ad.GATE, Gate())
        .register_split(
            Ad.AUCTION, AUCTION, join(JoinStrategy.partial_timeout(), Ad.SCORE).with_timeout(0.03)
        )
        .register_split(
            Ad.SCORE, [scorer(i) for i in range(len(AUCTION))], join(JoinStrategy.all(), Ad.PICK)
        )
        .register(Ad.PICK, pick)
        .register_split(Ad.TRACK, TRACK, join(JoinStrategy.all(), Ad.SERVED))
        .register_split(Ad.REJECT, REJECT, join(JoinStrategy.any(), Ad.REJECTED))
        .add_exit_states([Ad.SERVED, Ad.NO_FILL, Ad.REJECTED])
    )


async def serve(request: dict[str, Any]) -> None:
    store = MemoryStore()
    store.put("request", request)
    start = time.perf_counter()
    final = await exchange(store).orchestrate(Ad.ENRICH)
    took = (time.perf_counter() - start) * 1000
    print(f"request {request}: {final.name} in {took:.0f} ms")
    if "bids" in store:
        print(f"  bids received: {store.get('bids')}")
    if "winner" in store:
        print(f"  winner: {store.get('winner')}")
    log: list[str] = store.get("log") if "log" in store else []
    for line in log:
        print(f"  {line}")


async def main() -> None:
    await serve({"user": 7, "ip": "10.0.0.1"})
    await serve({"user": 666, "ip": "192.168.1.9"})


if __name__ == "__main__":
    anyio.run(main)
