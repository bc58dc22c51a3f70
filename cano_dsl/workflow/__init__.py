"""The workflow engine: builder, run loop, split/join, compensation, resume."""

from __future__ import annotations

from ._data import RunDataError as RunDataError
from ._data import RunDataMismatch as RunDataMismatch
from ._data import RunResult as RunResult
from ._split import JoinConfig as JoinConfig
from ._split import JoinStrategy as JoinStrategy
from ._split import SplitResult as SplitResult
from ._workflow import Unbound as Unbound
from ._workflow import Workflow as Workflow

# Dispatchers of further entry kinds register themselves into _engine.DISPATCHERS
# when imported:
# --- models dispatchers ---
from . import _stepped as _stepped
from . import _stream as _stream

# --- end models dispatchers ---
# --- saga dispatchers ---
from . import _saga as _saga
# --- end saga dispatchers ---

__all__ = [
    "JoinConfig",
    "JoinStrategy",
    "RunDataError",
    "RunDataMismatch",
    "RunResult",
    "SplitResult",
    "Unbound",
    "Workflow",
]
