"""Every shipped store passes the conformance suite; the suite catches a broken store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio.lowlevel
import pytest

from cano_dsl._errors import CheckpointStoreError
from cano_dsl.stores._row import CheckpointRow
from cano_dsl.stores.postgres import PostgresCheckpointStore
from cano_dsl.stores.sqlite import SqliteCheckpointStore
from cano_dsl.testing._checkpoint import InMemoryCheckpointStore
from cano_dsl.testing.conformance import (
    CHECKS,
    CLAIM_CHECKS,
    CheckpointStoreConformance,
    run_check,
    run_conformance,
)

pytestmark = pytest.mark.anyio


class TestInMemoryConformance(CheckpointStoreConformance):
    @pytest.fixture
    def make_store(self) -> Callable[[], InMemoryCheckpointStore]:
        return InMemoryCheckpointStore


class TestSqliteConformance(CheckpointStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], SqliteCheckpointStore]:
        return lambda: SqliteCheckpointStore(tmp_path / "checkpoints.db")


class TestSqliteFullDurabilityConformance(CheckpointStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], SqliteCheckpointStore]:
        return lambda: SqliteCheckpointStore(tmp_path / "checkpoints.db", durability="full")


@pytest.mark.postgres
class TestPostgresConformance(CheckpointStoreConformance):
    @pytest.fixture
    def make_store(self, postgres_dsn: str) -> Callable[[], PostgresCheckpointStore]:
        return lambda: PostgresCheckpointStore(postgres_dsn)


async def test_run_conformance_runs_every_check_and_accepts_async_factories() -> None:
    async def make() -> InMemoryCheckpointStore:
        return InMemoryCheckpointStore()

    assert await run_conformance(make) == [*CHECKS, *CLAIM_CHECKS]


async def test_run_conformance_skips_named_checks() -> None:
    ran = await run_conformance(InMemoryCheckpointStore, skip=["blobs_round_trip"])
    assert "blobs_round_trip" not in ran and len(ran) == len(CHECKS) + len(CLAIM_CHECKS) - 1


async def test_run_conformance_rejects_unknown_skip_names() -> None:
    with pytest.raises(ValueError, match="no_such_check"):
        await run_conformance(InMemoryCheckpointStore, skip=["no_such_check"])


class _OverwritingStore(InMemoryCheckpointStore):
    """Wrong on purpose: a duplicate sequence silently replaces the first row."""

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        try:
            await super().append(workflow_id, row)
        except CheckpointStoreError:
            await super().clear(workflow_id)


async def test_run_conformance_names_the_check_a_broken_store_fails() -> None:
    with pytest.raises(AssertionError, match="duplicate_rejected_first_row_kept"):
        await run_conformance(_OverwritingStore)


async def test_run_conformance_rejects_a_factory_that_returns_no_store() -> None:
    with pytest.raises(TypeError, match="not a CheckpointStore"):
        await run_conformance(lambda: object())  # type: ignore[arg-type, return-value]


class _LeaksEncodingErrors(InMemoryCheckpointStore):
    """Wrong on purpose: a label it cannot encode escapes as a bare UnicodeEncodeError."""

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        row.state.encode("utf-8")
        row.task_id.encode("utf-8")
        await super().append(workflow_id, row)


class _BadRowSinksItsBatch(InMemoryCheckpointStore):
    """Wrong on purpose: like a group commit whose batch is lost when one row is bad, a
    refused row takes every row appended in the last moment down with it."""

    def __init__(self) -> None:
        super().__init__()
        self._recent: list[tuple[str, int]] = []

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        if "\x00" in row.task_id or "\udcff" in row.state or "\x00" in workflow_id:
            for _ in range(3):  # the batch it shares: the appends already under way
                await anyio.lowlevel.checkpoint()
            with self._lock:
                for wid, seq in self._recent:
                    self._runs.get(wid, {}).pop(seq, None)
            raise CheckpointStoreError("batch rolled back")
        await super().append(workflow_id, row)
        self._recent = [*self._recent[-8:], (workflow_id, row.sequence)]


@pytest.mark.parametrize(
    ("store_cls", "check", "says"),
    [
        pytest.param(_LeaksEncodingErrors, "unstorable_row_fails_alone", "UnicodeEncodeError"),
        pytest.param(_BadRowSinksItsBatch, "unstorable_row_fails_alone", "must not lose"),
        pytest.param(_BadRowSinksItsBatch, "unusual_ids_fail_alone", "must not lose"),
    ],
)
async def test_the_isolation_checks_catch_a_store_whose_bad_op_hurts_others(
    store_cls: type[InMemoryCheckpointStore], check: str, says: str
) -> None:
    with pytest.raises(AssertionError, match=says) as info:
        await run_check(check, store_cls)
    assert check in str(info.value)


async def test_the_isolation_checks_accept_a_store_that_holds_any_text() -> None:
    class AcceptsAnything:
        def __init__(self) -> None:
            self.runs: dict[str, dict[int, CheckpointRow]] = {}

        async def append(self, workflow_id: str, row: CheckpointRow) -> None:
            rows = self.runs.setdefault(workflow_id, {})
            if row.sequence in rows:
                raise CheckpointStoreError(f"checkpoint conflict: {workflow_id} {row.sequence}")
            rows[row.sequence] = row

        async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
            rows = self.runs.get(workflow_id, {})
            return [rows[s] for s in sorted(rows)]

        async def clear(self, workflow_id: str) -> None:
            self.runs.pop(workflow_id, None)

    for check in ("unstorable_row_fails_alone", "unusual_ids_fail_alone"):
        await run_check(check, AcceptsAnything)


class _UnclaimingStore(InMemoryCheckpointStore):
    """A store without the optional claim method."""

    claim = None  # type: ignore[assignment]


async def test_run_conformance_runs_claim_checks_only_for_stores_that_claim() -> None:
    assert await run_conformance(_UnclaimingStore) == list(CHECKS)
    with pytest.raises(AssertionError, match="has no claim method"):
        await run_check("second_claim_refused", _UnclaimingStore)


class _Claim:
    async def release(self) -> None:
        pass


class _SharingStore(InMemoryCheckpointStore):
    """Wrong on purpose: every claim succeeds, so two owners run one log."""

    async def claim(self, workflow_id: str) -> _Claim:  # type: ignore[override]
        return _Claim()


class _StickyStore(InMemoryCheckpointStore):
    """Wrong on purpose: release() does not free the run."""

    async def claim(self, workflow_id: str) -> _Claim:  # type: ignore[override]
        await super().claim(workflow_id)
        return _Claim()


async def test_the_claim_checks_catch_a_store_that_never_refuses() -> None:
    with pytest.raises(AssertionError, match="second_claim_refused"):
        await run_conformance(_SharingStore)


async def test_the_claim_checks_catch_a_claim_that_is_never_freed() -> None:
    with pytest.raises(AssertionError, match="released_claim_can_be_taken_again"):
        await run_conformance(_StickyStore)
