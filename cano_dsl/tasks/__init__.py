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
from .poll import PollErrorPolicy as PollErrorPolicy  # noqa: E402
from .poll import PollOutcome as PollOutcome  # noqa: E402
from .poll import PollTask as PollTask  # noqa: E402
from .poll import poll as poll  # noqa: E402
from .stepped import StepOutcome as StepOutcome  # noqa: E402
from .stepped import SteppedTask as SteppedTask  # noqa: E402
from .stepped import stepped as stepped  # noqa: E402
from .stream import CloseReason as CloseReason  # noqa: E402
from .stream import StreamErrorPolicy as StreamErrorPolicy  # noqa: E402
from .stream import StreamTask as StreamTask  # noqa: E402
from .stream import StreamWindow as StreamWindow  # noqa: E402
from .stream import WindowSignal as WindowSignal  # noqa: E402
from .stream import stream as stream  # noqa: E402
from .timer import TimerOutcome as TimerOutcome  # noqa: E402
from .timer import TimerTask as TimerTask  # noqa: E402
from .timer import timer as timer  # noqa: E402

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

__all__ = ["BatchTask", "FunctionTask", "RouterTask", "Task", "batch", "router", "task"]
