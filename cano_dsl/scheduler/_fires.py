"""Fire records: one scheduler tick fires once across every process sharing them.

A scheduler given fire records (`Scheduler.once_per_fleet`) takes the record of a tick,
keyed by the flow's id and the tick's scheduled time, before it runs the flow; only the
process whose take succeeds runs it. `cano_dsl.fleet.Fleet` provides them in the
checkpoint store's database (one ``INSERT ... ON CONFLICT DO NOTHING`` transaction per
take), so N processes running the same scheduler fire each tick once.
"""

from __future__ import annotations

import datetime
from typing import Protocol, runtime_checkable

__all__ = ["FireRecords"]


@runtime_checkable
class FireRecords(Protocol):
    """Where the ticks that fired are recorded, shared by the schedulers of a fleet."""

    async def take_fire(self, flow_id: str, scheduled_at: datetime.datetime) -> bool:
        """Record that ``flow_id``'s tick scheduled at ``scheduled_at`` (UTC) fires;
        ``True`` for exactly one caller per ``(flow_id, scheduled_at)`` across every
        process, ``False`` for the others. Raising skips the tick in this process."""
