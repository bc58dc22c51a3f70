"""Every name and shape of shared/spec/API.md is importable and behaves as written.
(An outside acceptance suite imports exactly these.)"""

from __future__ import annotations

import ast
import datetime
import enum
import importlib
import inspect
import itertools
import math
from pathlib import Path

import attrs
import pytest

import cano_dsl
from cano_dsl import (
    BatchTask,
    CancellationToken,
    CloseReason,
    ConfigurationError,
    Err,
    JoinConfig,
    JoinStrategy,
    Ok,
    PollErrorPolicy,
    PollOutcome,
    RetryMode,
    StepOutcome,
    StreamErrorPolicy,
    StreamWindow,
    TaskConfig,
    TaskResult,
    TimerOutcome,
    WindowSignal,
    WorkflowObserver,
)


class Step(enum.Enum):
    A = 1
    NEXT = 2


TOP_LEVEL = """
task router poll timer batch stepped stream compensatable
Task BatchTask TaskResult Ok Err RetryMode TaskConfig
PollOutcome PollErrorPolicy TimerOutcome StepOutcome StreamWindow StreamErrorPolicy
WindowSignal CloseReason
Resources Resource HealthStatus resource from_resources Res MemoryStore
Workflow JoinConfig JoinStrategy CancellationToken WorkflowObserver
CanoError TaskExecutionError StoreError KeyNotFound TypeMismatch AppendTypeMismatch
WorkflowError ConfigurationError TaskDefinitionError RetryExhausted TaskTimeout
WorkflowTimeout WorkflowCancelled CircuitOpenError RateLimited CheckpointStoreError
CompensationFailed OrphanedCompensation ResourceNotFound ResourceTypeMismatch
ResourceDuplicateKey WorkflowVersionMismatch StateFailure
CheckpointConflict RunClaimedError
CheckpointRow RowKind CheckpointStore ClaimingCheckpointStore RunClaim
CircuitBreaker CircuitPolicy CircuitState RateLimiter WindowedRateLimiter Meter
MultiRateLimiter
""".split()


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_name(name: str) -> None:
    assert hasattr(cano_dsl, name), name
    assert name in cano_dsl.__all__


def test_decorators_reachable_from_task() -> None:
    for name in ("router", "poll", "timer", "batch", "stepped", "stream", "compensatable"):
        assert getattr(cano_dsl.task, name) is getattr(cano_dsl, name)


def test_model_value_types() -> None:
    assert PollOutcome.ready(Step.NEXT) != PollOutcome.pending(0)
    PollOutcome.pending(datetime.timedelta(milliseconds=5))
    PollErrorPolicy.fail_fast()
    PollErrorPolicy.retry_on_error(3)
    TimerOutcome.duration(0.5)
    TimerOutcome.until(10.0)
    StepOutcome.more({"page": 2})
    StepOutcome.done(Step.NEXT)
    StreamWindow.count(3)
    StreamWindow.duration(0.1)
    StreamErrorPolicy.fail_fast()
    StreamErrorPolicy.skip_and_continue()
    StreamErrorPolicy.retry_on_error(2)
    WindowSignal.continue_()
    WindowSignal.stop(Step.NEXT)
    assert isinstance(CloseReason.EXHAUSTED, enum.Enum) and CloseReason.CANCELLED


def test_ok_err() -> None:
    ok, err = Ok(3), Err(ValueError("x"))
    assert ok.is_ok() and ok.unwrap() == 3 and ok.value == 3
    assert not err.is_ok() and isinstance(err.error, ValueError)
    with pytest.raises(ValueError):
        err.unwrap()
    assert Ok.__match_args__ == ("value",) and Err.__match_args__ == ("error",)


def test_retry_and_config_shapes() -> None:
    assert RetryMode.none().max_attempts == 1
    assert RetryMode.fixed(2, 0.1).delay_for_attempt(0) == 0.1
    assert RetryMode.exponential(3) == RetryMode.exponential_custom(3, 0.1, 2.0, 30, 0.1)
    cfg = TaskConfig(
        retry_mode=RetryMode.exponential(3), attempt_timeout=None, circuit_breaker=None
    )
    assert cfg == TaskConfig.default() == TaskConfig()
    assert TaskConfig().with_attempt_timeout(datetime.timedelta(seconds=2)).attempt_timeout == 2.0
    assert TaskResult.single(Step.A) != TaskResult.split([Step.A])


