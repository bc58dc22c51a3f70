"""Child process of the randomised SIGKILL loop (``tests/faults/test_kill_loop.py``).

The child imports everything, prints ``ready`` and waits for one JSON command on stdin,
so the parent can start it ahead of time and a kill never lands in the interpreter's
start-up::

    {"tag": "c7", "store": "sqlite:/tmp/x.db" | "postgres:TABLE", "journal": "fx.jsonl",
     "backend": "asyncio" | "trio", "seed": 123, "fast": false, "durability": "normal",
     "hold": null | N, "hold_rows": 2,
     "runs": [{"id": "r3-0", "mode": "run" | "resume", "fail": false, "observe": true}]}

It opens the store, prints ``go``, drives every run of ``runs`` concurrently on one store
object (so their appends share group commits) and prints one JSON line
``{"runs": {id: outcome}}`` at the end. A run with ``observe`` has an observer (the
engine's dispatch path); one without runs its plain tasks on the engine's inline fast
path. ``seed`` draws the pauses after effects and appends (none with ``fast``).

The workflow (one per run)::

    PREP (task, attempt 1 fails, retried) -> RESERVE (compensatable) -> ITEMS (batch of 4,
    concurrency 2) -> PAGES (stepped, cursor 0..4) -> FAN (split of 3 branches, join all)
    -> CHARGE (compensatable) -> FINISH (task; raises when the run is a failing one) -> DONE

The journal is an append-only file (``O_APPEND``, one ``write`` and an ``fsync`` per record)
that every child of a test shares; a SIGKILL never takes back a record. Each record is
one JSON object with ``c`` (child tag), ``r`` (run id) and ``ev``:

- ``start``: the run starts (``mode``).
- ``ack``: the row ``seq`` (of ``state`` and ``kind``) was appended and the store's
  ``append`` returned (the store class is subclassed: ``append`` journals after
  ``super().append``), so the row is acknowledged and must survive any kill.
- ``load``: the log ``load_run`` returned (``rows``: sequence, state, task id, kind, blob
  text), i.e. the log the resume was rebuilt from (with PostgreSQL a killed child's last
  commit may land after the parent looked, so the parent reads it here).
- ``fx``: a side effect of ``state`` at the run's sequence ``seq`` (the last acknowledged
  row, i.e. the state's entry row or its latest cursor row) and ``att`` (the attempt, for
  PREP), ``cursor`` (PAGES), ``item`` (ITEMS), ``branch`` (FAN), ``token`` (RESERVE, CHARGE:
  the output its compensation receives), ``fail`` (FINISH).
- ``undo``: a compensation ran for ``state`` with the ``token`` it was given.
- ``end``: the run returned (``result``) or raised (``error``, ``category``, ``state``).

``hold`` (the group-commit test): once ``hold`` transactions of two or more inserted
rows have gone through, the next one is held once it has ``hold_rows`` rows in (the
worker thread blocks before the commit, with SQLite's write lock or PostgreSQL's row
locks held) and the child prints ``holding N`` (N rows in that transaction); the parent
then kills it. The hook wraps the database driver (``sqlite3.connect``'s trace callback,
psycopg's ``Cursor.execute``), not the store.
"""

from __future__ import annotations

import enum
import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

import anyio

from cano_dsl import (
    CanoError,
    CheckpointRow,
    JoinConfig,
    JoinStrategy,
    Resources,
    StateFailure,
    StepOutcome,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    batch,
    compensatable,
    stepped,
    task,
)

MINIMAL = TaskConfig.minimal()
PAGES = 5  # cursors 0..4: four STEP_CURSOR rows per uninterrupted visit
ITEMS = 4
BRANCHES = 3


class S(enum.Enum):
    PREP = enum.auto()
    RESERVE = enum.auto()
    ITEMS = enum.auto()
    PAGES = enum.auto()
    FAN = enum.auto()
    CHARGE = enum.auto()
    FINISH = enum.auto()
    DONE = enum.auto()


