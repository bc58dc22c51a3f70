"""`SqliteCheckpointStore`: the embedded default checkpoint store (stdlib ``sqlite3``).

One file holds the logs of any number of workflow ids. The store keeps one connection,
used only from worker threads (never the event loop), and commits concurrent appends
together (see `._batch`). Several processes may share a file: writes take SQLite's
write lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it.

That wait is taken in slices (`_LOCK_SLICE`): sqlite3's own busy handler only waits
one slice, and between slices the worker thread looks whether ``busy_timeout`` is
spent (then the store error, as before) and whether every caller of the batch has
stopped waiting (a run's deadline or cancellation; then the batch is given up and
nothing is written). ``sqlite3.Connection.interrupt()`` does not end a busy wait (it
is only checked between VM instructions), so it is not used.

Layout (schema version 2; a version 1 file, without ``data_patch``, is migrated on open
by one ``ALTER TABLE`` inside ``BEGIN IMMEDIATE``)::

    cano_dsl_meta(key TEXT PRIMARY KEY, value TEXT)      -- format, schema_version
    cano_checkpoints(workflow_id TEXT, sequence INTEGER, state TEXT, task_id TEXT,
                     output_blob BLOB, kind SMALLINT, workflow_version INTEGER,
                     data_patch BLOB,
                     PRIMARY KEY (workflow_id, sequence)) WITHOUT ROWID

The file is opened and checked on first use (or by `open()` / ``async with``), not by
the constructor: a file that is not a SQLite database, a SQLite database of some other
application (tables but no ``cano_dsl_meta`` marker) or one written by a newer schema
raises `CheckpointStoreError` there, and again on every later call.

Once SQLite reports the file damaged (``SQLITE_CORRUPT`` / ``SQLITE_NOTADB``, at open or
in any call) the store *latches*: it closes its connection and refuses every later call
with the same `CheckpointStoreError`, which names the file and how to recover its rows,
so the file is never written again. ``integrity_check=True`` runs ``PRAGMA quick_check``
at open to find damage no call has touched yet.

Inside a batch each op is one statement, and SQLite backs a failed statement out alone,
so an exception from one op (a driver error, a value that cannot be bound, anything)
fails only that op; its neighbours commit. No transaction outlives a batch.

Inline appends (``durability="normal"`` only): when no batch is in flight or queued,
an ``append`` runs on the event loop's thread as one autocommit ``INSERT`` with a
*zero* lock wait (the connection's busy timeout is 0 between batches; each batch sets
it to `_LOCK_SLICE` while it runs). In WAL mode with ``synchronous=NORMAL`` that commit
is a write into the WAL (no fsync), ~15-30 µs: less than the thread hop it saves. If
another connection holds the write lock (``SQLITE_BUSY``) nothing was written and the
append goes to the worker thread, which waits for the lock in slices as above. Errors,
the corruption latch and the conflict check are those of the thread path. With
``durability="full"`` every commit is an fsync, which is kept off the loop: no inline
appends.

WAL checkpoints (page copies and fsyncs, milliseconds) never run on the loop either:
the store connection's automatic checkpoint is off. After about `_CHECKPOINT_PAGES`
pages have been appended, a background thread checkpoints (``PASSIVE``) on a
connection of its own, while appends go on; a checkpoint made while appends go on
rarely copies the whole WAL, and the WAL only starts over once it has been copied
whole, so after `_BACKGROUND_ROUNDS` such rounds without that, the next append goes
through the worker thread, which checkpoints after its commit, with no append in
between (that append waits for it).
"""

from __future__ import annotations

import functools
import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal, TypeVar

from .._errors import CheckpointStoreError, ConfigurationError
from ._batch import BatchedStore, Op, OpKind, all_abandoned, skip_abandoned
from ._claim import FileClaims, RunClaim
from ._codec import conflict_error, decode_row, row_params
from ._row import CheckpointRow

__all__ = ["Durability", "SqliteCheckpointStore"]

