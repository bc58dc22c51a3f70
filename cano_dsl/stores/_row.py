"""Checkpoint rows and the `CheckpointStore` protocol (REFERENCE §9.1-9.2)."""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

import attrs

from .._errors import ConfigurationError

__all__ = ["CheckpointRow", "CheckpointStore", "RowKind"]

_SEQ_LIMIT = 2**63
_VERSION_LIMIT = 2**31


class RowKind(enum.IntEnum):
    """What a checkpoint row records."""

    STATE_ENTRY = 0
    COMPENSATION_COMPLETION = 1
    STEP_CURSOR = 2


def _check_sequence(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _SEQ_LIMIT:
        raise ConfigurationError(f"checkpoint sequence must be an int in [0, 2**63), got {value!r}")


def _check_version(_inst: object, _attr: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _VERSION_LIMIT:
        raise ConfigurationError(f"workflow_version must be an int in [0, 2**31), got {value!r}")


def _blob(value: bytes | bytearray | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


@attrs.frozen
class CheckpointRow:
    """One row of a run's checkpoint log. ``state`` is the state's label, ``task_id`` the
    task's name ("" for splits and handler-less exit states); ``output_blob`` is UTF-8
    JSON (a compensation output or a step/stream cursor). ``data_patch`` is the run data
    change this row commits (UTF-8 JSON, see docs/run-data.md), ``None`` when the run
    data did not change or the workflow declares none; a store must keep it as given."""

    sequence: int = attrs.field(validator=_check_sequence)
    state: str = attrs.field(validator=attrs.validators.instance_of(str))
    task_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    output_blob: bytes | None = attrs.field(default=None, converter=_blob)
    kind: RowKind = attrs.field(default=RowKind.STATE_ENTRY, converter=RowKind)
    workflow_version: int = attrs.field(default=0, validator=_check_version)
    data_patch: bytes | None = attrs.field(default=None, converter=_blob)

    def with_output(self, blob: bytes) -> CheckpointRow:
        """A `COMPENSATION_COMPLETION` row carrying ``blob``."""
        return attrs.evolve(self, output_blob=blob, kind=RowKind.COMPENSATION_COMPLETION)

    def with_cursor(self, blob: bytes) -> CheckpointRow:
        """A `STEP_CURSOR` row carrying ``blob``."""
        return attrs.evolve(self, output_blob=blob, kind=RowKind.STEP_CURSOR)

    def with_workflow_version(self, version: int) -> CheckpointRow:
        """A copy stamped with workflow ``version``."""
        return attrs.evolve(self, workflow_version=version)


@runtime_checkable
class CheckpointStore(Protocol):
    """Where a run's checkpoint log lives. Implementations must reject a second row at
    an existing ``(workflow_id, sequence)`` with `CheckpointStoreError`, return rows in
    ascending sequence order (``[]`` for an unknown id), and clear one id only."""

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        """Persist ``row`` under ``workflow_id``; a row already at its sequence raises
        `CheckpointStoreError` and the first row stays."""

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        """``workflow_id``'s rows in ascending sequence order; ``[]`` for an unknown id."""

    async def clear(self, workflow_id: str) -> None:
        """Delete ``workflow_id``'s rows, and only those (an unknown id is fine)."""
