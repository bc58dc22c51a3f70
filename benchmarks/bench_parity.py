"""The cano benches that had no counterpart here, as ratios to the obvious Python floor
measured in the same process (cano/benches: store_performance, store_shared_performance,
resource_performance, circuit_performance).

    python benchmarks/bench_parity.py            # asyncio and trio, best of 9 / 27
    python benchmarks/bench_parity.py --quick    # best of 3, fewer iterations

1. MemoryStore ``put`` / ``get`` / ``get(key, kind)`` / ``append``, against a plain
   ``dict`` (the floor) and a ``dict`` behind a ``threading.Lock`` (what a thread-safe
   store needs at least). Synchronous: no event loop involved, measured once.
2. Resources: ``res.get(key)`` and ``res.get(key, kind)`` against a ``dict`` lookup
   (and ``isinstance``); ``setup_all()`` + ``teardown_all()`` over 1 / 5 / 10 / 50 no-op
   resources against a loop awaiting each ``setup`` then each ``teardown`` in reverse.
3. The retry loop on its success path, ``run_with_retries(config, fn)`` with
   ``TaskConfig.minimal()`` and with a circuit breaker attached, against a plain
   ``for attempt in range(n): try: return await fn()`` loop (and that loop plus an
   inline failure counter standing in for the breaker).
4. One breaker shared by 16 / 64 / 256 tasks, each looping ``try_acquire()`` +
   ``record_success()`` then yielding (``anyio.lowlevel.checkpoint()``), 5,120
   acquisitions in all, against the same tasks incrementing a counter under an
   ``anyio.Lock`` (the floor), and with no lock at all (the cost of the tasks and
   their yields alone).

Ratios are cano_dsl's time / the floor's (1.0x: as fast as the floor; lower is
better). Each figure is the best of several repeats (``time.perf_counter``), cano_dsl
and its floor measured alternately so that load on a shared machine hits both alike.
The asynchronous measurements are kept short (a few ms) and repeated 27 times: on a
loaded machine a long measurement is more likely to be preempted, and cano_dsl's side
runs longer than its floor, so long ones were biased against it.
"""

from __future__ import annotations

import argparse
import enum
import gc
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _floors import best_interleaved

from cano_dsl import (
    CircuitBreaker,
    CircuitPolicy,
    MemoryStore,
    Resources,
    TaskConfig,
)
from cano_dsl._retry import run_with_retries

Row = tuple[str, float, float]  # label, ours (ns/op), floor (ns/op)


