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
        return f"  {label:<44} {lib:<11} not installed: skipped"
    return (
        f"  {label:<44} cano_dsl {ours:7.0f} ns  {lib:<11}{theirs:7.0f} ns  "
        f"ratio {theirs / ours:4.1f}x"
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


def pair(
    ours: Callable[[int], Any],
    theirs: Callable[[int], Any],
    n: int,
    *,
    is_async: bool = False,
    n_theirs: int | None = None,
) -> tuple[float, float]:
    """Best ns/op of each, measured alternately (A, B, A, B, ...) so that load drift on
    a shared machine hits both sides alike."""
    measure = best_ns_async if is_async else best_ns
    a = b = float("inf")
    for _ in range(REPEATS):
        a = min(a, measure(ours, n, 1))  # type: ignore[arg-type]
        b = min(b, measure(theirs, n_theirs or n, 1))  # type: ignore[arg-type]
    return a, b


def compare(
    label: str,
    lib: str,
    module: str,
    ours: Callable[[int], Any],
    theirs: Callable[[int], Any],
    n: int,
    **kw: Any,
) -> None:
    if not have(module):
        print(row(label, float("nan"), None, lib))
        return
    a, b = pair(ours, theirs, n, **kw)
    print(row(label, a, b, lib))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    total = 5_000 if args.quick else 20_000

    print("Circuit breaker, CLOSED: admit + record success around a no-op call (sync)")
    label = "`with breaker.try_acquire(): noop()`"
    compare(label, "pybreaker", "pybreaker", ours_closed, pybreaker_closed, n)
    compare(label, "aiobreaker", "aiobreaker", ours_closed, aiobreaker_closed, n)
    compare(label, "purgatory", "purgatory", ours_closed, purgatory_closed, n)
    label = "try_acquire(); noop(); record_success()"
    compare(label, "pybreaker", "pybreaker", ours_closed_explicit, pybreaker_closed, n)
    compare(label, "purgatory", "purgatory", ours_closed_explicit, purgatory_closed, n)

    print("\nCircuit breaker, CLOSED, async body (asyncio)")
    label = "`with ...: await anoop()`"
    compare(
        label,
        "aiobreaker",
        "aiobreaker",
        ours_closed_async,
        aiobreaker_closed_async,
        n,
        is_async=True,
    )
    compare(
        label, "purgatory", "purgatory", ours_closed_async, purgatory_closed_async, n, is_async=True
    )

    print("\nCircuit breaker, OPEN: rejection path")
    compare("rejected call", "pybreaker", "pybreaker", ours_open, pybreaker_open, n)
    compare("rejected call", "aiobreaker", "aiobreaker", ours_open, aiobreaker_open, n)
    compare("rejected call", "purgatory", "purgatory", ours_open, purgatory_open, n)

    print("\nToken bucket, admission fast path (asyncio)")
    if not have("aiolimiter"):
        print("  aiolimiter not installed: skipped (pip install aiolimiter)")
        return
    compare(
        "try_acquire() vs await acquire()",
        "aiolimiter",
        "aiolimiter",
        ours_try_acquire,
        aiolimiter_acquire,
        n,
        is_async=True,
    )
    compare(
        "try_acquire() vs has_capacity()+acquire()",
        "aiolimiter",
        "aiolimiter",
        ours_try_acquire,
        aiolimiter_has_capacity,
        n,
        is_async=True,
    )
    compare(
        "await acquire() vs await acquire()",
        "aiolimiter",
        "aiolimiter",
        ours_acquire,
        aiolimiter_acquire,
        n,
        is_async=True,
    )

    from aiolimiter import AsyncLimiter

    print(
        f"\nToken bucket, contention: {total} acquisitions over N tasks, "
        "each acquire() followed by sleep(0) (asyncio)"
    )
    for tasks in (16, 64, 256):
        a, b = pair(
            contention(lambda: RateLimiter(HUGE, 1), tasks, total),
            contention(lambda: AsyncLimiter(HUGE, 1), tasks, total),
            1,
            is_async=True,
        )
        print(row(f"{tasks} tasks (per acquisition)", a / total, b / total, "aiolimiter"))


if __name__ == "__main__":
    main()