Durability = Literal["normal", "full"]

SCHEMA_VERSION = 2
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
    data_patch       BLOB,
    PRIMARY KEY (workflow_id, sequence)
) WITHOUT ROWID"""
_INSERT = (
    f"INSERT INTO {_TABLE} "
    "(workflow_id, sequence, state, task_id, output_blob, kind, workflow_version, data_patch) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_id, sequence) DO NOTHING"
)
# CAST AS BLOB: text that is not valid UTF-8 reaches decode_row (which names the row)
# instead of failing inside sqlite3's fetch.
_SELECT = (
    "SELECT sequence, CAST(state AS BLOB), CAST(task_id AS BLOB), output_blob, kind, "
    f"workflow_version, data_patch FROM {_TABLE} WHERE workflow_id = ? ORDER BY sequence"
)
_DELETE = f"DELETE FROM {_TABLE} WHERE workflow_id = ?"
_MIGRATE_TO_2 = f"ALTER TABLE {_TABLE} ADD COLUMN data_patch BLOB"

# seconds: the longest sqlite3's busy handler sleeps before the worker thread looks
# whether the batch's callers are all gone or ``busy_timeout`` is spent
_LOCK_SLICE = 0.05
# WAL pages (estimated from what was written) after which the WAL is checkpointed (in
# a background thread, or in the worker thread: see the module docstring); SQLite's own
# automatic checkpoint (at 1,000 pages) is off when appends may commit on the event
# loop, so that a checkpoint (page copies and fsyncs, milliseconds) never runs there
_CHECKPOINT_PAGES = 1000
_PAGE = 4096
# background checkpoints in a row, none of which copied the whole WAL, after which the
# next one runs in the worker thread with no append in between (so the WAL restarts)
_BACKGROUND_ROUNDS = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

_T = TypeVar("_T")


def _is_busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the sqlite3 error it wraps) is a lock wait that timed out."""
    if isinstance(exc, CheckpointStoreError):
        exc = exc.__cause__
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "database is locked" in text or "database table is locked" in text


class _GaveUp(Exception):
    """Every caller of the batch left while it waited for the write lock."""


