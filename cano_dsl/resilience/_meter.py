"""The `Meter` protocol shared by the limiters, its `MeterStatus` snapshot, and the
refundable `Reservation` (REFERENCE §7.2 to 7.4)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["Meter", "MeterStatus", "Reservation"]

#: Waits shorter than this are rounded up, so float rounding can never make a waiter
#: spin on a zero-length sleep.
MIN_WAIT = 1e-6


@attrs.frozen
class MeterStatus:
    """A point-in-time view of a `Meter`.

    ``used``: units consumed; ``limit``: capacity (bucket capacity or window limit);
    ``available_in``: seconds until at least one more unit is free (0.0 when some is);
    ``resets_at``: library-clock reading of the next window reset, None for a bucket.
    """

    used: int
    limit: int
    available_in: float
    resets_at: float | None = None


@runtime_checkable
class Meter(Protocol):
    """A synchronous throttle that admits or rejects weighted units.

    `RateLimiter` (token bucket) and `WindowedRateLimiter` (fixed window) implement it,
    so a `MultiRateLimiter` can mix them; so can your own class.
    """

    def try_debit(self, cost: int) -> int | None:
        """Debit ``cost`` units if they fit: return an opaque epoch to hand back to
        `credit` for a refund, or None (and debit nothing) if they do not fit."""
        ...

    def credit(self, cost: int, epoch: int) -> None:
        """Refund ``cost`` units debited in ``epoch``; a refund whose accounting period
        has passed (a rolled window) is dropped."""
        ...

    def time_until(self, cost: int) -> float:
        """Seconds until ``cost`` units fit: 0.0 if they do now, ``math.inf`` if never."""
        ...

    def snapshot(self) -> MeterStatus:
        """A point-in-time view for observability."""
        ...


_PENDING, _COMMITTED, _CANCELLED = 0, 1, 2


class Reservation:
    """Units debited from a meter that go back unless committed.

    `commit` keeps the debit; `cancel` refunds it now. A reservation that is neither
    (dropped, or left through its ``with`` block without `commit`) refunds too. The
    first of commit / cancel / drop wins; later calls are no-ops. Refunds are capped at
    the meter's capacity, and a window's refund is dropped once its window has rolled.
    """

    __slots__ = ("_cost", "_epoch", "_lock", "_meter", "_status")

    def __init__(self, meter: Meter, cost: int, epoch: int) -> None:
        self._meter = meter
        self._cost = cost
        self._epoch = epoch
        self._status = _PENDING
        self._lock = threading.Lock()

    @property
    def cost(self) -> int:
        """The units this reservation holds."""
        return self._cost

    @property
    def committed(self) -> bool:
        """Whether `commit()` kept the units."""
        return self._status == _COMMITTED

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` gave the units back."""
        return self._status == _CANCELLED

    def _settle(self, status: int) -> bool:
        with self._lock:
            if self._status != _PENDING:
                return False
            self._status = status
            return True

    def commit(self) -> None:
        """Make the debit permanent."""
        self._settle(_COMMITTED)

    def cancel(self) -> None:
        """Refund the units now (no-op if already committed or cancelled)."""
        if self._settle(_CANCELLED):
            self._meter.credit(self._cost, self._epoch)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def __del__(self) -> None:
        if self._status == _PENDING:
            self._status = _CANCELLED
            meter = self._meter
            try:
                # Our limiters offer a refund path that never blocks on their lock (a
                # collection may run inside their own critical section).
                getattr(meter, "_credit_nowait", meter.credit)(self._cost, self._epoch)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        status = ("pending", "committed", "cancelled")[self._status]
        return f"Reservation(cost={self._cost}, {status})"
