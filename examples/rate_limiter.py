"""Rate limiter: two workers sharing one token bucket.

Run with: python examples/rate_limiter.py

Two concurrent workers make 5 calls each through one shared `RateLimiter` of 20
tokens a second with a capacity of 1 (`with_max_tokens(1)`: no burst), so the 10
calls land about 50 ms apart whichever worker makes them, and the run lasts about
9 x 50 ms = 0.45 s. Raise the capacity (or add `with_burst`) to admit an instant
burst before the steady rate takes over.
"""

from __future__ import annotations

import time

import anyio

from cano_dsl import RateLimiter


async def main() -> None:
    limiter = RateLimiter.per_second(20).with_max_tokens(1)
    print("=== Rate limiter: 2 workers, one shared 20 calls/s budget ===\n")
    start = time.perf_counter()
    stamps: list[float] = []

    async def worker(name: int) -> None:
        for call in range(1, 6):
            await limiter.acquire()  # waits until the shared bucket has a token
            elapsed = time.perf_counter() - start
            stamps.append(elapsed)
            print(f"  [{elapsed:5.2f}s] worker {name} -> call {call}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(worker, 0)
        tg.start_soon(worker, 1)

    elapsed = time.perf_counter() - start
    print(f"\n10 calls completed in {elapsed:.2f}s under a 20 calls/s cap.")
    print(f"Shed-load check right after: try_acquire() -> {limiter.try_acquire()}")
    # The first call spends the one initial token; the other 9 wait one refill each.
    assert elapsed >= 0.4, f"the limiter should have paced the run, took {elapsed:.3f}s"


if __name__ == "__main__":
    anyio.run(main)