class SqliteCheckpointStore(BatchedStore):
    """A `CheckpointStore` in a SQLite file.

    ``durability="normal"`` (default) runs the file in WAL mode with
    ``synchronous=NORMAL``: a committed row survives a crash of the process, and an OS
    crash or power loss may lose the last few commits but never corrupts the file.
    ``durability="full"`` adds an fsync to every commit (``synchronous=FULL``), so a
    returned ``append`` survives power loss too; concurrent appends share one fsync.
    With ``"normal"``, an ``append`` made while the store has nothing else in flight
    commits on the event loop's thread with a zero lock wait (a WAL page write, no
    fsync; see docs/checkpoint-stores.md, "Inline commits on the event loop").
    ``busy_timeout`` (seconds) bounds the wait for another process's write lock; a
    caller whose run is cancelled or out of time stops waiting at once (within
    `_LOCK_SLICE`), whatever ``busy_timeout`` says.
    ``integrity_check=True`` runs ``PRAGMA quick_check`` when the file is opened (time
    proportional to its size) and refuses a damaged file there; without it, damage is
    found only when a call touches it. Either way, after the first sign of corruption
    the store neither reads nor writes the file again (every call raises
    `CheckpointStoreError` saying how to recover it).

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
        integrity_check: bool = False,
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
        self._integrity_check = bool(integrity_check)
        self._conn: sqlite3.Connection | None = None
        self._corrupt: CheckpointStoreError | None = None  # set once: the file is damaged
        # inline appends on the loop: only without an fsync per commit; `_quick` is the
        # connection whose busy timeout is 0 right now (between batches), else None
        self._inlines = durability == "normal"
        self._quick: sqlite3.Connection | None = None
        self._wal_pages = 0  # estimated pages appended to the WAL since our last checkpoint
        self._writes = 0  # write attempts (counted before they start), for `_Checkpointer`
        self._background = _Checkpointer(self._path, lambda: self._writes)
        self._rounds = 0  # background checkpoints since the WAL was last copied whole
        super().__init__()

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def durability(self) -> Durability:
        """``"normal"`` or ``"full"`` (SQLite's ``synchronous`` setting in WAL mode)."""
        return self._durability

    def __repr__(self) -> str:
        return f"SqliteCheckpointStore({self._path!r}, durability={self._durability!r})"

    # -- worker-thread side ----------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> CheckpointStoreError:
        err = CheckpointStoreError(f"sqlite {self._path}: {what}: {exc}{_hint(exc, self._path)}")
        err.__cause__ = exc
        return err

    def _op_error(self, op: Op, exc: BaseException) -> CheckpointStoreError:
        """The error for ``op`` failing with ``exc``; the latch's error if it is corruption."""
        what = op.kind.name.lower() + (f" {op.args[0]!r}" if op.args else "")
        if op.kind is OpKind.APPEND:
            what += f" sequence={op.args[1].sequence}"
        return self._latch(what, exc) or self._error(what, exc)

    def _latch(self, what: str, exc: BaseException) -> CheckpointStoreError | None:
        """If ``exc`` says the file is corrupt, stop using it for good: close the
        connection and return the error every later call gets (else ``None``)."""
        if self._corrupt is None and _is_corruption(exc):
            path = shlex.quote(self._path)
            recovered = shlex.quote(self._path + ".recovered")
            err = CheckpointStoreError(
                f"sqlite {self._path}: {what}: {exc}: the file is damaged, so this store "
                "will not read or write it again. Stop every process using it, keep a copy, "
                f'then recover its rows into a new file: sqlite3 {path} ".recover" | sqlite3 '
                f"{recovered} (and check that with PRAGMA integrity_check before using it)"
            )
            err.__cause__ = exc
            self._corrupt = err
            if self._conn is not None:
                conn, self._conn = self._conn, None
                _close_quietly(conn)
            self._background.join()  # nothing writes the file from now on
        return self._corrupt if _is_corruption(exc) else None

    def _locked(self, ops: Sequence[Op], call: Callable[[], _T]) -> _T:
        """``call()``, retried while it fails for another process's lock, until
        ``busy_timeout`` is spent (its error is raised) or every caller of ``ops`` has
        left (`_GaveUp`). ``call`` must be atomic: a busy failure changed nothing."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return call()
            except (sqlite3.OperationalError, CheckpointStoreError) as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                if ops and all_abandoned(ops):
                    raise _GaveUp from exc

    def _give_up(self, ops: Sequence[Op]) -> None:
        err = CheckpointStoreError(
            f"sqlite {self._path}: gave up waiting for the write lock: every caller left"
        )
        for op in ops:
            op.fail(err)

    def _inline(self, op: Op) -> bool:
        """On the event loop, no batch in flight: run an append here, with no lock
        wait. ``False`` (nothing written) sends it to the worker thread: not an append,
        no connection yet, a checkpoint due, or another connection holds the lock."""
        conn = self._conn
        if op.kind is not OpKind.APPEND or conn is None or conn is not self._quick:
            return False
        if self._wal_pages >= _CHECKPOINT_PAGES and not self._checkpoint_in_background():
            return False  # a checkpoint with no append in between is due: in the thread
        self._writes += 1
        try:
            self._run_one(conn, op)
        except Exception as exc:
            if _is_busy(exc):
                return False  # a busy statement changed nothing: the thread waits for it
            op.fail(self._op_error(op, exc))
        finally:
            if self._conn is conn and conn.in_transaction:  # never leave the lock held
                self._end_transaction(conn)
        if op.error is None:
            self._wal_pages += _pages(op)
        return True

    def _execute(self, batch: Sequence[Op]) -> None:
        work = [op for op in batch if op.kind is not OpKind.CLOSE]
        if work:
            if self._corrupt is not None:  # seen corruption: never touch the file again
                for op in work:
                    op.fail(self._corrupt)
            else:
                try:
                    conn = self._ensure_open(work)
                    conn = self._slow(conn, work)
                except CheckpointStoreError as exc:
                    for op in work:
                        op.fail(exc)
                except _GaveUp:
                    self._give_up(work)
                else:
                    try:
                        self._writes += 1
                        self._run(conn, work)
                        if self._inlines:  # else SQLite's automatic checkpoint does it
                            self._wal_pages += sum(_pages(op) for op in work if op.error is None)
                            if (
                                self._wal_pages >= _CHECKPOINT_PAGES
                                and self._conn is conn
                                and not self._checkpoint_in_background()
                            ):
                                self._checkpoint(conn)
                    finally:
                        self._quicken()
        if len(work) < len(batch):
            self._quick = None
            self._background.join()
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()
            for op in batch:
                if op.kind is OpKind.CLOSE:
                    op.succeed()

    def _slow(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> sqlite3.Connection:
        """Worker thread, batch start: give ``conn`` its sliced lock wait back (it has a
        zero one between batches); if that fails, open a fresh connection."""
        if self._quick is not conn:
            return conn
        self._quick = None
        try:
            conn.execute(f"PRAGMA busy_timeout={self._slice_ms()}")
        except sqlite3.Error:
            if self._conn is conn:
                self._conn = None
            _close_quietly(conn)
            return self._ensure_open(ops)
        return conn

    def _quicken(self) -> None:
        """Worker thread, batch end: a zero lock wait on the connection, so that the
        next append may run inline (unless it cannot be set: then none will)."""
        conn = self._conn
        if not self._inlines or conn is None or self._corrupt is not None:
            return
        try:
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error:
            return
        self._quick = conn

    def _slice_ms(self) -> int:
        return round(min(self._busy_timeout, _LOCK_SLICE) * 1000)

    def _checkpoint_in_background(self) -> bool:
        """Loop or worker thread, runner held: start a background checkpoint (or let
        the running one go on) and return ``True``; ``False`` when the WAL has not been
        copied whole for `_BACKGROUND_ROUNDS` rounds (the caller checkpoints in the
        worker thread instead)."""
        background = self._background
        if background.running():
            return True
        if background.copied_all:
            self._rounds = 0  # the WAL starts over at the next commit
        if self._rounds >= _BACKGROUND_ROUNDS or self._corrupt is not None:
            return False
        self._rounds += 1
        self._wal_pages = 0
        background.start()
        return True

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """Worker thread, no append in between: copy the WAL back into the file
        (``PASSIVE``: it waits for nobody; what it cannot copy waits for the next one)."""
        self._wal_pages = 0
        try:
            busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._latch("checkpoint the WAL", exc)  # anything else: try again next time
            return
        if busy == 0 and log == copied:
            self._rounds = 0

    def _run(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
        """Run ``ops`` in one transaction. Each op is one statement, and SQLite backs out
        a failed statement alone (or says it rolled back the whole transaction), so any
        exception from one op fails that op only: its neighbours still commit. Whatever
        happens, no transaction outlives this call."""
        if all(op.kind is OpKind.OPEN for op in ops):
            for op in ops:
                op.succeed()
            return
        try:
            if len(ops) == 1:  # one statement: autocommit, no BEGIN/COMMIT round trips
                self._run_alone(conn, ops[0])
            else:
                self._run_together(conn, ops)
        except BaseException as exc:
            # Only a bug of ours or a BaseException (KeyboardInterrupt, SystemExit, ...)
            # gets here: roll back, fail what did not commit, and let BaseExceptions go on.
            err = self._error("batch abandoned and rolled back", exc)
            self._end_transaction(conn)
            for op in ops:
                if op.is_write or not op.resolved:
                    op.fail(err)
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._conn is conn and conn.in_transaction:  # never leave the lock held
                self._end_transaction(conn)

    def _run_alone(self, conn: sqlite3.Connection, op: Op) -> None:
        try:
            self._run_one(conn, op)
        except Exception as exc:
            if not _is_busy(exc):
                op.fail(self._op_error(op, exc))
                return
            # another process holds the lock: wait for it in a transaction, where a
            # caller that left meanwhile is skipped once the lock is ours
            self._run_together(conn, [op])

    def _run_together(self, conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
        begin = "BEGIN IMMEDIATE" if any(op.is_write for op in ops) else "BEGIN"
        try:
            self._locked(ops, lambda: conn.execute(begin))
        except sqlite3.Error as exc:
            err = self._latch("begin transaction", exc) or self._error("begin transaction", exc)
            for op in ops:
                op.fail(err)
            return
        except _GaveUp:
            self._give_up(ops)
            return
        ops = skip_abandoned(ops)  # their callers left while we waited for the lock
        for i, op in enumerate(ops):
            try:
                self._run_one(conn, op)
            except Exception as exc:
                err = self._op_error(op, exc)
                op.fail(err)
                if self._corrupt is not None:  # nothing more goes into this file
                    for other in ops:
                        if other.is_write or not other.resolved:
                            other.fail(self._corrupt)
                    return
                if not conn.in_transaction:  # SQLite rolled the whole batch back
                    err = self._error("transaction rolled back", exc)
                    for other in (*ops[:i], *ops[i + 1 :]):
                        if other.is_write or not other.resolved:
                            other.fail(err)
                    return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            err = self._latch("commit", exc) or self._error("commit", exc)
            if self._conn is conn:
                self._end_transaction(conn)
            for op in ops:
                if op.is_write:
                    op.fail(err)

    def _end_transaction(self, conn: sqlite3.Connection) -> None:
        """Roll back ``conn``'s open transaction; if even that fails, close the connection
        (which rolls back too) so the write lock is never held past the batch."""
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except BaseException as exc:
            if self._conn is conn:
                self._conn = None
            _close_quietly(conn)
            if not isinstance(exc, Exception):
                raise

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

    def _ensure_open(self, ops: Sequence[Op] = ()) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            conn = sqlite3.connect(
                self._path,
                # sqlite3's busy handler waits one slice; `_locked` waits the rest
                timeout=min(self._busy_timeout, _LOCK_SLICE),
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from exc
        try:
            self._locked(ops, lambda: self._prepare(conn))
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            tables = _user_tables(conn)
        except sqlite3.DatabaseError as exc:
            what = "not a SQLite database (corrupt or foreign file)"
            raise self._latch(what, exc) or self._error("cannot read the file", exc) from exc
        try:
            if tables:
                if self._check_schema(conn, tables) < SCHEMA_VERSION:
                    self._migrate(conn)
                if self._integrity_check:
                    self._quick_check(conn)
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() not in ("wal", "memory"):
                conn.execute("PRAGMA journal_mode=WAL")
            sync = "FULL" if self._durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            if self._inlines:  # checkpoints are ours, in the worker thread (`_checkpoint`)
                conn.execute("PRAGMA wal_autocheckpoint=0")
            if not tables:
                self._create_schema(conn)
        except sqlite3.Error as exc:
            what = "cannot prepare the checkpoint database"
            raise self._latch(what, exc) or self._error(what, exc) from exc

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        what = "integrity check at open (PRAGMA quick_check)"
        try:
            problems = [str(p) for (p,) in conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.Error as exc:
            raise self._latch(what, exc) or self._error(what, exc) from exc
        if problems != ["ok"]:
            found = sqlite3.DatabaseError(
                "database disk image is malformed: " + "; ".join(problems)
            )
            raise self._latch(what, found) or self._error(what, found) from found

    def _check_schema(self, conn: sqlite3.Connection, tables: set[str]) -> int:
        """Refuse a foreign, damaged or newer file; return its schema version."""
        if _META not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise CheckpointStoreError(
                f"sqlite {self._path}: not a cano_dsl checkpoint database (it has tables "
                f"{shown} but no {_META} marker); give SqliteCheckpointStore a file of its own"
            )
        try:
            meta = {str(k): str(v) for k, v in conn.execute(f"SELECT key, value FROM {_META}")}
        except sqlite3.Error as exc:
            what = f"unreadable {_META} marker table (foreign file?)"
            raise self._latch(what, exc) or self._error(what, exc) from exc
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
        return version

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a schema version 1 file to version 2 (add ``data_patch``), under the
        write lock; another process may have done it first."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._check_schema(conn, _user_tables(conn)) < 2:
                conn.execute(_MIGRATE_TO_2)
                conn.execute(
                    f"UPDATE {_META} SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = _user_tables(conn)  # another process may have won the race
            if tables:
                if self._check_schema(conn, tables) < SCHEMA_VERSION:
                    conn.execute(_MIGRATE_TO_2)
                    conn.execute(
                        f"UPDATE {_META} SET value = ? WHERE key = 'schema_version'",
                        (str(SCHEMA_VERSION),),
                    )
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


# Primary result codes (the low byte of an extended code): SQLITE_CORRUPT, SQLITE_NOTADB.
_CORRUPTION_CODES = frozenset({11, 26})
# What those codes say, for Pythons whose sqlite3 errors carry no code (3.10).
_CORRUPTION_TEXT = ("database disk image is malformed", "is not a database")


def _is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite reporting a damaged or foreign file."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _CORRUPTION_CODES
    message = str(exc).lower()
    return any(text in message for text in _CORRUPTION_TEXT)


def _hint(exc: BaseException, path: str) -> str:
    """What to do about a permission problem, appended to the error message."""
    code = getattr(exc, "sqlite_errorcode", None)
    message = str(exc).lower()
    if (isinstance(code, int) and code & 0xFF == 8) or "readonly database" in message:
        return (
            f" (this process may not write {path} or create files in its directory: the "
            "store needs write access to both, for the -wal and -shm files beside it)"
        )
    if (isinstance(code, int) and code & 0xFF == 14) or "unable to open" in message:
        return (
            f" (cannot open or create {path}: check that its directory exists and that this "
            "process may write to it)"
        )
    return ""


class _Checkpointer:
    """A ``PASSIVE`` WAL checkpoint in a thread of its own, on a connection of its own
    (the store's connection goes on committing meanwhile; SQLite lets one checkpointer
    run beside a writer). Errors are ignored: a busy or failed checkpoint is retried
    later, and damage is for the store's own calls to find.

    ``copied_all``: the last one copied the whole WAL *and* the store wrote nothing
    since it started (``writes()`` unchanged), so the WAL starts over at the next
    commit; appends made while it ran leave frames it did not copy."""

    __slots__ = ("_path", "_thread", "_writes", "copied_all")

    def __init__(self, path: str, writes: Callable[[], int]) -> None:
        self._path = path
        self._writes = writes
        self._thread: threading.Thread | None = None
        self.copied_all = False

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self.copied_all = False
        thread = threading.Thread(target=self._run, name="cano_dsl WAL checkpoint", daemon=True)
        self._thread = thread
        thread.start()

    def join(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        writes = self._writes()
        try:
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.copied_all = busy == 0 and log == copied and self._writes() == writes
        except sqlite3.Error:
            pass
        finally:
            _close_quietly(conn)


def _pages(op: Op) -> int:
    """WAL pages a committed ``op`` wrote, roughly (a leaf, an occasional split or
    interior page, and the row's own bytes): an append's row size, else one."""
    if op.kind is not OpKind.APPEND:
        return 1
    row: CheckpointRow = op.args[1]
    size = len(row.output_blob or b"") + len(row.data_patch or b"")
    return 2 + size // _PAGE


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass
