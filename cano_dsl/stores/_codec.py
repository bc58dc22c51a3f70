"""What every checkpoint store says the same way: the conflict error and row decoding.

Kept in one place so the in-memory, SQLite and PostgreSQL stores (and a user's own
store, if it wants) report a duplicate ``(workflow_id, sequence)`` and an undecodable
row with identical wording.
"""

from __future__ import annotations

from .._errors import CheckpointConflict, CheckpointStoreError
from ._row import CheckpointRow, RowKind

__all__ = ["conflict_error", "decode_row", "row_params"]


def conflict_error(workflow_id: str, sequence: int) -> CheckpointConflict:
    """The error for a second row at an existing ``(workflow_id, sequence)``: a
    `CheckpointConflict` (so also a `CheckpointStoreError`)."""
    return CheckpointConflict(workflow_id, sequence)


def row_params(workflow_id: str, row: CheckpointRow) -> tuple[object, ...]:
    """The INSERT parameters of ``row``, in the tables' column order."""
    return (
        workflow_id,
        row.sequence,
        row.state,
        row.task_id,
        row.output_blob,
        int(row.kind),
        row.workflow_version,
        row.data_patch,
    )


def decode_row(
    workflow_id: str,
    sequence: object,
    state: object,
    task_id: object,
    output_blob: object,
    kind: object,
    workflow_version: object,
    data_patch: object = None,
) -> CheckpointRow:
    """Build a `CheckpointRow` from stored column values, or raise `CheckpointStoreError`
    naming the workflow id and ``sequence=N`` of the row that cannot be decoded.
    ``state`` and ``task_id`` may be given as UTF-8 bytes."""
    try:
        state = _text(state)
        task_id = _text(task_id)
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise TypeError(f"kind must be an integer, got {kind!r}")
        if output_blob is not None and not isinstance(output_blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"output_blob must be bytes or NULL, got {type(output_blob).__name__}")
        if data_patch is not None and not isinstance(data_patch, (bytes, bytearray, memoryview)):
            raise TypeError(f"data_patch must be bytes or NULL, got {type(data_patch).__name__}")
        return CheckpointRow(
            sequence=sequence,  # type: ignore[arg-type]  # validated by CheckpointRow
            state=state,  # type: ignore[arg-type]
            task_id=task_id,  # type: ignore[arg-type]
            output_blob=output_blob,
            kind=RowKind(kind),
            workflow_version=workflow_version,  # type: ignore[arg-type]
            data_patch=data_patch,
        )
    except (ValueError, TypeError) as exc:
        err = CheckpointStoreError(
            f"decode checkpoint row at workflow_id={workflow_id} sequence={sequence}: {exc}"
        )
        raise err from exc


def _text(value: object) -> object:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return value
