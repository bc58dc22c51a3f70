"""InMemoryCheckpointStore's inspection helpers and public names."""

from __future__ import annotations

import pytest

import cano_dsl
from cano_dsl import CheckpointRow, CheckpointStore, CheckpointStoreError
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio


def test_public_names() -> None:
    assert cano_dsl.RowKind.STEP_CURSOR == 2
    assert isinstance(InMemoryCheckpointStore(), CheckpointStore)


async def test_rows_and_workflow_ids_inspect_synchronously() -> None:
    store = InMemoryCheckpointStore()
    await store.append("b", CheckpointRow(1, "B1", "t"))
    await store.append("b", CheckpointRow(0, "B0", "t"))
    await store.append("a", CheckpointRow(0, "A0", "t"))
    assert [r.state for r in store.rows("b")] == ["B0", "B1"]
    assert store.rows("missing") == []
    assert store.workflow_ids() == ["a", "b"]
    await store.clear("a")
    assert store.workflow_ids() == ["b"]
    assert "'b': 2" in repr(store)


async def test_conflict_message_names_workflow_and_sequence() -> None:
    store = InMemoryCheckpointStore()
    await store.append("run-1", CheckpointRow(3, "A", "t"))
    with pytest.raises(
        CheckpointStoreError,
        match="checkpoint conflict: workflow run-1 already has a row at sequence 3",
    ):
        await store.append("run-1", CheckpointRow(3, "B", "t"))
    assert store.rows("run-1") == [CheckpointRow(3, "A", "t")]