def best_sync(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Best seconds of each variant over ``rounds`` rounds, interleaved within a round."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, measure in variants.items():
            gc.collect()
            best[name] = min(best[name], measure())
    return best


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def measure() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return measure


def atimed(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        gc.collect()
        start = time.perf_counter()
        await fn()
        return time.perf_counter() - start

    return measure


# -- 1. MemoryStore ------------------------------------------------------------------


def store_rows(n: int, rounds: int) -> list[Row]:
    keys = [f"key_{i}" for i in range(n)]
    values = [f"value_{i}" for i in range(n)]
    pairs = list(zip(keys, values, strict=True))
    lock = threading.Lock()

    def ours_put() -> None:
        store = MemoryStore()
        put = store.put
        for k, v in pairs:
            put(k, v)

    def dict_put() -> None:
        d: dict[str, str] = {}
        for k, v in pairs:
            d[k] = v

    def locked_put() -> None:
        d: dict[str, str] = {}
        for k, v in pairs:
            with lock:
                d[k] = v

    full = MemoryStore()
    full_dict: dict[str, str] = {}
    for k, v in pairs:
        full.put(k, v)
        full_dict[k] = v

    def ours_get() -> None:
        get = full.get
        for k in keys:
            get(k)

    def dict_get() -> None:
        d = full_dict
        for k in keys:
            d[k]

    def ours_get_kind() -> None:
        get = full.get
        for k in keys:
            get(k, str)

    def dict_get_kind() -> None:
        d = full_dict
        for k in keys:
            if not isinstance(d[k], str):
                raise TypeError(k)

    def ours_put_same() -> None:
        store = MemoryStore()
        put = store.put
        for v in values:
            put("hot", v)

    def dict_put_same() -> None:
        d: dict[str, str] = {}
        for v in values:
            d["hot"] = v

    def ours_append() -> None:
        store = MemoryStore()
        append = store.append
        for v in values:
            append("log", v)

    def dict_append() -> None:
        d: dict[str, list[str]] = {}
        for v in values:
            d.setdefault("log", []).append(v)

    def locked_append() -> None:
        d: dict[str, list[str]] = {}
        for v in values:
            with lock:
                d.setdefault("log", []).append(v)

    best = best_sync(
        {
            "put": timed(ours_put),
            "put/dict": timed(dict_put),
            "put/locked": timed(locked_put),
            "get": timed(ours_get),
            "get/dict": timed(dict_get),
            "get_kind": timed(ours_get_kind),
            "get_kind/dict": timed(dict_get_kind),
            "put_same": timed(ours_put_same),
            "put_same/dict": timed(dict_put_same),
            "append": timed(ours_append),
            "append/dict": timed(dict_append),
            "append/locked": timed(locked_append),
        },
        rounds,
    )
    ns = {k: v / n * 1e9 for k, v in best.items()}
    return [
        (f"MemoryStore.put, {n} keys vs dict[k] = v", ns["put"], ns["put/dict"]),
        (f"MemoryStore.put, {n} keys vs with lock: dict[k] = v", ns["put"], ns["put/locked"]),
        (f"MemoryStore.put, one hot key x {n} vs dict", ns["put_same"], ns["put_same/dict"]),
        (f"MemoryStore.get, {n} keys vs dict[k]", ns["get"], ns["get/dict"]),
        (
            f"MemoryStore.get(k, str), {n} keys vs dict[k] + isinstance",
            ns["get_kind"],
            ns["get_kind/dict"],
        ),
        (f"MemoryStore.append x {n} vs setdefault(k, []).append", ns["append"], ns["append/dict"]),
        (f"MemoryStore.append x {n} vs the same under a lock", ns["append"], ns["append/locked"]),
    ]


# -- 2. Resources --------------------------------------------------------------------


class Key(enum.Enum):
    STORE = enum.auto()
    CLIENT = enum.auto()


def lookup_rows(n: int, rounds: int) -> list[Row]:
    store = MemoryStore()
    res = Resources().insert("store", store).insert(Key.CLIENT, object())
    plain: dict[Any, Any] = {"store": store, Key.CLIENT: res.get(Key.CLIENT)}
    r = range(n)

    def ours_str() -> None:
        get = res.get
        for _ in r:
            get("store")

    def ours_enum() -> None:
        get = res.get
        for _ in r:
            get(Key.CLIENT)

    def ours_kind() -> None:
        get = res.get
        for _ in r:
            get("store", MemoryStore)

    def floor_str() -> None:
        d = plain
        for _ in r:
            d["store"]

    def floor_enum() -> None:
        d = plain
        for _ in r:
            d[Key.CLIENT]

    def floor_kind() -> None:
        d = plain
        for _ in r:
            if not isinstance(d["store"], MemoryStore):
                raise TypeError("store")

    best = best_sync(
        {
            "str": timed(ours_str),
            "str/floor": timed(floor_str),
            "enum": timed(ours_enum),
            "enum/floor": timed(floor_enum),
            "kind": timed(ours_kind),
            "kind/floor": timed(floor_kind),
        },
        rounds,
    )
    ns = {k: v / n * 1e9 for k, v in best.items()}
    return [
        ('Resources.get("store") vs dict["store"]', ns["str"], ns["str/floor"]),
        ("Resources.get(Key.CLIENT) (enum key) vs dict", ns["enum"], ns["enum/floor"]),
        (
            'Resources.get("store", MemoryStore) vs dict + isinstance',
            ns["kind"],
            ns["kind/floor"],
        ),
    ]


class Noop:
    """A resource with no-op async hooks."""

    async def setup(self) -> None:
        pass

    async def teardown(self) -> None:
        pass


async def lifecycle_rows(reps: int, rounds: int) -> list[Row]:
    rows: list[Row] = []
    for n in (1, 5, 10, 50):
        res = Resources()
        for i in range(n):
            res.insert(f"r{i}", Noop())
        objs = [res.get(f"r{i}") for i in range(n)]
        k = max(1, reps // n)

        async def ours(res: Resources = res, k: int = k) -> None:
            for _ in range(k):
                await res.setup_all()
                await res.teardown_all()

        async def floor(objs: list[Any] = objs, k: int = k) -> None:
            for _ in range(k):
                for o in objs:
                    await o.setup()
                for o in reversed(objs):
                    await o.teardown()

        best = await best_interleaved({"ours": atimed(ours), "floor": atimed(floor)}, rounds)
        rows.append(
            (
                f"setup_all + teardown_all, {n} no-op resources",
                best["ours"] / k * 1e9,
                best["floor"] / k * 1e9,
            )
        )
    return rows


# -- 3. The retry loop ---------------------------------------------------------------


async def ok() -> int:
    return 42


async def retry_rows(n: int, rounds: int) -> list[Row]:
    minimal = TaskConfig.minimal()
    default = TaskConfig.default()
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=30))
    with_breaker = TaskConfig.minimal().with_circuit_breaker(breaker)
    r = range(n)

    async def ours_minimal() -> None:
        for _ in r:
            await run_with_retries(minimal, ok)

    async def ours_default() -> None:
        for _ in r:
            await run_with_retries(default, ok)

    async def ours_breaker() -> None:
        for _ in r:
            await run_with_retries(with_breaker, ok)

    async def plain(fn: Callable[[], Awaitable[int]], attempts: int) -> int:
        last: Exception | None = None
        for _ in range(attempts):
            try:
                return await fn()
            except Exception as exc:
                last = exc
        raise RuntimeError("exhausted") from last

    async def floor_loop() -> None:
        for _ in r:
            await plain(ok, 1)

    async def floor_loop4() -> None:
        for _ in r:
            await plain(ok, 4)

    failures = [0]

    async def guarded(fn: Callable[[], Awaitable[int]]) -> int:
        if failures[0] >= 5:
            raise RuntimeError("open")
        try:
            value = await fn()
        except Exception:
            failures[0] += 1
            raise
        failures[0] = 0
        return value

    async def floor_breaker() -> None:
        for _ in r:
            await plain(lambda: guarded(ok), 1)

    best = await best_interleaved(
        {
            "minimal": atimed(ours_minimal),
            "default": atimed(ours_default),
            "breaker": atimed(ours_breaker),
            "loop": atimed(floor_loop),
            "loop4": atimed(floor_loop4),
            "loop+counter": atimed(floor_breaker),
        },
        rounds,
    )
    ns = {k: v / n * 1e9 for k, v in best.items()}
    return [
        ("run_with_retries, TaskConfig.minimal(), success", ns["minimal"], ns["loop"]),
        (
            "run_with_retries, TaskConfig.default() (4 attempts), success",
            ns["default"],
            ns["loop4"],
        ),
        (
            "run_with_retries + CircuitBreaker, success vs loop + counter",
            ns["breaker"],
            ns["loop+counter"],
        ),
        ("run_with_retries + CircuitBreaker vs the bare loop", ns["breaker"], ns["loop"]),
    ]


# -- 4. A breaker under contention -----------------------------------------------------


async def contention_rows(total: int, rounds: int) -> list[Row]:
    rows: list[Row] = []
    for tasks in (16, 64, 256):
        per_task = total // tasks

        async def ours(tasks: int = tasks, per_task: int = per_task) -> None:
            breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=30))

            async def worker() -> None:
                for _ in range(per_task):
                    breaker.try_acquire().record_success()
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                for _ in range(tasks):
                    tg.start_soon(worker)

        async def floor(tasks: int = tasks, per_task: int = per_task) -> None:
            lock = anyio.Lock()
            count = [0]

            async def worker() -> None:
                for _ in range(per_task):
                    async with lock:
                        count[0] += 1
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                for _ in range(tasks):
                    tg.start_soon(worker)

        async def bare(tasks: int = tasks, per_task: int = per_task) -> None:
            count = [0]

            async def worker() -> None:
                for _ in range(per_task):
                    count[0] += 1
                    await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                for _ in range(tasks):
                    tg.start_soon(worker)

        best = await best_interleaved(
            {"ours": atimed(ours), "floor": atimed(floor), "bare": atimed(bare)}, rounds
        )
        done = per_task * tasks
        ours_ns = best["ours"] / done * 1e9
        rows.append(
            (
                f"{tasks} tasks sharing one breaker vs anyio.Lock counter",
                ours_ns,
                best["floor"] / done * 1e9,
            )
        )
        rows.append(
            (f"{tasks} tasks, same vs a counter with no lock", ours_ns, best["bare"] / done * 1e9)
        )
    return rows


# -- main ----------------------------------------------------------------------------


def show(title: str, rows: list[Row]) -> None:
    print(f"\n{title}")
    for label, ours, floor in rows:
        print(f"  {label:<62} {ours:8.0f} ns  floor {floor:8.0f} ns  {ours / floor:5.2f}x")


async def async_part(quick: bool) -> dict[str, list[Row]]:
    rounds = 3 if quick else 9
    return {
        # short measurements, many of them: a long one is more likely to be preempted
        # on a loaded machine, and ours runs longer than its floor
        "Resources lifecycle": await lifecycle_rows(500 if quick else 2_000, 3 * rounds),
        "Retry loop": await retry_rows(1_000 if quick else 5_000, 3 * rounds),
        "Breaker contention": await contention_rows(2_048 if quick else 5_120, 3 * rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="cano's store/resource/circuit benches")
    parser.add_argument("--quick", action="store_true", help="best of 3, fewer iterations")
    parser.add_argument(
        "--backend", action="append", choices=["asyncio", "trio"], help="default: both"
    )
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    n = 1_000
    print(f"Python {sys.version.split()[0]}; ratio = cano_dsl / floor (lower is better)")

    sync = store_rows(n, rounds) + lookup_rows(10 * n, rounds)
    show("MemoryStore and Resources.get (synchronous, no event loop)", sync)

    for backend in args.backend or ["asyncio", "trio"]:
        parts = anyio.run(async_part, args.quick, backend=backend)
        for title, rows in parts.items():
            show(f"{title} ({backend})", rows)


if __name__ == "__main__":
    main()