def test_join_strategies_and_config() -> None:
    for s in (
        JoinStrategy.all(),
        JoinStrategy.any(),
        JoinStrategy.quorum(2),
        JoinStrategy.percentage(0.5),
        JoinStrategy.partial_results(1),
        JoinStrategy.partial_timeout(),
    ):
        cfg = JoinConfig(s, Step.NEXT).with_timeout(5).with_bulkhead(2)
        assert cfg.timeout == 5.0 and cfg.bulkhead == 2
    with pytest.raises(ConfigurationError):
        JoinStrategy.percentage(1.5)
    with pytest.raises(ConfigurationError):
        JoinConfig(JoinStrategy.all(), Step.NEXT).with_bulkhead(0)


def test_workflow_builder_methods() -> None:
    for name in (
        "register register_router register_split register_stepped register_stream "
        "register_with_compensation add_exit_state add_exit_states with_observer "
        "with_total_timeout with_compensation_timeout with_teardown_timeout "
        "with_checkpoint_store "
        "with_workflow_id with_workflow_version validate validate_initial_state "
        "registered_states orchestrate resume_from run_sync bare"
    ).split():
        assert hasattr(cano_dsl.Workflow, name), name
    assert inspect.iscoroutinefunction(cano_dsl.Workflow.orchestrate)
    assert inspect.iscoroutinefunction(cano_dsl.Workflow.resume_from)


def test_cancellation_token_shape() -> None:
    token = CancellationToken()
    assert token.is_cancelled is False
    token.cancel()
    assert token.is_cancelled is True
    assert inspect.iscoroutinefunction(token.wait)


def test_observer_hooks() -> None:
    for hook in (
        "on_state_enter on_task_start on_task_success on_task_failure on_retry "
        "on_circuit_open on_checkpoint on_resume on_workflow_timeout on_cancelled "
        "on_checkpoint_clear_failed on_unknown_resume_state on_teardown_timeout"
    ).split():
        assert callable(getattr(WorkflowObserver(), hook))


def test_error_extras() -> None:
    assert issubclass(cano_dsl.TaskDefinitionError, cano_dsl.ConfigurationError)
    assert issubclass(cano_dsl.TaskDefinitionError, TypeError)
    assert issubclass(cano_dsl.ConfigurationError, ValueError)
    assert issubclass(cano_dsl.TaskTimeout, TimeoutError)
    assert issubclass(cano_dsl.KeyNotFound, KeyError)
    assert issubclass(cano_dsl.CheckpointConflict, cano_dsl.CheckpointStoreError)
    assert issubclass(cano_dsl.RunClaimedError, cano_dsl.CheckpointStoreError)
    assert cano_dsl.RunClaimedError("run-1").category == "checkpoint_store"
    assert cano_dsl.CheckpointConflict("run-1", 3).sequence == 3
    assert cano_dsl.TaskDefinitionError("x").category == "configuration"
    assert cano_dsl.RateLimited("t", math.inf).retry_after == math.inf


def test_checkpoint_rows() -> None:
    from cano_dsl import CheckpointRow, CheckpointStore, RowKind

    row = CheckpointRow(
        sequence=1,
        state="A",
        task_id="t",
        output_blob=None,
        kind=RowKind.STATE_ENTRY,
        workflow_version=0,
    )
    assert row.with_output(b"{}").kind is RowKind.COMPENSATION_COMPLETION
    assert row.with_cursor(b"1").kind is RowKind.STEP_CURSOR
    assert row.with_workflow_version(3).workflow_version == 3 and row.workflow_version == 0
    assert {k.name for k in RowKind} >= {"STATE_ENTRY", "COMPENSATION_COMPLETION", "STEP_CURSOR"}
    with pytest.raises(ConfigurationError):
        CheckpointRow(sequence=-1, state="A", task_id="t")
    with pytest.raises(ConfigurationError):
        CheckpointRow(sequence=0, state="A", task_id="t", workflow_version=2**31)
    from cano_dsl.stores import PostgresCheckpointStore, SqliteCheckpointStore
    from cano_dsl.testing import InMemoryCheckpointStore

    assert isinstance(InMemoryCheckpointStore(), CheckpointStore)
    assert SqliteCheckpointStore and PostgresCheckpointStore
    assert attrs.has(CheckpointRow)


