"""Resilience fast paths against the usual Python libraries, as ratios, in one process.

    python benchmarks/bench_resilience.py            # full run (about 20 s)
    python benchmarks/bench_resilience.py --quick    # fewer iterations

1. Circuit breaker, CLOSED fast path (admit + record a success around a no-op call):
   cano_dsl vs pybreaker, aiobreaker and purgatory (sync and async forms). A library that
   is not installed is skipped with a note (`pip install aiobreaker purgatory`).
2. Circuit breaker, OPEN rejection path (the call is refused).
3. Token bucket, admission fast path on asyncio: cano_dsl ``try_acquire()`` and
   ``await acquire()`` vs aiolimiter's ``await acquire()`` (aiolimiter is asyncio-only).
4. Token bucket under contention: 16 / 64 / 256 tasks sharing one never-empty limiter,
   each doing ``await acquire()`` then yielding to the loop, 20,000 acquisitions in all.

Each figure is the best of several repeats (time.perf_counter); ratios > 1 mean
cano_dsl is faster. Target: faster than each library on its fast path.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cano_dsl import CircuitBreaker, CircuitOpenError, CircuitPolicy, RateLimiter

REPEATS = 7


def best_ns(fn: Callable[[int], Any], n: int, repeats: int = REPEATS) -> float:
    """Best per-iteration time in ns of ``fn(n)`` over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e9


def best_ns_async(make: Callable[[int], Awaitable[Any]], n: int, repeats: int = REPEATS) -> float:
    async def timed() -> float:
        best = float("inf")
        for _ in range(repeats):
            gc.collect()
            start = time.perf_counter()
            await make(n)
            best = min(best, time.perf_counter() - start)
        return best

    return asyncio.run(timed()) / n * 1e9


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def row(label: str, ours: float, theirs: float | None, lib: str) -> str:
    if theirs is None:
        return f"  {label:<44} cano_dsl {ours:8.0f} ns   {lib:<11} (not installed: skipped)"
    return (
        f"  {label:<44} cano_dsl {ours:8.0f} ns   {lib:<11} {theirs:8.0f} ns   "
        f"ratio {theirs / ours:5.1f}x"
    )


def noop() -> None:
    return None


async def anoop() -> None:
    return None


# -- circuit breaker ------------------------------------------------------------------


def ours_closed(n: int) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=30))
    for _ in range(n):
        with breaker.try_acquire():
            noop()


def ours_closed_explicit(n: int) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=30))
    for _ in range(n):
        permit = breaker.try_acquire()
        noop()
        permit.record_success()


def ours_open(n: int) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=1, reset_timeout=3600))
    breaker.try_acquire().record_failure()
    for _ in range(n):
        try:
            breaker.try_acquire()
        except CircuitOpenError:
            pass


async def ours_closed_async(n: int) -> None:
    breaker = CircuitBreaker(CircuitPolicy(failure_threshold=5, reset_timeout=30))
    for _ in range(n):
        with breaker.try_acquire():
            await anoop()


def pybreaker_closed(n: int) -> None:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    call = breaker.call
    for _ in range(n):
        call(noop)


def pybreaker_open(n: int) -> None:
    import pybreaker

    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    breaker.open()
    for _ in range(n):
        try:
            breaker.call(noop)
        except pybreaker.CircuitBreakerError:
            pass


def aiobreaker_closed(n: int) -> None:
    import datetime

    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=datetime.timedelta(seconds=30))
    call = breaker.call
    for _ in range(n):
        call(noop)


def aiobreaker_open(n: int) -> None:
    import datetime

    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(
        fail_max=1, timeout_duration=datetime.timedelta(seconds=3600)
    )
    breaker.open()
    for _ in range(n):
        try:
            breaker.call(noop)
        except aiobreaker.CircuitBreakerError:
            pass


async def aiobreaker_closed_async(n: int) -> None:
    import datetime

    import aiobreaker

    breaker = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=datetime.timedelta(seconds=30))
    for _ in range(n):
        await breaker.call_async(anoop)


def purgatory_closed(n: int) -> None:
    from purgatory import SyncCircuitBreakerFactory

    factory = SyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    breaker = factory.get_breaker("bench")
    for _ in range(n):
        with breaker:
            noop()


def purgatory_open(n: int) -> None:
    from purgatory import SyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = SyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    breaker = factory.get_breaker("bench-open")
    try:
        with breaker:
            raise RuntimeError("trip")
    except RuntimeError:
        pass
    for _ in range(n):
        try:
            with breaker:
                noop()
        except OpenedState:
            pass


async def purgatory_closed_async(n: int) -> None:
    from purgatory import AsyncCircuitBreakerFactory

    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    breaker = await factory.get_breaker("bench-async")
    for _ in range(n):
        async with breaker:
            await anoop()