class Journal:
    """Append-only effects journal shared by every child of a test."""

    def __init__(self, path: str, tag: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.tag = tag

    def write(self, run: str, ev: str, **fields: Any) -> None:
        rec = {"c": self.tag, "r": run, "ev": ev, **fields}
        os.write(self.fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())
        os.fsync(self.fd)


def _text(blob: bytes | None) -> str | None:
    return None if blob is None else blob.decode()


def journaled(base: type[Any], journal: Journal, pause: Callable[[], float]) -> type[Any]:
    """``base`` (a store class) whose ``append`` journals the row once it has returned
    (the row is then acknowledged, and must survive any kill) and then pauses, as a slow
    caller would: kills land between a row and whatever the engine does next, e.g. after
    a saga step's completion row and before the next state's row. ``load_run`` journals
    the log it returns: the exact log a resume starts from."""

    class Journaled(base):  # type: ignore[misc]
        last_seq: ClassVar[dict[str, int]] = {}  # one store class per child

        async def append(self, workflow_id: str, row: CheckpointRow, *args: Any, **kw: Any) -> None:
            await super().append(workflow_id, row, *args, **kw)
            journal.write(workflow_id, "ack", seq=row.sequence, state=row.state, kind=int(row.kind))
            self.last_seq[workflow_id] = row.sequence
            await anyio.sleep(pause())

        async def load_run(self, workflow_id: str, *args: Any, **kw: Any) -> list[CheckpointRow]:
            rows: list[CheckpointRow] = await super().load_run(workflow_id, *args, **kw)
            journal.write(
                workflow_id,
                "load",
                rows=[
                    [r.sequence, r.state, r.task_id, int(r.kind), _text(r.output_blob)]
                    for r in rows
                ],
            )
            return rows

    Journaled.__name__ = base.__name__
    return Journaled


class Watcher(WorkflowObserver):
    """An observer with a few hooks: a run with an observer goes through the engine's
    dispatch path, a run without one through its inline fast path."""

    def __init__(self) -> None:
        self.entered: list[str] = []

    def on_state_enter(self, state: str) -> None:
        self.entered.append(state)


class RunCtx:
    """One run in this child: its journal tags and its pacing."""

    def __init__(
        self, journal: Journal, store: Any, run: str, fail: bool, pause: Callable[[], float]
    ) -> None:
        self.journal = journal
        self.store = store
        self.run = run
        self.fail = fail
        self.pause = pause
        self.attempts = 0
        self.tokens = 0

    @property
    def seq(self) -> int:
        """The run's last acknowledged sequence (its current state's row)."""
        seq: int = self.store.last_seq.get(self.run, -1)
        return seq

    async def fx(self, state: S, **fields: Any) -> None:
        self.journal.write(self.run, "fx", state=state.name, seq=self.seq, **fields)
        await anyio.sleep(self.pause())

    def token(self, state: S) -> str:
        self.tokens += 1
        return f"{self.journal.tag}:{state.name}:{self.tokens}"


def build(ctx: RunCtx) -> Workflow[S]:
    @task(config=MINIMAL.with_fixed_retry(2, 0), name="prep")
    async def prep(res: Resources) -> S:
        ctx.attempts += 1
        await ctx.fx(S.PREP, att=ctx.attempts)
        if ctx.attempts == 1:
            raise ConnectionError("prep: transient failure on the first attempt")
        return S.RESERVE

    @compensatable(state=S, config=MINIMAL, name="reserve")
    class Reserve:
        async def run(self, res: Resources) -> tuple[S, dict[str, str]]:
            token = ctx.token(S.RESERVE)
            await ctx.fx(S.RESERVE, token=token)
            return S.ITEMS, {"token": token}

        async def compensate(self, res: Resources, output: dict[str, str]) -> None:
            ctx.journal.write(ctx.run, "undo", state="RESERVE", token=output["token"], seq=ctx.seq)

    @batch(state=S, config=MINIMAL, name="items")
    class Items:
        concurrency = 2

        async def load(self, res: Resources) -> list[int]:
            await ctx.fx(S.ITEMS, item=-1)
            return list(range(ITEMS))

        async def process_item(self, item: int) -> int:
            await ctx.fx(S.ITEMS, item=item)
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> S:
            assert [o.unwrap() for o in outputs] == list(range(ITEMS))
            return S.PAGES

    @stepped(state=S, config=MINIMAL, name="pages")
    class Pages:
        async def step(self, res: Resources, cursor: int | None) -> StepOutcome[int, S]:
            page = 0 if cursor is None else cursor
            await ctx.fx(S.PAGES, cursor=page)
            if page == PAGES - 1:
                return StepOutcome.done(S.FAN)
            return StepOutcome.more(page + 1)

    def branch(i: int) -> Any:
        @task(config=MINIMAL, name=f"fan{i}")
        async def run(res: Resources) -> S:
            await ctx.fx(S.FAN, branch=i)
            return S.CHARGE

        return run

    @compensatable(state=S, config=MINIMAL, name="charge")
    class Charge:
        async def run(self, res: Resources) -> tuple[S, dict[str, str]]:
            token = ctx.token(S.CHARGE)
            await ctx.fx(S.CHARGE, token=token)
            return S.FINISH, {"token": token}

        async def compensate(self, res: Resources, output: dict[str, str]) -> None:
            ctx.journal.write(ctx.run, "undo", state="CHARGE", token=output["token"], seq=ctx.seq)

    @task(config=MINIMAL, name="finish")
    async def finish(res: Resources) -> S:
        await ctx.fx(S.FINISH, fail=ctx.fail)
        if ctx.fail:
            raise RuntimeError("finish: the order was rejected")
        return S.DONE

    return (
        Workflow.bare()
        .register(S.PREP, prep)
        .register_with_compensation(S.RESERVE, Reserve())
        .register(S.ITEMS, Items())
        .register_stepped(S.PAGES, Pages())
        .register_split(
            S.FAN, [branch(i) for i in range(BRANCHES)], JoinConfig(JoinStrategy.all(), S.CHARGE)
        )
        .register_with_compensation(S.CHARGE, Charge())
        .register(S.FINISH, finish)
        .add_exit_state(S.DONE)
        .with_workflow_version(1)
    )


def open_store(spec: str, journal: Journal, pause: Callable[[], float], durability: str) -> Any:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        from cano_dsl.stores import SqliteCheckpointStore

        return journaled(SqliteCheckpointStore, journal, pause)(rest, durability=durability)
    if kind == "postgres":
        from cano_dsl.stores import PostgresCheckpointStore

        dsn = os.environ["CANO_DSL_TEST_POSTGRES_DSN"]
        return journaled(PostgresCheckpointStore, journal, pause)(dsn, table=rest)
    raise SystemExit(f"unknown store {spec!r}")


def hold_in_group_commit(store: str, after: int, rows: int) -> None:
    """Block the store's worker thread inside the ``after + 1``-th transaction that
    inserts two or more rows (a group commit), once ``rows`` rows are in and before it
    commits: SQLite's write lock (or PostgreSQL's row locks) held, nothing acknowledged.
    Wraps the database driver, whatever statements the store issues around its inserts
    (BEGIN/COMMIT, savepoints, psycopg transaction blocks)."""
    kind, _, rest = store.partition(":")
    insert = "INSERT INTO " + ("cano_checkpoints" if kind == "sqlite" else rest).upper()
    grouped = {"done": 0}

    def block(n: int) -> None:
        print(f"holding {n}", flush=True)
        time.sleep(3600)

    if kind == "sqlite":
        import sqlite3

        real_connect = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = real_connect(*args, **kwargs)
            inserts = [0]

            def trace(sql: str) -> None:  # called before each statement runs
                if not conn.in_transaction:  # the previous transaction (if any) is over
                    grouped["done"] += inserts[0] >= 2
                    inserts[0] = 0
                elif inserts[0] >= rows and grouped["done"] >= after:
                    block(inserts[0])
                if sql.lstrip().upper().startswith(insert):  # a checkpoint row, not the schema's
                    inserts[0] += 1

            conn.set_trace_callback(trace)
            return conn

        sqlite3.connect = connect  # type: ignore[assignment]
        return
    import psycopg
    from psycopg.pq import TransactionStatus

    counts: dict[int, int] = {}
    real_execute = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        key = id(self.connection)
        if self.connection.info.transaction_status == TransactionStatus.IDLE:
            grouped["done"] += counts.get(key, 0) >= 2
            counts[key] = 0
        result = real_execute(self, query, *args, **kwargs)
        if str(query).lstrip().upper().startswith(insert):
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= rows and grouped["done"] >= after:
                block(counts[key])
        return result

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def outcome(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"error": type(exc).__name__}
    if isinstance(exc, CanoError):
        out["category"] = exc.category
        out["message"] = exc.message
    else:
        out["message"] = repr(exc)
    if isinstance(exc, StateFailure):
        out["state"] = exc.state.name
    return out


async def main(cmd: dict[str, Any]) -> dict[str, Any]:
    journal = Journal(cmd["journal"], cmd["tag"])
    rng = random.Random(cmd["seed"])
    fast = bool(cmd.get("fast"))

    def pause() -> float:
        # a third of the pauses only yield, so kills land in appends as often as in tasks
        if fast or rng.random() < 0.35:
            return 0.0
        return rng.uniform(0.0, 0.004)

    store = open_store(cmd["store"], journal, pause, cmd.get("durability", "normal"))
    results: dict[str, Any] = {}
    try:
        await store.open()
    except CanoError as exc:
        print(f"open failed: {exc}", flush=True)
        raise
    print("go", flush=True)

    async def drive(spec: dict[str, Any]) -> None:
        wid = spec["id"]
        ctx = RunCtx(journal, store, wid, bool(spec["fail"]), pause)
        wf = build(ctx).with_checkpoint_store(store)
        if spec.get("observe"):
            wf = wf.with_observer(Watcher())
        journal.write(wid, "start", mode=spec["mode"])
        try:
            if spec["mode"] == "run":
                final = await wf.with_workflow_id(wid).orchestrate(S.PREP)
            else:
                final = await wf.resume_from(wid)
            result: dict[str, Any] = {"result": final.name}
        except Exception as exc:
            result = outcome(exc)
        journal.write(wid, "end", **result)
        results[wid] = result

    try:
        async with anyio.create_task_group() as tg:
            for spec in cmd["runs"]:
                tg.start_soon(drive, spec)
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await store.aclose()
            except CanoError:
                pass
    return {"runs": results}


if __name__ == "__main__":
    print("ready", flush=True)
    line = sys.stdin.readline()
    if not line:  # the parent no longer needs this spare child
        raise SystemExit(0)
    command = json.loads(line)
    if command.get("hold") is not None:
        hold_in_group_commit(
            command["store"], int(command["hold"]), int(command.get("hold_rows", 2))
        )
    print(json.dumps(anyio.run(main, command, backend=command["backend"])), flush=True)
    # nothing left to test: skip the interpreter's teardown (tens of ms), so a kill never
    # lands in it and the parent moves on sooner
    os._exit(0)
