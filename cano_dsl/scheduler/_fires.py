"""Fire records: one scheduler tick fires once across every process sharing them.

A scheduler given fire records (`Scheduler.once_per_fleet`) takes the record of a tick,
keyed by the flow's id and the tick's scheduled time, before it runs the flow; only the
process whose take succeeds runs it. `cano_dsl.fleet.Fleet` provides them in the
checkpoint store's database (one ``INSERT ... ON CONFLICT DO NOTHING`` transaction per
take), so N processes running the same scheduler fire each tick once.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["FireRecords"]

logger = logging.getLogger("cano_dsl.scheduler")


@runtime_checkable
class FireRecords(Protocol):
    """Where the ticks that fired are recorded, shared by the schedulers of a fleet."""

    async def take_fire(self, flow_id: str, scheduled_at: datetime.datetime) -> bool:
        """Record that ``flow_id``'s tick scheduled at ``scheduled_at`` (UTC) fires;
        ``True`` for exactly one caller per ``(flow_id, scheduled_at)`` across every
        process, ``False`` for the others. Raising skips the tick in this process."""


class EnqueuingFires:
    """Fire records that hand the ticks of fleet workflows to the fleet (internal: what
    ``Scheduler.once_per_fleet(fleet, registry=...)`` installs).

    A tick of a flow whose id is a name of ``registry`` is enqueued as a fleet run
    (`Fleet.enqueue_tick`: run id ``"<flow id>@<scheduled time, UTC ISO 8601>"``, so
    the run record is the tick's fire record: the one enqueue that creates it wins)
    and never runs in this process (``take_fire`` answers ``False``); any other flow's
    tick takes an ordinary fire record."""

    def __init__(
        self, fleet: Any, registry: Any, flows: Mapping[str, Any], queue: str, priority: int
    ) -> None:
        self.fleet = fleet
        self.registry = registry
        self._flows = flows  # the scheduler's live flow table: id -> FlowSpec
        self.queue = queue
        self.priority = priority

    async def take_fire(self, flow_id: str, scheduled_at: datetime.datetime) -> bool:
        """See the class docstring."""
        spec = self._flows.get(flow_id)
        if spec is None or flow_id not in self.registry.names:
            return bool(await self.fleet.take_fire(flow_id, scheduled_at))
        handle = await self.fleet.enqueue_tick(
            flow_id, scheduled_at, spec.initial, queue=self.queue, priority=self.priority
        )
        if handle.created:
            logger.info(
                "scheduled flow %r: tick %s enqueued as run %r",
                flow_id,
                scheduled_at,
                handle.run_id,
            )
        return False
