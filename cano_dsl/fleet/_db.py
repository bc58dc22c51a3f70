"""The fleet's tables and every statement on them, for SQLite and PostgreSQL.

The run table lives in the checkpoint store's database, beside its checkpoint table,
which it never alters. It is created after the store has opened (so the store's own
schema rules, its ``cano_dsl_meta`` marker on SQLite and its advisory lock on
PostgreSQL, have run first) with ``CREATE TABLE IF NOT EXISTS`` under the same lock:
SQLite's write lock (``BEGIN IMMEDIATE``), PostgreSQL's schema advisory lock.

Each `FleetDb` owns one blocking connection of its own, used by one worker thread at a
time (a `threading.Lock`), never from the event loop. Every method is one transaction.
Times are the database server's clock, in Unix seconds, so hosts whose clocks differ
agree on lease expiry.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from .._errors import CheckpointStoreError
from ..stores._codec import decode_row, row_params
from ..stores._row import CheckpointRow
from ._record import FleetError, RunRecord, RunStatus

__all__ = ["FleetDb", "Op", "OpFailed", "db_for_store"]

_T = TypeVar("_T")
_LOCK_KEY = 0x63616E6F5F647331  # the PostgreSQL store's schema advisory lock key

_COLUMNS = (
    "run_id, workflow_name, workflow_version, queue, priority, status, initial_state, "
    "data, owner, epoch, lease_expires, created_at, started_at, finished_at, recoveries, "
    "cancel_requested, exit_state, result_data, error_category, error_message, error_state, "
    "trace_context"
)


class Fenced(Exception):
    """A write under a lease that is no longer the run's current lease."""


class Op(Generic[_T]):
    """One statement's worth of work for `FleetDb.batch`: on SQLite ``run(cursor)``;
    on PostgreSQL the single statement ``sql`` with ``params``, whose result
    ``decode(cursor)`` reads. A PostgreSQL batch sends every op's statement and the
    ``COMMIT`` in one pipeline (one round trip for the whole batch)."""

    __slots__ = ("decode", "params", "run", "sql")

    def __init__(
        self,
        run: Callable[[Any], _T],
        sql: str,
        params: Sequence[Any],
        decode: Callable[[Any], _T],
    ) -> None:
        self.run = run
        self.sql = sql
        self.params = params
        self.decode = decode

    def __call__(self, cur: Any) -> _T:
        if self.sql:
            cur.execute(self.sql, self.params)
            return self.decode(cur)
        return self.run(cur)


