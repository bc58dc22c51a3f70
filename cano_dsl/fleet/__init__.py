"""The fleet: a run queue and run records in the checkpoint store's database, and
workers in any number of processes and hosts that claim runs, hold them under leases,
and resume each other's runs when one dies. See docs/fleet.md."""

from __future__ import annotations

from ._fleet import Fleet as Fleet
from ._fleet import RunHandle as RunHandle
from ._fleet import tick_run_id as tick_run_id
from ._record import FleetError as FleetError
from ._record import QueueLimits as QueueLimits
from ._record import RunCancelledError as RunCancelledError
from ._record import RunFailedError as RunFailedError
from ._record import RunNotFound as RunNotFound
from ._record import RunRecord as RunRecord
from ._record import RunStatus as RunStatus
from ._worker import Registry as Registry
from ._worker import Worker as Worker

__all__ = [
    "Fleet",
    "FleetError",
    "QueueLimits",
    "Registry",
    "RunCancelledError",
    "RunFailedError",
    "RunHandle",
    "RunNotFound",
    "RunRecord",
    "RunStatus",
    "Worker",
    "tick_run_id",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
