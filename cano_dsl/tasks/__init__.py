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
# --- end models ---

# --- saga (compensatable) ---
from .compensatable import CompensatableTask as CompensatableTask
from .compensatable import compensatable as compensatable

task.compensatable = compensatable
# --- end saga ---

__all__ = ["BatchTask", "FunctionTask", "RouterTask", "Task", "batch", "router", "task"]