# -- rate limiter -----------------------------------------------------------------------

HUGE = 10**12  # tokens a second: never empties during a run


async def ours_try_acquire(n: int) -> None:
    limiter = RateLimiter(HUGE, 1)
    try_acquire = limiter.try_acquire
    for _ in range(n):
        try_acquire()


async def ours_acquire(n: int) -> None:
    limiter = RateLimiter(HUGE, 1)
    for _ in range(n):
        await limiter.acquire()


async def aiolimiter_acquire(n: int) -> None:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(HUGE, 1)
    for _ in range(n):
        await limiter.acquire()


async def aiolimiter_has_capacity(n: int) -> None:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(HUGE, 1)
    for _ in range(n):
        if limiter.has_capacity():
            await limiter.acquire()


def contention(make_limiter: Callable[[], Any], tasks: int, total: int) -> Callable[[int], Any]:
    async def run(_: int) -> None:
        limiter = make_limiter()
        per_task = total // tasks

        async def worker() -> None:
            for _ in range(per_task):
                await limiter.acquire()
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(tasks)))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 20_000 if args.quick else 200_000
    total = 5_000 if args.quick else 20_000

    print("Circuit breaker, CLOSED: admit + record success around a no-op call")
    ours = best_ns(ours_closed, n)
    ours_explicit = best_ns(ours_closed_explicit, n)
    print(f"  {'cano_dsl try_acquire()/record_success()':<44} cano_dsl {ours_explicit:8.0f} ns")
    print(
        row(
            "sync, `with breaker.try_acquire()`",
            ours,
            best_ns(pybreaker_closed, n) if have("pybreaker") else None,
            "pybreaker",
        )
    )
    print(
        row(
            "sync, `with breaker.try_acquire()`",
            ours,
            best_ns(aiobreaker_closed, n) if have("aiobreaker") else None,
            "aiobreaker",
        )
    )
    print(
        row(
            "sync, `with breaker.try_acquire()`",
            ours,
            best_ns(purgatory_closed, n // 4) if have("purgatory") else None,
            "purgatory",
        )
    )
    ours_async = best_ns_async(ours_closed_async, n)
    print(
        row(
            "async body",
            ours_async,
            best_ns_async(aiobreaker_closed_async, n) if have("aiobreaker") else None,
            "aiobreaker",
        )
    )
    print(
        row(
            "async body",
            ours_async,
            best_ns_async(purgatory_closed_async, n // 4) if have("purgatory") else None,
            "purgatory",
        )
    )

    print("\nCircuit breaker, OPEN: rejection path")
    ours_rej = best_ns(ours_open, n)
    print(
        row(
            "rejected call",
            ours_rej,
            best_ns(pybreaker_open, n) if have("pybreaker") else None,
            "pybreaker",
        )
    )
    print(
        row(
            "rejected call",
            ours_rej,
            best_ns(aiobreaker_open, n) if have("aiobreaker") else None,
            "aiobreaker",
        )
    )
    print(
        row(
            "rejected call",
            ours_rej,
            best_ns(purgatory_open, n // 4) if have("purgatory") else None,
            "purgatory",
        )
    )

    print("\nToken bucket, admission fast path (asyncio)")
    if have("aiolimiter"):
        theirs = best_ns_async(aiolimiter_acquire, n)
        theirs_check = best_ns_async(aiolimiter_has_capacity, n)
        ours_try = best_ns_async(ours_try_acquire, n)
        ours_acq = best_ns_async(ours_acquire, n)
        print(row("try_acquire() vs await acquire()", ours_try, theirs, "aiolimiter"))
        print(
            row("try_acquire() vs has_capacity()+acquire()", ours_try, theirs_check, "aiolimiter")
        )
        print(row("await acquire() vs await acquire()", ours_acq, theirs, "aiolimiter"))

        print(
            f"\nToken bucket, contention: {total} acquisitions over N tasks, "
            "each acquire() followed by sleep(0) (asyncio)"
        )
        for tasks in (16, 64, 256):
            ours_c = best_ns_async(contention(lambda: RateLimiter(HUGE, 1), tasks, total), 1, 5)
            from aiolimiter import AsyncLimiter

            theirs_c = best_ns_async(contention(lambda: AsyncLimiter(HUGE, 1), tasks, total), 1, 5)
            print(
                row(
                    f"{tasks} tasks (per acquisition)",
                    ours_c / total,
                    theirs_c / total,
                    "aiolimiter",
                )
            )
    else:
        print("  aiolimiter not installed: skipped (pip install aiolimiter)")


if __name__ == "__main__":
    main()
