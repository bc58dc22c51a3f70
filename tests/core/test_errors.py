"""The exception tree: categories, display texts, wrapping rules (REFERENCE §13)."""

from __future__ import annotations

import enum
import pickle

import pytest

from cano_dsl import (
    AppendTypeMismatch,
    CanoError,
    CheckpointStoreError,
    CircuitOpenError,
    CompensationFailed,
    ConfigurationError,
    KeyNotFound,
    OrphanedCompensation,
    RateLimited,
    ResourceDuplicateKey,
    ResourceNotFound,
    ResourceTypeMismatch,
    RetryExhausted,
    StateFailure,
    StoreError,
    TaskDefinitionError,
    TaskExecutionError,
    TaskTimeout,
    TypeMismatch,
    WorkflowCancelled,
    WorkflowError,
    WorkflowTimeout,
    WorkflowVersionMismatch,
)
from cano_dsl._errors import attempt_of, category_of, wrap_with_state


class S(enum.Enum):
    A = 1
    B = 2


@pytest.mark.parametrize(
    ("err", "category"),
    [
        (TaskExecutionError("x"), "task_execution"),
        (StoreError("x"), "store"),
        (KeyNotFound("k"), "store"),
        (TypeMismatch("k"), "store"),
        (AppendTypeMismatch("k"), "store"),
        (WorkflowError("x"), "workflow"),
        (ConfigurationError("x"), "configuration"),
        (TaskDefinitionError("x"), "configuration"),
        (RetryExhausted(3, ValueError("v")), "retry_exhausted"),
        (TaskTimeout("x"), "timeout"),
        (WorkflowTimeout(1.0, 0.5), "workflow_timeout"),
        (WorkflowCancelled(), "cancelled"),
        (CircuitOpenError("x"), "circuit_open"),
        (RateLimited("tier", 1.0), "rate_limited"),
        (CheckpointStoreError("x"), "checkpoint_store"),
        (CompensationFailed([ValueError("a")]), "compensation_failed"),
        (OrphanedCompensation("t", b"{}"), "orphaned_compensation"),
        (ResourceNotFound("x"), "resource_not_found"),
        (ResourceTypeMismatch("x"), "resource_type_mismatch"),
        (ResourceDuplicateKey("x"), "resource_duplicate_key"),
        (WorkflowVersionMismatch(0, 1), "workflow_version_mismatch"),
        (CanoError("x"), "generic"),
    ],
)
def test_every_error_has_its_category(err: CanoError, category: str) -> None:
    assert isinstance(err, CanoError)
    assert err.category == category
    assert category_of(err) == category


def test_builtin_bases_let_users_catch_idiomatically() -> None:
    assert isinstance(KeyNotFound("k"), KeyError)
    assert isinstance(ConfigurationError("x"), ValueError)
    assert isinstance(TaskDefinitionError("x"), TypeError)
    assert isinstance(TaskTimeout("x"), TimeoutError)
    assert isinstance(ResourceNotFound("x"), KeyError)


def test_display_texts_follow_the_original() -> None:
    assert str(TaskExecutionError("boom")) == "Task execution error: boom"
    assert str(KeyNotFound("x")) == "Store error: Key not found: Key 'x' not found in store"
    assert str(ConfigurationError("c")) == "Configuration error: c"
    assert str(RetryExhausted(2, ValueError("v"))) == "Retry exhausted after 2 attempt(s): v"
    assert str(WorkflowCancelled()) == "Workflow cancelled"
    assert str(WorkflowVersionMismatch(0, 1)) == "Workflow version mismatch: stored=0, expected=1"
    assert "No compensator registered for task 't'" in str(OrphanedCompensation("t", b"12"))
    assert "(2 bytes)" in str(OrphanedCompensation("t", b"12"))


def test_message_is_the_inner_text() -> None:
    assert TaskExecutionError("boom").message == "boom"
    assert RetryExhausted(2, TaskExecutionError("v")).message == "v"
    assert WorkflowTimeout(1, 2).message == "workflow total timeout exceeded"
    assert WorkflowTimeout(1, 2).elapsed == 1.0
    assert RateLimited("t", 2).retry_after == 2.0


def test_retry_exhausted_cause_is_the_last_error() -> None:
    last = ValueError("last")
    err = RetryExhausted(4, last)
    assert err.__cause__ is last
    assert err.attempts == 4


def test_compensation_failed_flattens_nested() -> None:
    a, b, c = ValueError("a"), ValueError("b"), ValueError("c")
    inner = CompensationFailed([a, b])
    outer = CompensationFailed([inner, c])
    assert outer.errors == [a, b, c]
    assert str(outer).startswith("Compensation failed (3 error(s)); original: a")


@pytest.mark.parametrize(
    ("err", "attempt"),
    [
        (RetryExhausted(5, ValueError()), 5),
        (CircuitOpenError("x"), 0),
        (WorkflowTimeout(1, 1), 0),
        (WorkflowCancelled(), 0),
        (ValueError("x"), 1),
        (WorkflowError("split"), 1),
    ],
)
def test_attempt_derivation(err: BaseException, attempt: int) -> None:
    assert attempt_of(err) == attempt
    assert wrap_with_state(S.A, [S.A], err).attempt == attempt  # type: ignore[attr-defined]


def test_state_failure_sees_through_one_wrap() -> None:
    cause = ValueError("boom")
    failure = StateFailure(S.B, 1, [S.A, S.B], cause)
    assert failure.category == "task_execution"
    assert failure.outer_category == "with_state_context"
    assert failure.error is cause and failure.__cause__ is cause
    assert str(failure) == "state=B attempt=1 path=[A, B] caused by: boom"
    cancelled = StateFailure(S.A, 0, [], WorkflowCancelled())
    assert cancelled.category == "cancelled"


def test_wrapping_is_idempotent_and_keeps_compensation_failed_shape() -> None:
    inner = StateFailure(S.A, 1, [S.A], ValueError("x"))
    assert wrap_with_state(S.B, [S.A, S.B], inner) is inner
    cf = CompensationFailed([ValueError("orig"), ValueError("comp")])
    out = wrap_with_state(S.B, [S.B], cf)
    assert out is cf
    assert isinstance(cf.errors[0], StateFailure)
    assert cf.errors[0].state is S.B
    assert str(cf.errors[1]) == "comp"


def test_errors_pickle_round_trip() -> None:
    for err in (
        RetryExhausted(2, ValueError("v")),
        WorkflowTimeout(1.5, 1.0),
        StateFailure(S.A, 1, [S.A], TaskExecutionError("t")),
        KeyNotFound("k"),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err)
        assert str(back) == str(err)
