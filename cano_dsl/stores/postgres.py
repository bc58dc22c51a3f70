"""`PostgresCheckpointStore`: checkpoint logs in a PostgreSQL table (extra ``postgres``).

Uses psycopg 3's *synchronous* connection in worker threads (psycopg's async API is
asyncio-only, and cano_dsl also runs on trio): one connection per store, used by one
thread at a time, with concurrent calls committed together (see `._batch`). The table
is created on first use (``CREATE TABLE IF NOT EXISTS`` under an advisory lock, so
several processes starting at once are fine) and has the same layout as the Rust
cano-e2e store, so both can read each other's rows::

    cano_checkpoints(workflow_id text, sequence bigint, state text, task_id text,
                     output_blob bytea, kind smallint NOT NULL DEFAULT 0,
                     workflow_version bigint NOT NULL DEFAULT 0,
                     data_patch bytea,
                     PRIMARY KEY (workflow_id, sequence))

A table made before run data existed gets ``data_patch`` (``ADD COLUMN IF NOT EXISTS``,
under the same advisory lock) when a store first connects to it.

A broken connection (server restart, network drop) fails the calls in flight with
`CheckpointStoreError`; the next call reconnects (an idle connection the server has
closed meanwhile is noticed before it is used, so the next call does not fail on it).

An exception from one op of a batch (a value psycopg cannot send, a row the server
refuses, anything) fails that op alone: the transaction is rolled back and the other
ops run again in a new one. Errors about the connection or the transaction itself
(connection loss, cancellation, deadlock, lock timeout) fail the whole batch. No
transaction outlives a batch.

A server that stops answering (a frozen backend, a dead network) would block the
worker thread forever: the kernel still acknowledges the packets, so keepalives and
``tcp_user_timeout`` never fire, and a stopped backend handles no cancel request. So a
caller whose run is cancelled or out of time stops waiting at once (see `._batch`);
once every caller of the stuck batch has left, the store shuts the connection's socket
down (`_abandon`), which ends the thread's wait with an error and drops that
connection; the next call opens a fresh one. Work the server had not committed is
rolled back when it notices the closed socket; a COMMIT already sent has an unknown
outcome.

Connection defaults (`DEFAULT_CONNECTION`), each applied only when the DSN does not
set it, and none when it names a ``service`` (``PGSERVICE``; the service file decides):
``keepalives=1``, ``keepalives_idle=30``, ``keepalives_interval=10``,
``keepalives_count=3`` (a dead peer of an idle connection is found in about a minute),
``tcp_user_timeout=60000`` ms (data unacknowledged for a minute ends the connection),
and an ``application_name`` unique to the store object (unless ``PGAPPNAME`` is set).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
import re
import select
import socket
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .._errors import CheckpointStoreError, ConfigurationError
from ._batch import BatchedStore, Op, OpKind, skip_abandoned
from ._claim import PgClaims, RunClaim, fence_keys
from ._codec import conflict_error, decode_row, row_params
from ._row import CheckpointRow

__all__ = ["DEFAULT_CONNECTION", "PostgresCheckpointStore"]

# libpq parameters the store sets when neither the DSN nor their environment variable
# does (see the module docstring)
DEFAULT_CONNECTION: dict[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
_ENV = {"application_name": "PGAPPNAME"}  # libpq reads no variable for the others
_STORE_IDS = itertools.count(1)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_LOCK_KEY = 0x63616E6F5F647331  # pg_advisory_xact_lock key for schema creation ("cano_ds1")
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE
# SQLSTATE classes that say "this connection or transaction", not "this op's values":
# connection exception, transaction rollback (deadlock, serialization), object not in
# prerequisite state (lock_timeout), insufficient resources, operator intervention
# (query_canceled, admin_shutdown), system error, internal error. Such an error fails the
# whole batch; any other error fails only the op that raised it.
_BATCH_SQLSTATE_CLASSES = ("08", "40", "53", "55", "57", "58", "XX")


def _fails_the_batch(exc: BaseException) -> bool:
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _BATCH_SQLSTATE_CLASSES


def _import_psycopg() -> ModuleType:
    try:
        return importlib.import_module("psycopg")
    except ImportError as exc:
        raise ConfigurationError(
            "PostgresCheckpointStore needs psycopg 3: pip install 'cano-dsl[postgres]'"
        ) from exc


class PostgresCheckpointStore(BatchedStore):
    """A `CheckpointStore` in a PostgreSQL table.

    ``dsn`` is a libpq connection string or URI; ``table`` names the table (default
    ``cano_checkpoints``; a plain identifier). Nothing connects until the first call
    (or `open()` / ``async with``). Call `aclose()` when done; after it every call
    raises `CheckpointStoreError`. Use one store object per event loop at a time.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "cano_checkpoints",
        connect_timeout: float = 10.0,
    ) -> None:
        self._pg = _import_psycopg()
        if not _IDENT.match(table):
            raise ConfigurationError(
                f"PostgresCheckpointStore table must be a plain identifier, got {table!r}"
            )
        try:
            info: dict[str, Any] = self._pg.conninfo.conninfo_to_dict(dsn)
        except self._pg.Error as exc:
            raise ConfigurationError(f"PostgresCheckpointStore: invalid dsn: {exc}") from exc
        self._where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/" + str(
            info.get("dbname", info.get("user", ""))
        )
        self._table = table
        self._connect_timeout = max(1, round(connect_timeout))
        defaults = dict(DEFAULT_CONNECTION)
        # unique per store object (and process), so an operator or a test can find
        # the store's backend in pg_stat_activity
        defaults["application_name"] = f"cano_dsl {table} {os.getpid()}-{next(_STORE_IDS)}"[:63]
        if "service" in info or "PGSERVICE" in os.environ:
            defaults = {}
        extra = {
            k: v for k, v in defaults.items() if k not in info and _ENV.get(k, "") not in os.environ
        }
        self._dsn = self._pg.conninfo.make_conninfo(dsn, **extra) if extra else dsn
        name = info.get("application_name") or extra.get("application_name")
        self._application_name: str | None = name or os.environ.get("PGAPPNAME")
        self._conn: Any = None
        self._schema_ready = False
        # the connection a worker thread is using and its socket (under _lock), so
        # the loop can shut it down when every caller of the batch has left
        self._lock = threading.Lock()
        self._in_use: Any = None
        self._in_use_fd = -1
        self._cut: Any = None
        super().__init__()
        t = table
        self._create_sql = f"""CREATE TABLE IF NOT EXISTS {t} (
            workflow_id      text     NOT NULL,
            sequence         bigint   NOT NULL,
            state            text     NOT NULL,
            task_id          text     NOT NULL,
            output_blob      bytea,
            kind             smallint NOT NULL DEFAULT 0,
            workflow_version bigint   NOT NULL DEFAULT 0,
            data_patch       bytea,
            PRIMARY KEY (workflow_id, sequence))"""
        self._migrate_sql = (
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS workflow_version bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS data_patch bytea"
        )
        # Each write takes the run's write fence (`_claim.fence_keys`) in shared mode for
        # its transaction, in the same statement: a new owner's claim waits for it.
        self._insert_sql = (
            f"INSERT INTO {t} "
            "(workflow_id, sequence, state, task_id, output_blob, kind, workflow_version, "
            "data_patch) "
            "SELECT %s, %s, %s, %s, %s::bytea, %s, %s, %s::bytea "
            "FROM (SELECT pg_advisory_xact_lock_shared(%s, %s)) AS fence "
            "ON CONFLICT (workflow_id, sequence) DO NOTHING"
        )
        self._select_sql = (
            "SELECT sequence, state, task_id, output_blob, kind, workflow_version, data_patch "
            f"FROM {t} WHERE workflow_id = %s ORDER BY sequence"
        )
        self._delete_sql = (
            "WITH fence AS (SELECT pg_advisory_xact_lock_shared(%s, %s)) "
            f"DELETE FROM {t} WHERE workflow_id = %s AND EXISTS (SELECT 1 FROM fence)"
        )

    @property
    def table(self) -> str:
        """The table the rows live in."""
        return self._table

    @property
    def application_name(self) -> str | None:
        """The ``application_name`` the store's connections report (pg_stat_activity):
        the DSN's, else ``PGAPPNAME``, else ``cano_dsl <table> <pid>-<n>`` (unique per
        store object); ``None`` when the DSN names a service that decides it. The
        connection that holds run claims reports the same name followed by
        ``" claims"``."""
        return self._application_name

    def __repr__(self) -> str:
        return f"PostgresCheckpointStore(<{self._where}>, table={self._table!r})"

    # -- worker-thread side ----------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> CheckpointStoreError:
        err = CheckpointStoreError(f"postgres {self._where}: {what}: {exc}")
        err.__cause__ = exc
        return err

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._lock:  # `_abandon` must never touch a closed (reused) fd
                if self._in_use is conn:
                    self._in_use = None
                    self._in_use_fd = -1
            try:
                conn.close()
            except self._pg.Error:
                pass

    def _execute(self, batch: Sequence[Op]) -> None:
        work = [op for op in batch if op.kind is not OpKind.CLOSE]
        if work:
            try:
                conn = self._ensure_open()
            except CheckpointStoreError as exc:
                for op in work:
                    op.fail(exc)
            else:
                live = skip_abandoned(work)  # callers that left while we connected
                with self._lock:
                    self._in_use = conn
                    self._in_use_fd = conn.pgconn.socket
                try:
                    if live:
                        self._run(conn, live)
                finally:
                    with self._lock:
                        self._in_use = None
                        self._in_use_fd = -1
                        cut = self._cut is conn
                        self._cut = None
                    if cut and self._conn is conn:
                        self._drop_connection()
        if len(work) < len(batch):
            self._drop_connection()
            for op in batch:
                if op.kind is OpKind.CLOSE:
                    op.succeed()

    def _run(self, conn: Any, ops: Sequence[Op]) -> None:
        """Run ``ops`` in one transaction. An exception from one op (a server error, a
        value psycopg cannot send, anything) fails that op alone: the transaction is
        rolled back and the others run again, without it, in a new one. The fast path
        pays nothing for this. Whatever is raised, no transaction outlives this call."""
        pending = list(ops)
        try:
            while pending:
                culprit = self._attempt(conn, pending)
                if culprit is None:
                    return
                pending.remove(culprit)
                for op in pending:  # their outcome was rolled back with the culprit's
                    op.result, op.error, op.resolved = None, None, False
        except BaseException as exc:
            # Only a bug of ours or a BaseException (KeyboardInterrupt, SystemExit, ...)
            # gets here: roll back, fail what did not commit, let BaseExceptions go on.
            err = self._error("batch abandoned and rolled back", exc)
            self._end_transaction(conn)
            for op in pending:
                if op.is_write or not op.resolved:
                    op.fail(err)
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._conn is conn and conn.info.transaction_status != _IDLE:
                self._end_transaction(conn)  # never leave a transaction (or its locks) open

    def _attempt(self, conn: Any, ops: Sequence[Op]) -> Op | None:
        """One transaction over ``ops``: ``None`` when every op has its outcome, or the op
        whose failure rolled the transaction back (failed already; the rest are to be
        run again)."""
        current: Op | None = None
        try:
            with conn.cursor() as cur:
                for op in ops:
                    current = op
                    try:
                        self._run_one(cur, op)
                    except Exception as exc:
                        if conn.closed or conn.broken or _fails_the_batch(exc):
                            raise
                        op.fail(self._op_error(op, exc))
                        conn.rollback()
                        return op
                current = None
            conn.commit()
        except self._pg.Error as exc:
            what = "commit" if current is None else f"{current.kind.name.lower()}"
            if current is not None and current.args:
                what += f" {current.args[0]!r}"
            err = self._error(what, exc)
            if conn.closed or conn.broken:
                self._drop_connection()
            else:
                try:
                    conn.rollback()
                except self._pg.Error:
                    self._drop_connection()
            for op in ops:
                if op.is_write or not op.resolved:
                    op.fail(err)
        return None

    def _op_error(self, op: Op, exc: BaseException) -> CheckpointStoreError:
        what = op.kind.name.lower() + (f" {op.args[0]!r}" if op.args else "")
        if op.kind is OpKind.APPEND:
            what += f" sequence={op.args[1].sequence}"
        return self._error(what, exc)

    def _end_transaction(self, conn: Any) -> None:
        """Roll back ``conn``'s transaction; if that fails, drop the connection (the
        server then rolls back), so no transaction or lock outlives the batch."""
        try:
            if not (conn.closed or conn.broken):
                conn.rollback()
                return
        except BaseException as exc:
            self._drop_if(conn)
            if not isinstance(exc, Exception):
                raise
            return
        self._drop_if(conn)

    def _drop_if(self, conn: Any) -> None:
        if self._conn is conn:
            self._drop_connection()
        else:
            try:
                conn.close()
            except Exception:
                pass

    def _run_one(self, cur: Any, op: Op) -> None:
        if op.kind is OpKind.APPEND:
            workflow_id: str = op.args[0]
            row: CheckpointRow = op.args[1]
            cur.execute(
                self._insert_sql,
                (*row_params(workflow_id, row), *fence_keys(self._table, workflow_id)),
            )
            if cur.rowcount == 0:
                op.fail(conflict_error(workflow_id, row.sequence))
            else:
                op.succeed()
        elif op.kind is OpKind.LOAD:
            workflow_id = op.args[0]
            cur.execute(self._select_sql, (workflow_id,))
            try:
                rows = [decode_row(workflow_id, *values) for values in cur.fetchall()]
            except CheckpointStoreError as exc:
                op.fail(exc)
            else:
                op.succeed(rows)
        elif op.kind is OpKind.CLEAR:
            cur.execute(self._delete_sql, (*fence_keys(self._table, op.args[0]), op.args[0]))
            op.succeed()
        else:  # OPEN: connected and migrated by now
            op.succeed()

    def _abandon(self, batch: Sequence[Op]) -> None:
        """On the loop: every caller of the running batch left. Shut the socket of the
        connection the worker thread is using down, so a thread stuck on a server
        that does not answer gets an error now instead of never; the connection is
        dropped and the next batch opens a fresh one."""
        with self._lock:
            if self._in_use is None or self._in_use_fd < 0:
                return
            self._cut = self._in_use
            try:
                sock = socket.socket(fileno=os.dup(self._in_use_fd))
            except OSError:
                return
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                sock.close()  # the duplicate only

    def _ensure_open(self) -> Any:
        conn = self._conn
        # an idle connection has nothing to read: if it has, the server closed it
        # (restart, terminate) or sent an error; drop it rather than fail a batch on it
        if (
            conn is not None
            and not conn.closed
            and not conn.broken
            and not _readable(conn.pgconn.socket)
        ):
            return conn
        self._drop_connection()
        try:
            conn = self._pg.connect(self._dsn, connect_timeout=self._connect_timeout)
        except self._pg.Error as exc:
            raise self._error("cannot connect", exc) from exc
        if not self._schema_ready:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                    cur.execute(self._create_sql)
                    cur.execute(self._migrate_sql)
                conn.commit()
            except self._pg.Error as exc:
                conn.close()
                raise self._error(f"cannot create table {self._table}", exc) from exc
            self._schema_ready = True
        self._conn = conn
        return conn

    # -- run claims (docs/recovery.md, "One owner per run") ---------------------------

    @functools.cached_property
    def _claims(self) -> PgClaims:
        extra: dict[str, str] = {}
        if self._application_name:  # tell the claims connection apart in pg_stat_activity
            extra["application_name"] = f"{self._application_name[:56]} claims"

        def connect() -> Any:
            return self._pg.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout, **extra
            )

        return PgClaims(
            connect, self._pg.Error, self._table, self._where, self._connect_timeout + 5.0
        )

    async def claim(self, workflow_id: str) -> RunClaim:
        """Claim ``workflow_id`` for this task until the claim's ``release()``: a
        session advisory lock (``pg_try_advisory_lock``, key hashed from the table and
        the id) on a connection of its own, which the server drops when the connection
        does (so when this process dies). Raises `RunClaimedError` when another
        connection, or another task of this store, holds the run."""
        if self._closed:
            raise CheckpointStoreError(f"{self!r} is closed")
        return await self._claims.claim(workflow_id)

    async def aclose(self) -> None:
        """Close the connections once the calls already queued are done (claims still
        held are dropped). Idempotent."""
        await super().aclose()
        if "_claims" in self.__dict__:
            await self._claims.aclose()


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read right now (never blocks)."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True