class OpFailed:
    """The result of an op of a batch whose result could not be read (the others'
    stand: their statements committed)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class FleetDb:
    """The run table of one store's database (see the module docstring)."""

    def __init__(
        self,
        dialect: str,
        connect: Callable[[], Any],
        runs: str,
        checkpoints: str,
        where: str,
        queues: str,
        fires: str,
    ) -> None:
        self.dialect = dialect
        self.queues = queues
        self.fires = fires
        self._connect = connect
        self.runs = runs
        self.checkpoints = checkpoints
        self.where = where
        self._conn: Any = None
        self._lock = threading.Lock()
        pg = dialect == "postgres"
        self.now = (
            "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
            if pg
            else "((julianday('now') - 2440587.5) * 86400.0)"
        )
        seq = "seq bigint GENERATED ALWAYS AS IDENTITY" if pg else "seq INTEGER PRIMARY KEY"
        real = "double precision" if pg else "REAL"
        key = "run_id text NOT NULL UNIQUE" if not pg else "run_id text PRIMARY KEY"
        self._create = [
            f"""CREATE TABLE IF NOT EXISTS {runs} (
                {seq},
                {key},
                workflow_name    text    NOT NULL,
                workflow_version bigint,
                queue            text    NOT NULL,
                priority         bigint  NOT NULL,
                status           text    NOT NULL,
                initial_state    text    NOT NULL,
                data             text    NOT NULL,
                owner            text,
                epoch            bigint  NOT NULL DEFAULT 0,
                lease_expires    {real},
                created_at       {real}  NOT NULL,
                started_at       {real},
                finished_at      {real},
                recoveries       bigint  NOT NULL DEFAULT 0,
                cancel_requested bigint  NOT NULL DEFAULT 0,
                exit_state       text,
                result_data      text,
                error_category   text,
                error_message    text,
                error_state      text,
                trace_context    text)""",
            f"CREATE INDEX IF NOT EXISTS {runs}_claim ON {runs} (status, priority, seq)",
            f"""CREATE TABLE IF NOT EXISTS {queues} (
                queue          text PRIMARY KEY,
                max_running    bigint,
                capacity       double precision,
                rate           double precision,
                tokens         double precision,
                refilled_at    double precision)""",
            f"""CREATE TABLE IF NOT EXISTS {fires} (
                flow_id        text NOT NULL,
                scheduled_at   text NOT NULL,
                fired_at       double precision NOT NULL,
                PRIMARY KEY (flow_id, scheduled_at))""",
        ]
        self._schema_ready = False

    # -- plumbing ------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.dialect == "postgres" else text

    def _open(self) -> Any:
        conn = self._conn
        if conn is not None:
            if self.dialect != "postgres" or not (conn.closed or conn.broken):
                return conn
            self._drop()
        conn = self._connect()
        if not self._schema_ready:
            try:
                if self.dialect == "postgres":
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                        for stmt in self._create:
                            cur.execute(stmt)
                        cur.execute(
                            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                            "AND attname = 'trace_context' AND NOT attisdropped",
                            (self.runs,),
                        )
                        if cur.fetchone() is None:  # a run table made before the column
                            cur.execute(f"ALTER TABLE {self.runs} ADD COLUMN trace_context text")
                    conn.commit()
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    for stmt in self._create:
                        conn.execute(stmt)
                    columns = {r[1] for r in conn.execute(f"PRAGMA table_info({self.runs})")}
                    if "trace_context" not in columns:  # a run table made before the column
                        conn.execute(f"ALTER TABLE {self.runs} ADD COLUMN trace_context text")
                    conn.execute("COMMIT")
            except Exception:
                _close(conn)
                raise
            self._schema_ready = True
        self._conn = conn
        return conn

    def connect_raw(self) -> Any:
        """A new connection of its own (the caller closes it)."""
        return self._connect()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close(conn)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._drop()

    def tx(self, what: str, body: Callable[[Any], _T], *, write: bool = True) -> _T:
        """Run ``body(cursor)`` in one transaction and commit it; any database error
        becomes a `FleetError` naming ``what`` (the transaction is rolled back)."""
        with self._lock:
            conn = None
            try:
                conn = self._open()
                if self.dialect == "postgres":
                    with conn.cursor() as cur:
                        result = body(cur)
                    conn.commit()
                    return result
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                cur = conn.cursor()
                try:
                    result = body(cur)
                finally:
                    cur.close()
                conn.execute("COMMIT")
                return result
            except Fenced:
                self._rollback(conn)
                raise
            except FleetError:
                self._rollback(conn)
                raise
            except Exception as exc:
                self._rollback(conn)
                raise FleetError(f"{self.where}: {what}: {exc}") from exc

    def _rollback(self, conn: Any) -> None:
        if conn is None:
            return
        try:
            if self.dialect == "postgres":
                if conn.closed or conn.broken:
                    self._drop()
                else:
                    conn.rollback()
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:
            self._drop()

    def _record(self, row: Sequence[Any]) -> RunRecord:
        values = list(row)
        return RunRecord(
            run_id=values[0],
            workflow_name=values[1],
            workflow_version=None if values[2] is None else int(values[2]),
            queue=values[3],
            priority=int(values[4]),
            status=RunStatus(values[5]),
            initial_state=values[6],
            data=json.loads(values[7]),
            owner=values[8],
            epoch=int(values[9]),
            lease_expires=values[10],
            created_at=float(values[11]),
            started_at=values[12],
            finished_at=values[13],
            recoveries=int(values[14]),
            cancel_requested=bool(values[15]),
            exit_state=values[16],
            result_data=None if values[17] is None else json.loads(values[17]),
            error_category=values[18],
            error_message=values[19],
            error_state=values[20],
            trace_context=None if values[21] is None else json.loads(values[21]),
        )

    def _fetch(self, cur: Any, run_id: str) -> RunRecord | None:
        cur.execute(self._sql(f"SELECT {_COLUMNS} FROM {self.runs} WHERE run_id = ?"), (run_id,))
        row = cur.fetchone()
        return None if row is None else self._record(row)

    # -- the public API's statements ----------------------------------------------------

    def enqueue(
        self,
        run_id: str,
        workflow_name: str,
        version: int | None,
        queue: str,
        priority: int,
        initial_state: str,
        data: str,
        trace_context: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """Insert a queued run unless ``run_id`` exists; the run and whether it is new."""

        def body(cur: Any) -> tuple[RunRecord, bool]:
            cur.execute(
                self._sql(
                    f"INSERT INTO {self.runs} (run_id, workflow_name, workflow_version, queue, "
                    "priority, status, initial_state, data, trace_context, created_at) "
                    f"VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, {self.now}) "
                    "ON CONFLICT (run_id) DO NOTHING"
                ),
                (
                    run_id,
                    workflow_name,
                    version,
                    queue,
                    priority,
                    initial_state,
                    data,
                    trace_context,
                ),
            )
            created = cur.rowcount == 1
            if created and self.dialect == "postgres":
                cur.execute("SELECT pg_notify(%s, %s)", (self.runs, queue))
            record = self._fetch(cur, run_id)
            assert record is not None
            return record, created

        return self.tx(f"enqueue {run_id!r}", body)

    def enqueue_many(
        self, rows: Sequence[tuple[str, str, int | None, str, int, str, str, str | None]]
    ) -> list[bool]:
        """Insert queued runs ``(run_id, workflow_name, version, queue, priority,
        initial_state, data, trace_context)`` in one transaction, each unless its ``run_id`` exists;
        whether each one is new. PostgreSQL pipelines the inserts (one round trip)."""
        sql = self._sql(
            f"INSERT INTO {self.runs} (run_id, workflow_name, workflow_version, queue, "
            "priority, status, initial_state, data, trace_context, created_at) "
            f"VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, {self.now}) "
            "ON CONFLICT (run_id) DO NOTHING RETURNING 1"
        )

        def body(cur: Any) -> list[bool]:
            if self.dialect != "postgres":
                out = []
                for row in rows:
                    cur.execute(sql, row)
                    out.append(cur.fetchone() is not None)
                return out
            conn = cur.connection
            cursors = []
            try:
                with conn.pipeline():
                    for row in rows:
                        c = conn.cursor()
                        cursors.append(c)
                        c.execute(sql, row)
                    for queue in sorted({row[3] for row in rows}):
                        cur.execute("SELECT pg_notify(%s, %s)", (self.runs, queue))
                    conn.commit()
                return [c.fetchone() is not None for c in cursors]
            finally:
                for c in cursors:
                    c.close()

        if not rows:
            return []
        return self.tx(f"enqueue {len(rows)} runs", body)

    def get(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or ``None``."""
        return self.tx(f"get {run_id!r}", lambda cur: self._fetch(cur, run_id), write=False)

    def list_runs(
        self,
        statuses: Sequence[str],
        queue: str | None,
        workflow_name: str | None,
        limit: int,
        offset: int,
    ) -> list[RunRecord]:
        """Runs matching the filters, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        if workflow_name is not None:
            where.append("workflow_name = ?")
            params.append(workflow_name)
        text = f"SELECT {_COLUMNS} FROM {self.runs}"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY seq LIMIT ? OFFSET ?"
        params.extend((limit, offset))

        def body(cur: Any) -> list[RunRecord]:
            cur.execute(self._sql(text), tuple(params))
            return [self._record(row) for row in cur.fetchall()]

        return self.tx("list runs", body, write=False)

    def cancel(self, run_id: str) -> RunRecord | None:
        """Cancel a queued run at once; mark a running one for its owner to cancel."""

        def body(cur: Any) -> RunRecord | None:
            cur.execute(
                self._sql(
                    f"UPDATE {self.runs} SET status = 'cancelled', finished_at = {self.now}, "
                    "cancel_requested = 1 WHERE run_id = ? AND status = 'queued'"
                ),
                (run_id,),
            )
            cur.execute(
                self._sql(
                    f"UPDATE {self.runs} SET cancel_requested = 1 "
                    "WHERE run_id = ? AND status = 'running'"
                ),
                (run_id,),
            )
            if self.dialect == "postgres":
                cur.execute("SELECT pg_notify(%s, %s)", (self.runs + "_cancel", run_id))
            return self._fetch(cur, run_id)

        return self.tx(f"cancel {run_id!r}", body)

    # -- the worker's statements -----------------------------------------------------

    def claim(
        self,
        owner: str,
        count: int,
        lease: float,
        workflow_names: Sequence[str],
        queues: Sequence[str] | None,
    ) -> list[RunRecord]:
        """Take up to ``count`` claimable runs (queued, or running with an expired lease)
        for ``owner``: highest priority first, FIFO within a priority, within every
        queue's limits (checked and spent in this transaction, so they hold across the
        fleet; a queue at its limit leaves its runs queued)."""
        if count <= 0 or not workflow_names:
            return []
        pg = self.dialect == "postgres"
        cond = [f"workflow_name IN ({', '.join('?' for _ in workflow_names)})"]
        params: list[Any] = list(workflow_names)
        if queues is not None:
            cond.append(f"queue IN ({', '.join('?' for _ in queues)})")
            params.extend(queues)
        claimable = (
            f"(status = 'queued' OR (status = 'running' AND lease_expires < {self.now})) AND "
            + " AND ".join(cond)
        )
        setting = (
            "status = 'running', owner = ?, epoch = epoch + 1, "
            f"lease_expires = {self.now} + ?, started_at = COALESCE(started_at, {self.now}), "
            "recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END"
        )
        lock = " FOR UPDATE SKIP LOCKED" if pg else ""

        def body(cur: Any) -> list[RunRecord]:
            allowance = self._allowances(cur)
            full = [q for q, n in allowance.items() if n <= 0]
            where, args = claimable, list(params)
            if full:
                where += f" AND queue NOT IN ({', '.join('?' for _ in full)})"
                args.extend(full)
            # over-fetch when some queue is limited, so one limited queue at the head
            # of the order does not leave this claim short
            fetch = count if not allowance else count * 4
            cur.execute(
                self._sql(
                    f"SELECT run_id, queue FROM {self.runs} WHERE {where} "
                    f"ORDER BY priority DESC, seq LIMIT ?{lock}"
                ),
                (*args, fetch),
            )
            chosen: list[str] = []
            spent: dict[str, int] = {}
            for run_id, queue in cur.fetchall():
                if len(chosen) >= count:
                    break
                left = allowance.get(queue)
                if left is not None:
                    if left <= 0:
                        continue
                    allowance[queue] = left - 1
                    spent[queue] = spent.get(queue, 0) + 1
                chosen.append(run_id)
            if not chosen:
                return []
            marks = ", ".join("?" for _ in chosen)
            out: list[RunRecord] = []
            if pg:
                cur.execute(
                    self._sql(
                        f"UPDATE {self.runs} SET {setting} WHERE run_id IN ({marks}) "
                        f"RETURNING {_COLUMNS}"
                    ),
                    (owner, lease, *chosen),
                )
                out = [self._record(row) for row in cur.fetchall()]
            else:
                for run_id in chosen:
                    cur.execute(
                        f"UPDATE {self.runs} SET {setting} WHERE run_id = ?",
                        (owner, lease, run_id),
                    )
                    record = self._fetch(cur, run_id)
                    assert record is not None
                    out.append(record)
            for queue, n in spent.items():
                cur.execute(
                    self._sql(
                        f"UPDATE {self.queues} SET tokens = tokens - ? "
                        "WHERE queue = ? AND tokens IS NOT NULL"
                    ),
                    (n, queue),
                )
            by_id = {r.run_id: r for r in out}
            return [by_id[rid] for rid in chosen if rid in by_id]

        if not pg:
            return self.tx("claim runs", body)
        quick = (
            f"WITH pick AS (SELECT run_id FROM {self.runs} WHERE {claimable} "
            f"AND NOT EXISTS (SELECT 1 FROM {self.queues}) "
            "ORDER BY priority DESC, seq LIMIT %s FOR UPDATE SKIP LOCKED) "
            f"UPDATE {self.runs} SET {setting} WHERE run_id IN (SELECT run_id FROM pick) "
            f"RETURNING {_COLUMNS}, seq"
        )

        def fast(cur: Any) -> list[RunRecord]:
            # No queue has limits (the usual case): one pipelined round trip claims
            # (BEGIN, whether limits exist, the claim itself). A claim that took runs saw
            # no limited queue in its snapshot; one that took none while limits exist
            # goes the long way, in the same transaction.
            conn = cur.connection
            with conn.cursor() as limited:
                with conn.pipeline():
                    limited.execute(f"SELECT EXISTS (SELECT 1 FROM {self.queues})")
                    cur.execute(self._sql(quick), (*params, count, owner, lease))
                (exists,) = limited.fetchone()
            rows = cur.fetchall()
            if rows:
                rows.sort(key=lambda r: (-int(r[4]), int(r[-1])))
                return [self._record(r[:-1]) for r in rows]
            return body(cur) if exists else []

        return self.tx("claim runs", fast)

    def _allowances(self, cur: Any) -> dict[str, int]:
        """How many runs each limited queue may start now: its ``max_running`` minus its
        runs under a live lease, and the whole tokens of its start-rate bucket (refilled
        here, lazily). PostgreSQL locks the limited queues' rows, so concurrent claims on
        them take turns."""
        lock = " FOR UPDATE" if self.dialect == "postgres" else ""
        cur.execute(
            f"SELECT queue, max_running, capacity, rate, tokens, refilled_at, {self.now} "
            f"FROM {self.queues} ORDER BY queue{lock}"
        )
        rows = cur.fetchall()
        out: dict[str, int] = {}
        for queue, max_running, capacity, rate, tokens, refilled_at, now in rows:
            allowed = 2**62
            if max_running is not None:
                cur.execute(
                    self._sql(
                        f"SELECT count(*) FROM {self.runs} WHERE queue = ? AND "
                        f"status = 'running' AND lease_expires >= {self.now}"
                    ),
                    (queue,),
                )
                (running,) = cur.fetchone()
                allowed = min(allowed, int(max_running) - int(running))
            if rate is not None:
                level = min(float(capacity), float(tokens) + (now - refilled_at) * float(rate))
                cur.execute(
                    self._sql(
                        f"UPDATE {self.queues} SET tokens = ?, refilled_at = ? WHERE queue = ?"
                    ),
                    (level, now, queue),
                )
                # a hair under a whole token from float refills still counts as one
                allowed = min(allowed, int(level + 1e-9))
            out[queue] = allowed
        return out

    def set_queue(
        self, queue: str, max_running: int | None, capacity: float | None, rate: float | None
    ) -> None:
        """Set (or with all ``None``, remove) ``queue``'s limits; a new rate bucket
        starts full."""

        def body(cur: Any) -> None:
            cur.execute(self._sql(f"DELETE FROM {self.queues} WHERE queue = ?"), (queue,))
            if max_running is None and rate is None:
                return
            cur.execute(
                self._sql(
                    f"INSERT INTO {self.queues} (queue, max_running, capacity, rate, tokens, "
                    f"refilled_at) VALUES (?, ?, ?, ?, ?, {self.now})"
                ),
                (queue, max_running, capacity, rate, capacity),
            )

        self.tx(f"set queue {queue!r}", body)

    def get_queue(self, queue: str) -> tuple[int | None, float | None, float | None] | None:
        """``(max_running, capacity, rate)`` of ``queue``, or ``None`` (no limits)."""

        def body(cur: Any) -> tuple[int | None, float | None, float | None] | None:
            cur.execute(
                self._sql(f"SELECT max_running, capacity, rate FROM {self.queues} WHERE queue = ?"),
                (queue,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            return (
                None if row[0] is None else int(row[0]),
                None if row[1] is None else float(row[1]),
                None if row[2] is None else float(row[2]),
            )

        return self.tx(f"get queue {queue!r}", body, write=False)

    def heartbeat(
        self, owner: str, held: Sequence[tuple[str, int]], lease: float
    ) -> tuple[set[str], set[str]]:
        """Extend the leases ``owner`` still holds; the run ids it lost and the run ids
        whose cancellation was requested."""
        if not held:
            return set(), set()

        def body(cur: Any) -> tuple[set[str], set[str]]:
            lost: set[str] = set()
            cancel: set[str] = set()
            for run_id, epoch in held:
                cur.execute(
                    self._sql(
                        f"UPDATE {self.runs} SET lease_expires = {self.now} + ? "
                        "WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'running' "
                        "RETURNING cancel_requested"
                    ),
                    (lease, run_id, owner, epoch),
                )
                row = cur.fetchone()
                if row is None:
                    lost.add(run_id)
                elif row[0]:
                    cancel.add(run_id)
            return lost, cancel

        return self.tx("heartbeat", body)

    def _owns(self, cur: Any, run_id: str, owner: str, epoch: int) -> bool:
        lock = " FOR SHARE" if self.dialect == "postgres" else ""
        cur.execute(
            self._sql(
                f"SELECT 1 FROM {self.runs} WHERE run_id = ? AND owner = ? AND epoch = ? "
                f"AND status = 'running'{lock}"
            ),
            (run_id, owner, epoch),
        )
        return cur.fetchone() is not None

    def fenced_append(self, run_id: str, owner: str, epoch: int, row: CheckpointRow) -> str:
        """Insert ``row`` if ``owner`` still holds lease ``epoch`` of ``run_id`` (checked
        in the same transaction): ``"ok"``, ``"conflict"`` or ``"fenced"``."""
        body = self.fenced_append_op(run_id, owner, epoch, row)
        return self.tx(f"append {run_id!r} sequence={row.sequence}", body)

    def batch(self, ops: Sequence[Callable[[Any], Any]]) -> list[Any]:
        """Run ``ops`` (from the ``*_op`` methods) in one transaction: one commit for
        all of them (group commit across runs). On PostgreSQL every op is an `Op`, sent
        in one pipeline with the ``BEGIN`` and the ``COMMIT``: one round trip for the
        batch. An op whose result cannot be decoded yields an `OpFailed`."""
        what = f"batch of {len(ops)}"
        if self.dialect != "postgres" or not all(isinstance(op, Op) and op.sql for op in ops):
            return self.tx(what, lambda cur: [_guarded(op, cur) for op in ops])

        def body(cur: Any) -> list[Any]:
            conn = cur.connection
            cursors = []
            try:
                with conn.pipeline():
                    for op in ops:
                        assert isinstance(op, Op)
                        c = conn.cursor()
                        cursors.append(c)
                        c.execute(op.sql, op.params)
                    conn.commit()
                out: list[Any] = []
                for op, c in zip(ops, cursors, strict=True):
                    assert isinstance(op, Op)
                    try:
                        out.append(op.decode(c))
                    except FleetError as exc:
                        out.append(OpFailed(exc))
                return out
            finally:
                for c in cursors:
                    c.close()

        return self.tx(what, body)

    def fenced_append_op(self, run_id: str, owner: str, epoch: int, row: CheckpointRow) -> Op[str]:
        """`fenced_append` as an op for `batch`. On PostgreSQL one statement: the
        lease row is read ``FOR SHARE`` (so a takeover's epoch bump waits for this
        insert's commit, and an insert after the bump sees the new epoch) and the row
        is inserted only if the lease matched."""
        params = row_params(run_id, row)

        def body(cur: Any) -> str:
            if not self._owns(cur, run_id, owner, epoch):
                return "fenced"
            cur.execute(
                self._sql(
                    f"INSERT INTO {self.checkpoints} (workflow_id, sequence, state, task_id, "
                    "output_blob, kind, workflow_version, data_patch) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (workflow_id, sequence) DO NOTHING"
                ),
                params,
            )
            return "ok" if cur.rowcount == 1 else "conflict"

        if self.dialect != "postgres":
            return Op(body, "", (), body)

        def decode(cur: Any) -> str:
            leased, inserted = cur.fetchone()
            if not leased:
                return "fenced"
            return "ok" if inserted else "conflict"

        sql = (
            f"WITH lease AS (SELECT 1 FROM {self.runs} WHERE run_id = %s AND owner = %s "
            "AND epoch = %s AND status = 'running' FOR SHARE), "
            f"ins AS (INSERT INTO {self.checkpoints} (workflow_id, sequence, state, task_id, "
            "output_blob, kind, workflow_version, data_patch) "
            "SELECT %s::text, %s::bigint, %s::text, %s::text, %s::bytea, %s::smallint, "
            "%s::bigint, %s::bytea FROM lease "
            "ON CONFLICT (workflow_id, sequence) DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM ins)"
        )
        return Op(body, sql, (run_id, owner, epoch, *params), decode)

    def load_op(self, run_id: str) -> Op[list[CheckpointRow]]:
        """`load` as an op for `batch`."""
        cast = (
            "state, task_id"
            if self.dialect == "postgres"
            else "CAST(state AS BLOB), " + ("CAST(task_id AS BLOB)")
        )
        sql = self._sql(
            f"SELECT sequence, {cast}, output_blob, kind, workflow_version, data_patch "
            f"FROM {self.checkpoints} WHERE workflow_id = ? ORDER BY sequence"
        )

        def decode(cur: Any) -> list[CheckpointRow]:
            try:
                return [decode_row(run_id, *values) for values in cur.fetchall()]
            except CheckpointStoreError as exc:
                raise FleetError(str(exc)) from exc

        def body(cur: Any) -> list[CheckpointRow]:
            cur.execute(sql, (run_id,))
            return decode(cur)

        return Op(body, sql, (run_id,), decode)

    def load(self, run_id: str) -> list[CheckpointRow]:
        """``run_id``'s checkpoint rows, in sequence order."""
        return self.tx(f"load {run_id!r}", self.load_op(run_id), write=False)

    def finish_op(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        *,
        exit_state: str | None = None,
        result_data: str | None = None,
        error: tuple[str, str, str | None] | None = None,
        clear_log: bool = False,
    ) -> Op[bool]:
        """`finish` as an op for `batch` (on PostgreSQL one statement: the final
        record and, if ``clear_log``, the log's deletion)."""
        category, message, state = error if error is not None else (None, None, None)
        setting = (
            f"UPDATE {self.runs} SET status = ?, finished_at = {self.now}, owner = NULL, "
            "lease_expires = NULL, exit_state = ?, result_data = ?, "
            "error_category = ?, error_message = ?, error_state = ? "
            "WHERE run_id = ? AND owner = ? AND epoch = ? AND status = 'running'"
        )
        params: tuple[Any, ...] = (status.value, exit_state, result_data, category, message)
        params += (state, run_id, owner, epoch)

        def body(cur: Any) -> bool:
            cur.execute(self._sql(setting), params)
            if cur.rowcount != 1:
                return False
            if clear_log:
                cur.execute(
                    self._sql(f"DELETE FROM {self.checkpoints} WHERE workflow_id = ?"), (run_id,)
                )
            return True

        if self.dialect != "postgres":
            return Op(body, "", (), body)

        def decode(cur: Any) -> bool:
            (done,) = cur.fetchone()
            return bool(done == 1)

        sql = (
            f"WITH done AS ({self._sql(setting)} RETURNING run_id), "
            f"gone AS (DELETE FROM {self.checkpoints} WHERE %s::boolean "
            "AND workflow_id IN (SELECT run_id FROM done)) "
            "SELECT count(*) FROM done"
        )
        return Op(body, sql, (*params, clear_log), decode)

    def finish(
        self,
        run_id: str,
        owner: str,
        epoch: int,
        status: RunStatus,
        *,
        exit_state: str | None = None,
        result_data: str | None = None,
        error: tuple[str, str, str | None] | None = None,
        clear_log: bool = False,
    ) -> bool:
        """Write the final record (and clear the log) if the lease is still ``owner``'s."""
        body = self.finish_op(
            run_id,
            owner,
            epoch,
            status,
            exit_state=exit_state,
            result_data=result_data,
            error=error,
            clear_log=clear_log,
        )
        return self.tx(f"finish {run_id!r}", body)

    def take_fire(self, flow_id: str, scheduled_at: str) -> bool:
        """Insert the fire record ``(flow_id, scheduled_at)``; whether this call did."""

        def body(cur: Any) -> bool:
            cur.execute(
                self._sql(
                    f"INSERT INTO {self.fires} (flow_id, scheduled_at, fired_at) "
                    f"VALUES (?, ?, {self.now}) ON CONFLICT (flow_id, scheduled_at) DO NOTHING"
                ),
                (flow_id, scheduled_at),
            )
            return bool(cur.rowcount == 1)

        return self.tx(f"take fire {flow_id!r} {scheduled_at}", body)

    def release(self, owner: str, held: Sequence[tuple[str, int]]) -> None:
        """Give runs back to the queue at once (graceful shutdown): another worker can
        claim them without waiting for the lease to expire."""
        if not held:
            return

        def body(cur: Any) -> None:
            for run_id, epoch in held:
                cur.execute(
                    self._sql(
                        f"UPDATE {self.runs} SET status = 'queued', owner = NULL, "
                        "lease_expires = NULL WHERE run_id = ? AND owner = ? AND epoch = ? "
                        "AND status = 'running'"
                    ),
                    (run_id, owner, epoch),
                )
            if self.dialect == "postgres":
                cur.execute("SELECT pg_notify(%s, %s)", (self.runs, ""))

        self.tx("release runs", body)


def _guarded(op: Callable[[Any], Any], cur: Any) -> Any:
    try:
        return op(cur)
    except FleetError as exc:  # a result that cannot be decoded; not a database error
        return OpFailed(exc)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


def db_for_store(store: Any) -> FleetDb:
    """The `FleetDb` of ``store``'s database: a `SqliteCheckpointStore` (tables
    ``cano_fleet_runs``, ``cano_fleet_queues`` and ``cano_fleet_fires`` beside
    ``cano_checkpoints``) or a `PostgresCheckpointStore` (tables ``<store table>_runs``,
    ``_queues`` and ``_fires``)."""
    from .._errors import ConfigurationError
    from ..stores.postgres import PostgresCheckpointStore
    from ..stores.sqlite import SqliteCheckpointStore

    if isinstance(store, SqliteCheckpointStore):
        path = store.path
        busy = getattr(store, "_busy_timeout", 30.0)

        def connect_sqlite() -> sqlite3.Connection:
            conn = sqlite3.connect(
                path, timeout=busy, isolation_level=None, check_same_thread=False
            )
            sync = "FULL" if store.durability == "full" else "NORMAL"
            conn.execute(f"PRAGMA synchronous={sync}")
            return conn

        return FleetDb(
            "sqlite",
            connect_sqlite,
            "cano_fleet_runs",
            "cano_checkpoints",
            path,
            "cano_fleet_queues",
            "cano_fleet_fires",
        )
    if isinstance(store, PostgresCheckpointStore):
        table = store.table
        if len(table) > 54:
            raise ConfigurationError(
                f"Fleet: the store's table name {table!r} is too long to derive the run "
                "table's name from (at most 54 characters)"
            )
        pg = importlib.import_module("psycopg")
        dsn = store._dsn

        def connect_pg() -> Any:
            return pg.connect(dsn, connect_timeout=store._connect_timeout)

        return FleetDb(
            "postgres",
            connect_pg,
            f"{table}_runs",
            table,
            repr(store),
            f"{table}_queues",
            f"{table}_fires",
        )
    raise ConfigurationError(
        "Fleet needs a SqliteCheckpointStore or a PostgresCheckpointStore (the run queue "
        f"lives in the store's database), got {type(store).__qualname__}"
    )
