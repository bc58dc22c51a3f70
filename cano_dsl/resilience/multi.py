"""Several limits on one action at once, all or nothing (REFERENCE §7.4)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from .. import _clock, _metrics
from .._errors import ConfigurationError, RateLimited
from ._common import NoopResource, check_cost
from ._meter import Meter

__all__ = ["MultiPermit", "MultiRateLimiter", "Tier"]

#: Floor on a reported ``retry_after``, so a tier that freed up between the check and
#: the reading can never make an `acquire` loop spin.
MIN_RETRY_AFTER = 0.001


def _meter(value: Meter) -> Meter:
    if not isinstance(value, Meter):
        raise ConfigurationError(
            f"a tier's meter must implement Meter (try_debit, credit, time_until, "
            f"snapshot), got {value!r}"
        )
    return value


def _name(value: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"a tier's name must be a str, got {value!r}")
    return value


@attrs.frozen
class Tier:
    """One limit of a `MultiRateLimiter`: ``cost`` units charged to ``meter`` per
    acquisition. A cost of 0 makes the tier inert."""

    name: str = attrs.field(converter=_name)
    meter: Meter = attrs.field(converter=_meter, eq=attrs.cmp_using(eq=lambda a, b: a is b))
    cost: int = attrs.field(default=1, converter=check_cost)


@attrs.frozen
class MultiPermit:
    """A successful `MultiRateLimiter` acquisition: the names of the tiers debited, in
    registration order. Nothing to release: units stay spent until each tier refills or
    resets on its own clock."""

    tiers: tuple[str, ...] = ()


def _filter(only: Iterable[str]) -> frozenset[str]:
    if isinstance(only, str):
        return frozenset((only,))
    return frozenset(only)


class MultiRateLimiter(NoopResource):
    """Admits a call only if **every** applicable tier has room; either every tier is
    debited or none is. A rejection raises `RateLimited` naming the first blocking tier
    and its ``retry_after`` (float seconds, at least 0.001, ``math.inf`` when the cost
    can never fit).

    ```python
    from cano_dsl import MultiRateLimiter, RateLimited, RateLimiter, WindowedRateLimiter

    multi = (MultiRateLimiter()
             .with_tier("per_minute", WindowedRateLimiter(2, 60), 1)
             .with_tier("tokens", RateLimiter(10_000, 60), 1_500))
    multi.try_acquire()
    multi.try_acquire()
    try:
        multi.try_acquire()
    except RateLimited as err:
        assert err.tier == "per_minute" and err.retry_after > 0
    ```

    Tiers are checked in registration order; names are labels, not keys (a name or a
    meter given twice is charged twice). ``only`` restricts an acquisition to the named
    tiers (empty = all; an unknown name enforces nothing).
    """

    __slots__ = ("_tiers",)

    def __init__(self, tiers: Iterable[Tier] = ()) -> None:
        tiers = tuple(tiers)
        for tier in tiers:
            if not isinstance(tier, Tier):
                raise ConfigurationError(f"expected Tier objects, got {tier!r}")
        self._tiers = tiers

    def with_tier(self, name: str, meter: Meter, cost: int = 1) -> MultiRateLimiter:
        """A new limiter with one more tier (appended; the receiver is unchanged)."""
        return MultiRateLimiter((*self._tiers, Tier(name, meter, cost)))

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers, in the order they are acquired."""
        return self._tiers

    def __repr__(self) -> str:
        names = ", ".join(f"{t.name}:{t.cost}" for t in self._tiers)
        return f"MultiRateLimiter([{names}])"

    def _applicable(self, only: Iterable[str]) -> list[Tier]:
        wanted = _filter(only)
        return [t for t in self._tiers if t.cost and (not wanted or t.name in wanted)]

    def _reserve_all(self, tiers: list[Tier]) -> MultiPermit:
        held: list[tuple[Tier, int]] = []
        try:
            for tier in tiers:
                epoch = tier.meter.try_debit(tier.cost)
                if epoch is None:
                    self._refund(held)
                    held = []
                    retry_after = max(tier.meter.time_until(tier.cost), MIN_RETRY_AFTER)
                    sink = _metrics.SINK
                    if sink is not None:
                        sink.counter(
                            _metrics.MULTI_RATE_LIMITER_THROTTLED_TOTAL,
                            1,
                            (("tier", tier.name),),
                        )
                    raise RateLimited(tier.name, retry_after)
                held.append((tier, epoch))
        except BaseException:
            self._refund(held)
            raise
        return MultiPermit(tuple(t.name for t, _ in held))

    @staticmethod
    def _refund(held: list[tuple[Tier, int]]) -> None:
        for tier, epoch in reversed(held):
            tier.meter.credit(tier.cost, epoch)

    def try_acquire(self, only: Iterable[str] = ()) -> MultiPermit:
        """Debit every applicable tier, or none: a `MultiPermit`, or `RateLimited` for
        the first tier without room (earlier tiers are refunded, later ones untouched)."""
        return self._reserve_all(self._applicable(only))

    async def acquire(self, only: Iterable[str] = ()) -> MultiPermit:
        """Like `try_acquire`, but sleep on the library clock for the blocking tier's
        ``retry_after`` and try again until every tier admits. A tier whose cost can
        never fit raises `ConfigurationError` at once."""
        tiers = self._applicable(only)
        for tier in tiers:
            if math.isinf(tier.meter.time_until(tier.cost)):
                raise ConfigurationError(
                    f"tier `{tier.name}` can never admit a cost of {tier.cost}: it exceeds "
                    "the meter's capacity"
                )
        while True:
            try:
                return self._reserve_all(tiers)
            except RateLimited as err:
                await _clock.sleep(min(err.retry_after, _clock.MAX_SLEEP))