def test_resilience_shapes() -> None:
    from cano_dsl import (
        CircuitBreaker,
        CircuitPolicy,
        CircuitState,
        MultiRateLimiter,
        RateLimiter,
        WindowedRateLimiter,
    )

    breaker = CircuitBreaker(
        CircuitPolicy(failure_threshold=5, reset_timeout=30, half_open_max_calls=1)
    )
    assert breaker.state is CircuitState.CLOSED
    with breaker.try_acquire():
        pass
    limiter = RateLimiter(10, 1).with_burst(2)
    assert limiter.try_acquire(cost=1) is True
    assert RateLimiter.per_second(5).try_acquire()
    window = WindowedRateLimiter(3, 60)
    assert window.try_acquire() and window.used == 1 and window.remaining == 2
    multi = MultiRateLimiter().with_tier("short", window, 1)
    multi.try_acquire(only=())
    with pytest.raises(ConfigurationError):
        RateLimiter(0, 1)


def test_testing_module_and_plugin_fixtures(pytestconfig: pytest.Config) -> None:
    from cano_dsl.testing import (
        InMemoryCheckpointStore,
        MockClock,
        RecordingObserver,
        TestResources,
        assert_compensation_ran,
    )

    assert all(
        (
            InMemoryCheckpointStore,
            MockClock,
            RecordingObserver,
            TestResources,
            assert_compensation_ran,
        )
    )
    assert pytestconfig.pluginmanager.has_plugin("cano_dsl")


def test_batch_base_class_generic_form() -> None:
    class P(BatchTask[Step, int, int]):
        concurrency = 4

        async def load(self, res: cano_dsl.Resources) -> list[int]:
            return [1]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: cano_dsl.Resources, outputs: list[object]) -> Step:
            return Step.NEXT

    assert P().concurrency() == 4


# --- docstrings: every public name says what it is ------------------------------------

PUBLIC_MODULES = (
    "cano_dsl",
    "cano_dsl.tasks",
    "cano_dsl.workflow",
    "cano_dsl.resilience",
    "cano_dsl.scheduler",
    "cano_dsl.fleet",
    "cano_dsl.stores",
    "cano_dsl.observability",
    "cano_dsl.testing",
    "cano_dsl.testing.conformance",
    "cano_dsl.testing.strategies",
    "cano_dsl.cli",
    "cano_dsl.report",
)


def _undocumented_methods(cls: type) -> list[str]:
    """Public methods and properties of ``cls`` with no docstring of their own or of the
    member they override (an observer hook documented on `WorkflowObserver` counts).
    Store-conformance checks are pytest tests whose names say what they check."""
    out = []
    for attr, value in vars(cls).items():
        if attr.startswith("_") or (attr.startswith("test_") and "Conformance" in cls.__name__):
            continue
        member = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        is_member = isinstance(member, property) or inspect.isfunction(member)
        if is_member and not (inspect.getdoc(getattr(cls, attr)) or "").strip():
            out.append(f"{cls.__name__}.{attr}")
    return out


def _data_docstring(name: str) -> bool:
    """Whether a module-level constant or type alias ``name`` has an attribute docstring
    (a string right after its assignment, which the API reference shows)."""
    for path in Path(cano_dsl.__file__).parent.rglob("*.py"):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        for stmt, after in itertools.pairwise(body):
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, ast.AnnAssign):
                targets = [stmt.target]
            else:
                continue
            assigned = any(isinstance(t, ast.Name) and t.id == name for t in targets)
            documented = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            if assigned and documented:
                return bool(str(after.value.value).strip())
    return False


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    if module_name == "cano_dsl.observability":
        pytest.importorskip("opentelemetry.sdk", reason="the otel names need the otel extra")
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            if not (obj.__doc__ or "").strip():
                missing.append(name)
            if inspect.isclass(obj):
                missing += _undocumented_methods(obj)
        elif callable(obj) and type(obj).__module__.startswith("cano_dsl"):
            if not (obj.__doc__ or "").strip() or obj.__doc__ == type(obj).__doc__:
                missing.append(name)  # a decorator instance needs a docstring of its own
        elif not _data_docstring(name):
            missing.append(name)
    assert not missing, f"{module_name}: public names without a docstring: {missing}"
