"""`InMemoryCheckpointStore`: the full checkpoint-store contract in a dict, for tests."""

from __future__ import annotations

import threading

import anyio.lowlevel

from .._ids import check_workflow_id
from ..stores._claim import LocalClaims, RunClaim
from ..stores._codec import conflict_error
from ..stores._row import CheckpointRow

__all__ = ["InMemoryCheckpointStore"]


class InMemoryCheckpointStore:
    """A process-local `CheckpointStore`: share one between an ``orchestrate`` that
    "crashes" and a later ``resume_from`` to test recovery without a file.

    Honours the whole contract: a second row at an existing ``(workflow_id, sequence)``
    raises `CheckpointStoreError` ("checkpoint conflict: ...") and leaves the first row;
    ``load_run`` is sorted by sequence; ``clear`` is per id. A workflow id that is not
    a valid id (see `Workflow.with_workflow_id`) is a `ConfigurationError`, as in the
    SQLite and PostgreSQL stores. Thread-safe. `rows()` and
    `workflow_ids()` inspect the contents synchronously. `claim` holds a run for one
    task of this process at a time (claims are per store object).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[int, CheckpointRow]] = {}
        self._claims = LocalClaims()

    def __repr__(self) -> str:
        with self._lock:
            counts = {wid: len(rows) for wid, rows in self._runs.items()}
        return f"InMemoryCheckpointStore({counts!r})"

    async def append(self, workflow_id: str, row: CheckpointRow) -> None:
        """Store ``row``; a second row at the same sequence raises `CheckpointStoreError`."""
        await anyio.lowlevel.checkpoint()
        workflow_id = check_workflow_id(workflow_id, "InMemoryCheckpointStore.append")
        with self._lock:
            rows = self._runs.setdefault(workflow_id, {})
            if row.sequence in rows:
                raise conflict_error(workflow_id, row.sequence)
            rows[row.sequence] = row

    async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
        """``workflow_id``'s rows in ascending sequence order (``[]`` when none)."""
        await anyio.lowlevel.checkpoint()
        workflow_id = check_workflow_id(workflow_id, "InMemoryCheckpointStore.load_run")
        return self.rows(workflow_id)

    async def clear(self, workflow_id: str) -> None:
        """Drop ``workflow_id``'s rows (an unknown id is fine)."""
        await anyio.lowlevel.checkpoint()
        workflow_id = check_workflow_id(workflow_id, "InMemoryCheckpointStore.clear")
        with self._lock:
            self._runs.pop(workflow_id, None)

    async def claim(self, workflow_id: str) -> RunClaim:
        """Claim ``workflow_id`` until the claim's ``release()``; `RunClaimedError` if
        another task holds it."""
        await anyio.lowlevel.checkpoint()
        return self._claims.claim(workflow_id, "by another task on this store")

    def rows(self, workflow_id: str) -> list[CheckpointRow]:
        """``workflow_id``'s rows in ascending sequence order (a new list)."""
        with self._lock:
            rows = self._runs.get(workflow_id, {})
            return [rows[seq] for seq in sorted(rows)]

    def workflow_ids(self) -> list[str]:
        """The ids that currently have at least one row, sorted."""
        with self._lock:
            return sorted(wid for wid, rows in self._runs.items() if rows)
