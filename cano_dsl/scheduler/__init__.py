"""Time-driven dispatch of workflows: intervals, cron expressions and manual
triggers, with per-flow backoff and trip (REFERENCE §8).

```python
sched = (Scheduler()
         .every("sync", wf, Step.START, 30)
         .cron("nightly", wf, Step.START, "0 0 3 * * *")
         .manual("adhoc", wf, Step.START))
async with sched.start() as running:
    await running.trigger("adhoc")
```
"""

from __future__ import annotations

from ._backoff import BackoffPolicy as BackoffPolicy
from ._builder import Scheduler as Scheduler
from ._cron import CronSchedule as CronSchedule
from ._fires import FireRecords as FireRecords
from ._running import SHUTDOWN_TIMEOUT as SHUTDOWN_TIMEOUT
from ._running import RunningScheduler as RunningScheduler
from ._running import SchedulerRun as SchedulerRun
from ._status import Backoff as Backoff
from ._status import Completed as Completed
from ._status import FlowInfo as FlowInfo
from ._status import FlowStatus as FlowStatus
from ._status import Idle as Idle
from ._status import Running as Running
from ._status import Status as Status
from ._status import Tripped as Tripped
from ._threads import SchedulerThreadHandle as SchedulerThreadHandle

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "Backoff",
    "BackoffPolicy",
    "Completed",
    "CronSchedule",
    "FireRecords",
    "FlowInfo",
    "FlowStatus",
    "Idle",
    "Running",
    "RunningScheduler",
    "Scheduler",
    "SchedulerRun",
    "SchedulerThreadHandle",
    "Status",
    "Tripped",
]
