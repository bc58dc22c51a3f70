"""Multi-level rate limiter: several limits on one action, all or nothing.

Run with: python examples/rate_limiter_multi.py

A request is admitted only if every applicable tier has room: a short "5-hour"
window, a "weekly" window, a per-model weekly window and a token budget. Windows
(`WindowedRateLimiter`, with a real reset boundary) and a token bucket (`RateLimiter`)
mix freely, each metering its own currency through the tier's cost. A rejection says
which tier blocked and for how long (`RateLimited.tier`, `.retry_after`), and refunds
whatever earlier tiers had debited. Durations are scaled down to hundreds of
milliseconds so the demo finishes in about half a second.
"""

from __future__ import annotations

import time

import anyio

from cano_dsl import MultiRateLimiter, RateLimited, RateLimiter, WindowedRateLimiter


async def main() -> None:
    five_hour = WindowedRateLimiter(3, 0.4)
    weekly = WindowedRateLimiter(20, 10)
    opus_weekly = WindowedRateLimiter(2, 10)
    tokens = RateLimiter(10_000, 1)  # 10k tokens a second; each call costs 1500

    limiter = (
        MultiRateLimiter()
        .with_tier("5h", five_hour, 1)
        .with_tier("weekly", weekly, 1)
        .with_tier("opus_weekly", opus_weekly, 1)
        .with_tier("tokens", tokens, 1500)
    )

    print("=== Multi-level rate limiter ===")
    print("tiers: 5h(3/400ms)  weekly(20/10s)  opus_weekly(2/10s)  tokens(10k/s, 1500/call)\n")

    print("Phase 1: Opus requests with try_acquire (opus_weekly cap = 2)")
    for i in range(1, 4):
        try:
            limiter.try_acquire()
            print(
                f"  req {i}: admitted (5h used = {five_hour.used}, "
                f"opus_weekly used = {opus_weekly.used})"
            )
        except RateLimited as err:
            print(f"  req {i}: BLOCKED by `{err.tier}` (retry after {err.retry_after:.2f}s)")
    print(
        f"  -> 5h used = {five_hour.used}: the rejected request refunded its 5h and weekly "
        "debits; the tokens tier was never reached (no leak)\n"
    )
    assert five_hour.used == 2 and weekly.used == 2

    print("Phase 2: a non-Opus request skips opus_weekly (only=...)")
    limiter.try_acquire(only=["5h", "weekly", "tokens"])
    print(f"  admitted; opus_weekly untouched (used = {opus_weekly.used})\n")

    print("Phase 3: the 5h window is full; acquire() waits for its reset")
    start = time.perf_counter()
    permit = await limiter.acquire(only=["5h", "weekly", "tokens"])
    waited = time.perf_counter() - start
    print(f"  admitted tiers {permit.tiers} after waiting {waited * 1000:.0f} ms")
    assert waited >= 0.1, f"should have waited for the 5h reset, waited {waited:.3f}s"

    print("\nDone: every admission satisfied all applicable tiers at once.")


if __name__ == "__main__":
    anyio.run(main)
