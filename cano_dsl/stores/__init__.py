"""Checkpoint stores: rows, the protocols (with run claims), and the SQLite and
PostgreSQL stores.

``SqliteCheckpointStore`` and ``PostgresCheckpointStore`` are imported lazily (the
latter needs the ``postgres`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._claim import ClaimingCheckpointStore as ClaimingCheckpointStore
from ._claim import RunClaim as RunClaim
from ._row import CheckpointRow as CheckpointRow
from ._row import CheckpointStore as CheckpointStore
from ._row import RowKind as RowKind

if TYPE_CHECKING:
    from .postgres import PostgresCheckpointStore as PostgresCheckpointStore
    from .sqlite import SqliteCheckpointStore as SqliteCheckpointStore

__all__ = [
    "CheckpointRow",
    "CheckpointStore",
    "ClaimingCheckpointStore",
    "PostgresCheckpointStore",
    "RowKind",
    "RunClaim",
    "SqliteCheckpointStore",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteCheckpointStore":
        from .sqlite import SqliteCheckpointStore

        return SqliteCheckpointStore
    if name == "PostgresCheckpointStore":
        from .postgres import PostgresCheckpointStore

        return PostgresCheckpointStore
    raise AttributeError(f"module 'cano_dsl.stores' has no attribute {name!r}")
