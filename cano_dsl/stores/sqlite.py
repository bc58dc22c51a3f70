"""`SqliteCheckpointStore`: the embedded default checkpoint store (stdlib ``sqlite3``).

One file holds the logs of any number of workflow ids. The store keeps one connection,
used only from worker threads (never the event loop), and commits concurrent appends
together (see `._batch`). Several processes may share a file: writes take SQLite's
write lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it.

Layout (schema version 1)::

    cano_dsl_meta(key TEXT PRIMARY KEY, value TEXT)      -- format, schema_version
    cano_checkpoints(workflow_id TEXT, sequence INTEGER, state TEXT, task_id TEXT,
                     output_blob BLOB, kind SMALLINT, workflow_version INTEGER,
                     PRIMARY KEY (workflow_id, sequence)) WITHOUT ROWID

The file is opened and checked on first use (or by `open()` / ``async with``), not by
the constructor: a file that is not a SQLite database, a SQLite database of some other
application (tables but no ``cano_dsl_meta`` marker) or one written by a newer schema
raises `CheckpointStoreError` there, and again on every later call.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Sequence
from typing import Literal

from .._errors import CheckpointStoreError, ConfigurationError
from ._batch import BatchedStore, Op, OpKind
from ._claim import FileClaims, RunClaim
from ._codec import conflict_error, decode_row, row_params
from ._row import CheckpointRow

__all__ = ["Durability", "SqliteCheckpointStore"]

Durability = Literal["normal", "full"]

SCHEMA_VERSION = 1
_FORMAT = "cano_dsl.checkpoints"
_META = "cano_dsl_meta"
_TABLE = "cano_checkpoints"

_CREATE_META = f"CREATE TABLE {_META} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
_CREATE_TABLE = f"""CREATE TABLE {_TABLE} (
    workflow_id      TEXT     NOT NULL,
    sequence         INTEGER  NOT NULL,
    state            TEXT     NOT NULL,
    task_id          TEXT     NOT NULL,
    output_blob      BLOB,
    kind             SMALLINT NOT NULL DEFAULT 0,
    workflow_version INTEGER  NOT NULL DEFAULT 0,
    PRIMARY KEY (workflow_id, sequence)
) WITHOUT ROWID"""
_INSERT = (
    f"INSERT INTO {_TABLE} "
    "(workflow_id, sequence, state, task_id, output_blob, kind, workflow_version) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_id, sequence) DO NOTHING"
)
# CAST AS BLOB: text that is not valid UTF-8 reaches decode_row (which names the row)
# instead of failing inside sqlite3's fetch.
_SELECT = (
    "SELECT sequence, CAST(state AS BLOB), CAST(task_id AS BLOB), output_blob, kind, "
    f"workflow_version FROM {_TABLE} WHERE workflow_id = ? ORDER BY sequence"
)
_DELETE = f"DELETE FROM {_TABLE} WHERE workflow_id = ?"


class SqliteCheckpointStore(BatchedStore):
    """A `CheckpointStore` in a SQLite file.

    ``durability="normal"`` (default) runs the file in WAL mode with
    ``synchronous=NORMAL``: a committed row survives a crash of the process, and an OS
    crash or power loss may lose the last few commits but never corrupts the file.
    ``durability="full"`` adds an fsync to every commit (``synchronous=FULL``), so a
    returned ``append`` survives power loss too; concurrent appends share one fsync.
    ``busy_timeout`` (seconds) bounds the wait for another process's write lock.

    Usable directly (the file is opened on first use) or as ``async with``; call
    `aclose()` when done. After `aclose()` every call raises `CheckpointStoreError`.
    Use one store object per event loop at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "normal",
        busy_timeout: float = 30.0,
    ) -> None:
        if durability not in ("normal", "full"):
            raise ConfigurationError(
                f"SqliteCheckpointStore durability must be 'normal' or 'full', got {durability!r}"
            )
        if isinstance(busy_timeout, bool) or not busy_timeout >= 0:
            raise ConfigurationError(
                f"SqliteCheckpointStore busy_timeout must be >= 0 seconds, got {busy_timeout!r}"
            )
        self._path = os.fspath(path)
        self._durability: Durability = durability
        self._busy_timeout = float(busy_timeout)
        self._conn: sqlite3.Connection | None = None
        super().__init__()

    @property
    def path(self) -> str:
        return self._path

    @property
    def durability(self) -> Durability:
        return self._durability

    def __repr__(self) -> str:
        return f"SqliteCheckpointStore({self._path!r}, durability={self._durability!r})"

    # -- worker-thread side ----------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> CheckpointStoreError:
        err = CheckpointStoreError(f"sqlite {self._path}: {what}: {exc}")
        err.__cause__ = exc
        return err

    def _execute(self, batch: Sequence[Op]) -> None:
        work = [op for op in batch if op.kind is not OpKind.CLOSE]
        if work:
            try:
                conn = self._ensure_open()
            except CheckpointStoreError as exc:
                for op in work:
                    op.fail(exc)
            else:
                self._run(conn, work)
        if len(work) < len(batch):
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
            for op in batch:
                if op.kind is OpKind.CLOSE:
                    op.succeed()

    def _run(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
        if all(op.kind is OpKind.OPEN for op in ops):
            for op in ops:
                op.succeed()
            return
        if len(ops) == 1:  # one statement: autocommit, no BEGIN/COMMIT round trips
            op = ops[0]
            try:
                self._run_one(conn, op)
            except sqlite3.Error as exc:
                op.fail(self._error(f"{op.kind.name.lower()} {op.args[0]!r}", exc))
            return
        writes = any(op.is_write for op in ops)
        try:
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
        except sqlite3.Error as exc:
            err = self._error("begin transaction", exc)
            for op in ops:
                op.fail(err)
            return
        for i, op in enumerate(ops):
            try:
                self._run_one(conn, op)
            except sqlite3.Error as exc:
                op.fail(self._error(f"{op.kind.name.lower()} {op.args[0]!r}", exc))
                if not conn.in_transaction:  # SQLite rolled the whole batch back
                    err = self._error("transaction rolled back", exc)
                    for other in (*ops[:i], *ops[i + 1 :]):
                        if other.is_write or not other.resolved:
                            other.fail(err)
                    return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            err = self._error("commit", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in ops:
                if op.is_write:
                    op.fail(err)

    def _run_one(self, conn: sqlite3.Connection, op: Op) -> None:
        if op.kind is OpKind.APPEND:
            workflow_id: str = op.args[0]
            row: CheckpointRow = op.args[1]
            cur = conn.execute(
                _INSERT,
                row_params(workflow_id, row),
            )
            if cur.rowcount == 0:
                op.fail(conflict_error(workflow_id, row.sequence))
            else:
                op.succeed()
        elif op.kind is OpKind.LOAD:
            workflow_id = op.args[0]
            try:
                rows = [
                    decode_row(workflow_id, *values)
                    for values in conn.execute(_SELECT, (workflow_id,))
                ]
            except CheckpointStoreError as exc:
                op.fail(exc)
            else:
                op.succeed(rows)
        elif op.kind is OpKind.CLEAR:
            conn.execute(_DELETE, (op.args[0],))
            op.succeed()
        else:  # OPEN: the connection is open by now
            op.succeed()

    def _ensure_open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from exc
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            tables = _user_tables(conn)
        except sqlite3.DatabaseError as exc:
            raise self._error("not a SQLite database (corrupt or foreign file)", exc) from exc
        try:
            if tables:
                self._check_schema(conn, tables)
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() not in ("wal", "memory"):
                conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self._durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            if not tables:
                self._create_schema(conn)
        except sqlite3.Error as exc:
            raise self._error("cannot prepare the checkpoint database", exc) from exc

    def _check_schema(self, conn: sqlite3.Connection, tables: set[str]) -> None:
        if _META not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise CheckpointStoreError(
                f"sqlite {self._path}: not a cano_dsl checkpoint database (it has tables "
                f"{shown} but no {_META} marker); give SqliteCheckpointStore a file of its own"
            )
        try:
            meta = {str(k): str(v) for k, v in conn.execute(f"SELECT key, value FROM {_META}")}
        except sqlite3.Error as exc:
            raise self._error(f"unreadable {_META} marker table (foreign file?)", exc) from exc
        if meta.get("format") != _FORMAT:
            raise CheckpointStoreError(
                f"sqlite {self._path}: {_META} does not mark a cano_dsl checkpoint database "
                f"(format={meta.get('format')!r})"
            )
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            version = -1
        if version > SCHEMA_VERSION:
            raise CheckpointStoreError(
                f"sqlite {self._path}: written by a newer cano_dsl (schema version {version}); "
                f"this version reads schema version {SCHEMA_VERSION}: upgrade cano_dsl"
            )
        if version < 1 or _TABLE not in tables:
            raise CheckpointStoreError(
                f"sqlite {self._path}: damaged cano_dsl checkpoint database "
                f"(schema_version={meta.get('schema_version')!r}, tables: {sorted(tables)})"
            )

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = _user_tables(conn)  # another process may have won the race
            if tables:
                self._check_schema(conn, tables)
            else:
                conn.execute(_CREATE_META)
                conn.executemany(
                    f"INSERT INTO {_META} (key, value) VALUES (?, ?)",
                    [("format", _FORMAT), ("schema_version", str(SCHEMA_VERSION))],
                )
                conn.execute(_CREATE_TABLE)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # -- run claims (docs/recovery.md, "One owner per run") ---------------------------

    @functools.cached_property
    def _claims(self) -> FileClaims:
        return FileClaims(self._path)

    async def claim(self, workflow_id: str) -> RunClaim:
        """Claim ``workflow_id`` for this task until the claim's ``release()``: an
        exclusive lock on one byte of ``<path>-claims`` (created beside the file) that
        the kernel drops when this process dies. Raises `RunClaimedError` when another
        process, or another task of this one, holds the run."""
        if self._closed:
            raise CheckpointStoreError(f"{self!r} is closed")
        return await self._claims.claim(workflow_id)

    async def aclose(self) -> None:
        """Close the connection once the calls already queued are done (and stop
        keeping the claims file open). Idempotent."""
        await super().aclose()
        if "_claims" in self.__dict__:
            self._claims.close()


def _user_tables(conn: sqlite3.Connection) -> set[str]:
    return {
        str(name)
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\'"
        )
    }
