"""cano_dsl: resilient, self-healing async state machines on anyio.

States are Enum members; each state's task returns the next state; a `Workflow`
runs the machine with retries, timeouts, circuit breakers, split/join parallelism,
batch fan-out, sagas, checkpoints and crash recovery, on asyncio and on trio.
"""

from __future__ import annotations

# --- core exports (engine owner) ---
from ._cancel import CancellationToken as CancellationToken
from ._config import RetryMode as RetryMode
from ._config import TaskConfig as TaskConfig
from ._errors import AppendTypeMismatch as AppendTypeMismatch
from ._errors import CanoError as CanoError
from ._errors import CheckpointConflict as CheckpointConflict
from ._errors import CheckpointStoreError as CheckpointStoreError
from ._errors import CircuitOpenError as CircuitOpenError
from ._errors import CompensationFailed as CompensationFailed
from ._errors import ConfigurationError as ConfigurationError
from ._errors import KeyNotFound as KeyNotFound
from ._errors import OrphanedCompensation as OrphanedCompensation
from ._errors import RateLimited as RateLimited
from ._errors import ResourceDuplicateKey as ResourceDuplicateKey
from ._errors import ResourceNotFound as ResourceNotFound
from ._errors import ResourceTypeMismatch as ResourceTypeMismatch
from ._errors import RetryExhausted as RetryExhausted
from ._errors import RunClaimedError as RunClaimedError
from ._errors import StateFailure as StateFailure
from ._errors import StoreError as StoreError
from ._errors import TaskDefinitionError as TaskDefinitionError
from ._errors import TaskExecutionError as TaskExecutionError
from ._errors import TaskTimeout as TaskTimeout
from ._errors import TypeMismatch as TypeMismatch
from ._errors import WorkflowCancelled as WorkflowCancelled
from ._errors import WorkflowError as WorkflowError
from ._errors import WorkflowTimeout as WorkflowTimeout
from ._errors import WorkflowVersionMismatch as WorkflowVersionMismatch
from ._observer import WorkflowObserver as WorkflowObserver
from ._outcome import Err as Err
from ._outcome import Ok as Ok
from ._outcome import Outcome as Outcome
from ._resources import FromResources as FromResources
from ._resources import HealthStatus as HealthStatus
from ._resources import Key as Key
from ._resources import Res as Res
from ._resources import Resource as Resource
from ._resources import Resources as Resources
from ._resources import from_resources as from_resources
from ._resources import resource as resource
from ._state import TaskResult as TaskResult
from ._store import MemoryStore as MemoryStore

# --- end core exports ---
# --- models exports ---
from .tasks import CloseReason as CloseReason
from .tasks import PollErrorPolicy as PollErrorPolicy
from .tasks import PollOutcome as PollOutcome
from .tasks import PollTask as PollTask
from .tasks import StepOutcome as StepOutcome
from .tasks import SteppedTask as SteppedTask
from .tasks import StreamErrorPolicy as StreamErrorPolicy
from .tasks import StreamTask as StreamTask
from .tasks import StreamWindow as StreamWindow
from .tasks import TimerOutcome as TimerOutcome
from .tasks import TimerTask as TimerTask
from .tasks import WindowSignal as WindowSignal
from .tasks import poll as poll
from .tasks import stepped as stepped
from .tasks import stream as stream
from .tasks import timer as timer

# --- end models exports ---
# --- saga exports ---
from .tasks import CompensatableTask as CompensatableTask
from .tasks import compensatable as compensatable

# --- end saga exports ---
# --- resilience exports ---
from .resilience import CircuitBreaker as CircuitBreaker
from .resilience import CircuitPermit as CircuitPermit
from .resilience import CircuitPolicy as CircuitPolicy
from .resilience import CircuitState as CircuitState
from .resilience import Meter as Meter
from .resilience import MeterStatus as MeterStatus
from .resilience import MultiPermit as MultiPermit
from .resilience import MultiRateLimiter as MultiRateLimiter
from .resilience import RateLimiter as RateLimiter
from .resilience import RateLimiterPolicy as RateLimiterPolicy
from .resilience import Reservation as Reservation
from .resilience import Tier as Tier
from .resilience import WindowedRateLimiter as WindowedRateLimiter
from .resilience import WindowPolicy as WindowPolicy

# --- end resilience exports ---
# --- stores exports ---
from .stores import CheckpointRow as CheckpointRow
from .stores import ClaimingCheckpointStore as ClaimingCheckpointStore
from .stores import CheckpointStore as CheckpointStore
from .stores import RowKind as RowKind
from .stores import RunClaim as RunClaim
from .tasks import BatchTask as BatchTask
from .tasks import FunctionTask as FunctionTask
from .tasks import RouterTask as RouterTask
from .tasks import Task as Task
from .tasks import batch as batch
from .tasks import router as router
from .tasks import task as task
from .workflow import JoinConfig as JoinConfig
from .workflow import JoinStrategy as JoinStrategy
from .workflow import RunDataError as RunDataError
from .workflow import RunDataMismatch as RunDataMismatch
from .workflow import RunResult as RunResult
from .workflow import SplitResult as SplitResult
from .workflow import Unbound as Unbound
from .workflow import Workflow as Workflow

# --- end stores exports ---
# --- scheduler exports ---
from .scheduler import BackoffPolicy as BackoffPolicy
from .scheduler import FlowInfo as FlowInfo
from .scheduler import FlowStatus as FlowStatus
from .scheduler import RunningScheduler as RunningScheduler
from .scheduler import Scheduler as Scheduler

# --- end scheduler exports ---

__version__ = "0.1.0"

__all__ = sorted(
    name
    for name, value in dict(globals()).items()
    if not name.startswith("_") and name != "annotations" and type(value).__name__ != "module"
)


def _fix_module_paths() -> None:
    """Report public names as living in ``cano_dsl`` (as trio and anyio do)."""
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("cano_dsl."):
            try:
                obj.__module__ = "cano_dsl"
            except (AttributeError, TypeError):
                pass


_fix_module_paths()
