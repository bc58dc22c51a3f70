"""Processing models: one module per model, one decorator machinery (`_decorate`)."""

from __future__ import annotations

from ._base import Task as Task
from .batch import BatchTask as BatchTask
from .batch import batch as batch
from .router import RouterTask as RouterTask
from .router import router as router
from .task import FunctionTask as FunctionTask
from .task import task as task

task.router = router
task.batch = batch

# --- models (poll, timer, stepped, stream) ---
from .poll import PollErrorPolicy as PollErrorPolicy
from .poll import PollOutcome as PollOutcome
from .poll import PollTask as PollTask
from .poll import poll as poll
from .stepped import StepOutcome as StepOutcome
from .stepped import SteppedTask as SteppedTask
from .stepped import stepped as stepped
from .stream import CloseReason as CloseReason
from .stream import StreamErrorPolicy as StreamErrorPolicy
from .stream import StreamTask as StreamTask
from .stream import StreamWindow as StreamWindow
from .stream import WindowSignal as WindowSignal
from .stream import stream as stream
from .timer import TimerOutcome as TimerOutcome
from .timer import TimerTask as TimerTask
from .timer import timer as timer

task.poll = poll
task.timer = timer
task.stepped = stepped
task.stream = stream
# --- end models ---

# --- saga (compensatable) ---
from .compensatable import CompensatableTask as CompensatableTask
from .compensatable import compensatable as compensatable

task.compensatable = compensatable
# --- end saga ---

# --- typing: what a type checker sees of each model ---
from ._base import SupportsRun as SupportsRun
from ._base import SupportsRunBare as SupportsRunBare
from ._base import TaskLike as TaskLike
from .batch import BatchLike as BatchLike
from .compensatable import CompensatableLike as CompensatableLike
from .poll import PollLike as PollLike
from .router import RouterLike as RouterLike
from .stepped import SteppedLike as SteppedLike
from .stream import StreamLike as StreamLike
from .timer import TimerLike as TimerLike

# --- end typing ---

__all__ = [
    "BatchLike",
    "BatchTask",
    "CompensatableLike",
    "FunctionTask",
    "PollLike",
    "RouterLike",
    "RouterTask",
    "SteppedLike",
    "StreamLike",
    "SupportsRun",
    "SupportsRunBare",
    "Task",
    "TaskLike",
    "TimerLike",
    "batch",
    "router",
    "task",
]
