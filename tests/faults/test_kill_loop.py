"""A randomised SIGKILL loop with real processes (issue 8, the fault-injection suite).

Each round starts one to three workflow runs (some designed to fail at the end and roll
back) in a child process (``kill_driver.py``; its docstring describes the workflow and
the effects journal), kills the child with SIGKILL after a random delay, resumes the
unfinished runs in a new child, and so on until every run of the round has ended; then
the next round starts. Children alternate between asyncio and trio, so a run started on
one backend is resumed on the other. After every child (killed or not) and for every
run it carried, `Loop.check` verifies:

- no acknowledged row lost: every sequence a child journaled after ``append`` returned
  is in the store with the same state, the log is dense, and rows never change;
  a log may only vanish as a whole, and only when the run had reached its exit state or
  rolled back completely (the clear at the end of a run);
- no state before the resume point re-run: a child's first effect is in the state of the
  last row of the log its resume loaded (a resumed stepped task at its last committed
  cursor), which extends the log the parent saw after the kill, and it never runs an
  effect in an earlier state; every effect ran after its state's row was acknowledged;
  states run in order, none skipped; the retried task runs attempt 1, then 2;
- no stray compensation: compensations run only in a run that fails, only after its
  failure, and are exactly (a prefix of, if killed meanwhile) the completion rows of the
  log at resume plus the steps this child completed, newest first;
- a run that ended left no log behind (cleared on success and after a clean rollback),
  and it ended as designed: ``DONE``, or a ``StateFailure`` at FINISH; a resume is never
  refused;
- SQLite: ``PRAGMA integrity_check`` is ``ok`` on a copy of the file and its WAL as the
  killed child left them (the copy keeps the next child's crash recovery intact).

The seed is printed (and named in every failure message); rerun with
``CANO_DSL_KILL_SEED=<seed>`` to replay the same draws (rounds, failing runs, kill
delays, the children's pacing; where exactly a kill lands also depends on the machine).
``CANO_DSL_SOAK=1`` runs a long soak (1000 kills per store), ``CANO_DSL_SOAK=<n>`` runs
``n`` kills per store (the test's timeout grows to match; add ``-s`` to see the figures
and ``-o faulthandler_timeout=0`` to spare the stack dump pytest prints after 280 s).

`test_kill_inside_a_group_commit` kills a child that has several runs in flight while its
store's worker thread is held inside a grouped transaction, rows inserted and not yet
committed (the write lock held), then resumes every run from another process.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().with_name("kill_driver.py")
PG_ENV = "CANO_DSL_TEST_POSTGRES_DSN"
SEED_ENV = "CANO_DSL_KILL_SEED"
SOAK_ENV = "CANO_DSL_SOAK"
CI_KILLS = {"sqlite": 50, "postgres": 15}
SOAK_KILLS = 1000
TIMEOUT = 60.0  # a child that takes this long is stuck (generous: a loaded 2-core machine)
# kill delays are drawn from [0, WINDOW) seconds; an uninterrupted child needs about
# 0.1-0.3 s on SQLite, 0.2-0.9 s on PostgreSQL (a commit is a round trip and a server-side
# fsync) on a loaded 2-core machine
WINDOW = {"sqlite": 0.2, "postgres": 0.4}
# the share of kills whose delay counts from the child's "go" (store open) rather than from
# the command: the others can land in the store's open, schema check and first load
GO_SHARE = 0.8

ORDER = ["PREP", "RESERVE", "ITEMS", "PAGES", "FAN", "CHARGE", "FINISH", "DONE"]
RANK = {state: i for i, state in enumerate(ORDER)}
COMPENSATABLE = ("RESERVE", "CHARGE")
COMPLETION, CURSOR = 1, 2  # RowKind values


class Row(NamedTuple):
    seq: int
    state: str
    task_id: str
    blob: bytes | None
    kind: int


# -- the stores, as a fresh process finds them ---------------------------------------------


class SqliteFile:
    """The SQLite file of one test; read through a copy, checked with integrity_check."""

    def __init__(self, path: Path, scratch: Path) -> None:
        self.path = path
        self.scratch = scratch
        self.spec = f"sqlite:{path}"
        self.kind = "sqlite"

    def snapshot(self, wids: list[str]) -> dict[str, list[Row]]:
        rows: dict[str, list[Row]] = {wid: [] for wid in wids}
        if not self.path.exists():
            return rows
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()
        copy = self.scratch / self.path.name
        # the database and its WAL exactly as the dead child left them; no -shm, so the
        # copy is opened the way a process after a crash opens it (WAL recovery)
        for suffix in ("", "-wal"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                shutil.copyfile(src, copy.with_name(copy.name + suffix))
        conn = sqlite3.connect(copy)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
            assert check == [("ok",)], f"integrity_check of {self.path}: {check}"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "cano_checkpoints" not in tables:
                return rows
            for wid in wids:
                rows[wid] = [
                    Row(*r)
                    for r in conn.execute(
                        "SELECT sequence, state, task_id, output_blob, kind "
                        "FROM cano_checkpoints WHERE workflow_id = ? ORDER BY sequence",
                        (wid,),
                    )
                ]
        finally:
            conn.close()
        return rows

    def final_check(self) -> None:
        """integrity_check on the file itself, once every child is gone."""
        conn = sqlite3.connect(self.path)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
        assert check == [("ok",)], f"integrity_check of {self.path}: {check}"

    def lock_is_held(self) -> bool:
        """Whether another connection holds the file's write lock right now."""
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            return True
        finally:
            conn.close()  # also rolls the probe back
        return False


class PgTable:
    """The PostgreSQL table of one test (dropped at the end)."""

    def __init__(self, dsn: str, table: str) -> None:
        import psycopg

        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.table = table
        self.spec = f"postgres:{table}"
        self.kind = "postgres"

    def connect(self) -> Any:
        """A new autocommit connection (a context manager)."""
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True)

    def query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run a read; reconnect once if the shared server dropped this session (other
        tests on a shared server may terminate backends)."""
        import psycopg

        try:
            return self.conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            if not self.conn.broken and not self.conn.closed:
                raise
            self.conn = psycopg.connect(self.dsn, autocommit=True)
            return self.conn.execute(sql, params).fetchall()

    def snapshot(self, wids: list[str]) -> dict[str, list[Row]]:
        import psycopg

        rows: dict[str, list[Row]] = {wid: [] for wid in wids}
        try:
            found = self.query(
                "SELECT workflow_id, sequence, state, task_id, output_blob, kind "
                f"FROM {self.table} WHERE workflow_id = ANY(%s) ORDER BY workflow_id, sequence",
                (wids,),
            )
        except psycopg.errors.UndefinedTable:
            return rows
        for wid, *rest in found:
            seq, state, task_id, blob, kind = rest
            rows[wid].append(Row(seq, state, task_id, None if blob is None else bytes(blob), kind))
        return rows

    def backends(self, app: str) -> list[str]:
        """The states of the server processes of the child whose sessions are ``app``."""
        sql = "SELECT state FROM pg_stat_activity WHERE application_name = %s"
        return [r[0] for r in self.query(sql, (app,))]

    def wait_gone(self, app: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self.backends(app):
            # the server sees the closed socket and rolls back; normally at once
            assert time.monotonic() < deadline, f"the killed child's {app} sessions live on"
            time.sleep(0.01)

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.conn.close()


Store = SqliteFile | PgTable


# -- children --------------------------------------------------------------------------------


class Child:
    """A started driver process that has printed ``ready`` (imports done). Its stdout is
    read unbuffered, line by line, so ``select`` never misses a line already read."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: Path, app: str) -> None:
        self.proc = proc
        self.stderr = stderr
        self.app = app
        self.tag = ""
        self.buf = b""

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.tag = cmd["tag"]
        data = json.dumps(cmd).encode() + b"\n"
        while data:  # an unbuffered pipe may take a long line in pieces
            data = data[os.write(self.proc.stdin.fileno(), data) :]

    def readline(self, timeout: float) -> str:
        """The next line ("" at end of output); fails the test after ``timeout`` s."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                self.kill()
                pytest.fail(f"child {self.tag or self.proc.pid} said nothing for {timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.buf += chunk
        line, sep, self.buf = self.buf.partition(b"\n")
        return (line + sep).decode()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        self.close()

    def report(self) -> dict[str, Any]:
        """The JSON line of a child that exited by itself."""
        assert self.proc.stdout is not None
        out = (self.buf + self.proc.stdout.read()).decode()
        self.proc.wait(timeout=TIMEOUT)
        self.close()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if self.proc.returncode != 0 or not lines:
            pytest.fail(
                f"child {self.tag} failed (rc={self.proc.returncode}): "
                f"{self.stderr.read_text()[-3000:]}"
            )
        report: dict[str, Any] = json.loads(lines[-1])
        return report

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


class Pool:
    """Keeps ``size`` children started ahead of time, so a child's interpreter start-up
    (a few hundred ms) overlaps the previous child's life instead of adding to it."""

    def __init__(self, tmp: Path, env: dict[str, str], app: str, size: int = 2) -> None:
        self.tmp = tmp
        self.env = env
        self.app = app
        self.size = size
        self.spares: deque[Child] = deque()
        self.started = 0
        self._fill()

    def _fill(self) -> None:
        while len(self.spares) < self.size:
            self.started += 1
            err = self.tmp / f"stderr-{self.started}.txt"
            app = f"{self.app}-{self.started}"  # its PostgreSQL sessions' application_name
            with err.open("w") as fh:
                proc = subprocess.Popen(
                    [sys.executable, str(DRIVER)],
                    cwd=ROOT,
                    env={**self.env, "PGAPPNAME": app},
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=fh,
                    bufsize=0,
                )
            self.spares.append(Child(proc, err, app))

    def take(self) -> Child:
        child = self.spares.popleft()
        self._fill()
        line = child.readline(TIMEOUT)
        if line.strip() != "ready":
            child.proc.wait(timeout=TIMEOUT)
            pytest.fail(f"driver did not start: {line!r} {child.stderr.read_text()[-3000:]}")
        return child

    def close(self) -> None:
        while self.spares:
            child = self.spares.popleft()
            child.close()  # EOF on stdin: the spare exits without doing anything
            try:
                child.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()


# -- the journal and the checks --------------------------------------------------------------


class Run:
    """The parent's model of one workflow run."""

    def __init__(self, wid: str, fail: bool) -> None:
        self.id = wid
        self.fail = fail
        self.acked: dict[int, tuple[str, int]] = {}  # acknowledged sequence -> (state, kind)
        self.done = False
        self.ending = False  # a child acknowledged its exit row or finished its rollback
        self.sagas: set[str] = set()  # saga steps whose forward run has happened
        self.undone = False  # a compensation has run
        self.children = 0
        self.outcome: dict[str, Any] | None = None


class Loop:
    """Runs children against one store and checks every run after every child."""

    def __init__(
        self,
        store: Store,
        tmp: Path,
        seed: int,
        *,
        spares: int = 2,
    ) -> None:
        self.store = store
        self.seed = seed
        self.journal = tmp / "journal.jsonl"
        self.journal.touch()
        self.offset = 0
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.pool = Pool(tmp, self.env, f"cano_kill_{uuid.uuid4().hex[:8]}", spares)
        self.last_killed: Child | None = None
        self.rng = random.Random(seed)
        self.children = 0
        self.stats: Counter[str] = Counter()

    def close(self) -> None:
        self.pool.close()

    def new_records(self) -> list[dict[str, Any]]:
        with self.journal.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        self.offset += len(data)
        text = data.decode()
        assert not text or text.endswith("\n"), f"torn journal record: {text[-200:]!r}"
        return [json.loads(line) for line in text.splitlines()]

    def command(
        self,
        runs: list[Run],
        before: dict[str, list[Row]],
        backend: str | None = None,
        **extra: Any,
    ) -> Any:
        self.children += 1
        tag = f"c{self.children}"
        return {
            "tag": tag,
            "store": self.store.spec,
            "journal": str(self.journal),
            "backend": backend or ("asyncio", "trio")[self.children % 2],
            "seed": self.rng.randrange(2**32),
            # SQLite: WAL with synchronous NORMAL or FULL (one fsync per group commit)
            "durability": self.rng.choice(("normal", "full")),
            "runs": [
                {
                    "id": r.id,
                    "mode": "resume" if before[r.id] else "run",
                    "fail": r.fail,
                    "observe": self.rng.random() < 0.5,
                }
                for r in runs
            ],
            **extra,
        }

    def child(self, runs: list[Run], delay: float | None, backend: str | None = None) -> bool:
        """One child for ``runs``, killed after ``delay`` s unless it ends first (None:
        never killed); check every run afterwards. Whether the child was killed."""
        wids = [r.id for r in runs]
        before = self.store.snapshot(wids)
        dead = self.last_killed
        if dead is not None and isinstance(self.store, PgTable) and not all(before.values()):
            # A commit the killed child had sent may still land (its server process has
            # not yet seen the closed socket): a run whose log looks empty is restarted
            # with orchestrate only once that process is gone, or orchestrate would find
            # row 0 taken (the documented refusal, not a fault). A resume needs no wait:
            # it rebuilds from whatever its load returns, which the child journals.
            self.store.wait_gone(dead.app)
            before = self.store.snapshot(wids)
        cmd = self.command(runs, before, backend)
        proc = self.pool.take()
        proc.send(cmd)
        if delay is not None and self.rng.random() < GO_SHARE:
            # count the delay from the moment the store is open (not from the command)
            line = proc.readline(TIMEOUT)
            assert line.strip() == "go", (
                f"seed={self.seed}: child {cmd['tag']} could not open the store: {line!r} "
                f"{proc.stderr.read_text()[-3000:]}"
            )
        killed = False
        report: dict[str, Any] = {"runs": {}}
        try:
            proc.proc.wait(timeout=TIMEOUT if delay is None else delay)
        except subprocess.TimeoutExpired:
            if delay is None:
                proc.kill()
                pytest.fail(f"seed={self.seed}: child {cmd['tag']} stuck for {TIMEOUT} s")
            proc.kill()
            killed = True
        self.last_killed = proc if killed else None
        if not killed:
            report = proc.report()
        self.verify(runs, cmd, before, killed, report)
        return killed

    def verify(
        self,
        runs: list[Run],
        cmd: dict[str, Any],
        before: dict[str, list[Row]],
        killed: bool,
        report: dict[str, Any],
    ) -> None:
        after = self.store.snapshot([r.id for r in runs])
        records = [rec for rec in self.new_records() if rec["c"] == cmd["tag"]]
        modes = {spec["id"]: spec["mode"] for spec in cmd["runs"]}
        for run in runs:
            mine = [rec for rec in records if rec["r"] == run.id]
            self.check(run, cmd, modes[run.id], before[run.id], after[run.id], mine, killed)
            if not killed:
                assert report["runs"].get(run.id) == run.outcome, (
                    f"seed={self.seed} run={run.id}: stdout {report['runs'].get(run.id)} "
                    f"!= journal {run.outcome}"
                )
        self.stats["children"] += 1
        self.stats["kills" if killed else "completed children"] += 1
        self.stats[f"backend {cmd['backend']}"] += 1
        if killed:
            self.stats[f"kills on {cmd['backend']}"] += 1
            self.stats[f"killed {kill_point(records)}"] += 1
            acked = {(r["r"], r["seq"]) for r in records if r["ev"] == "ack"}
            if any(
                (wid, row.seq) not in acked
                for wid in after
                for row in after[wid][len(before[wid]) :]
            ):
                # an append of this child had committed but not returned yet
                self.stats["killed between a commit and its acknowledgement"] += 1

    def check(
        self,
        run: Run,
        cmd: dict[str, Any],
        mode: str,
        before: list[Row],
        after: list[Row],
        recs: list[dict[str, Any]],
        killed: bool,
    ) -> None:
        where = (
            f"seed={self.seed} child={cmd['tag']} ({cmd['backend']}, "
            f"{'killed' if killed else 'exited'}) run={run.id} mode={mode} fail={run.fail}"
        )
        run.children += 1
        acks = [r for r in recs if r["ev"] == "ack"]
        fx = [r for r in recs if r["ev"] == "fx"]
        undos = [(r["state"], r["token"]) for r in recs if r["ev"] == "undo"]
        ends = [r for r in recs if r["ev"] == "end"]
        loads = [r for r in recs if r["ev"] == "load"]
        assert killed or ends, f"{where}: the child exited without ending the run"
        if mode == "resume" and loads:
            # the log this resume was rebuilt from; it extends what the parent saw (with
            # PostgreSQL a killed child's last commit can land after the parent looked)
            loaded = [
                Row(seq, state, task_id, None if blob is None else blob.encode(), kind)
                for seq, state, task_id, kind, blob in loads[0]["rows"]
            ]
            if not loaded and before and run.ending:
                # the killed child's final clear (a DELETE the server had already
                # received) landed after the parent looked: the run is over
                assert not fx and not undos and not acks, f"{where}: ran on an empty log"
                for end in ends:
                    assert "no checkpoint rows" in end.get("message", ""), f"{where}: {end}"
                    run.outcome = {k: v for k, v in end.items() if k not in ("c", "r", "ev")}
                run.done = True
                self.stats["runs whose clear landed after the kill"] += 1
                return
            assert loaded[: len(before)] == before, (
                f"{where}: the resume loaded {loaded}, the parent saw {before}"
            )
            if len(loaded) > len(before):
                self.stats["resumes that found a commit landed after the kill"] += 1
            before = loaded
        elif mode == "resume":
            assert not fx and not undos, f"{where}: effects without a loaded log"
        assert len(ends) <= 1, f"{where}: ended twice: {ends}"
        for a in acks:
            assert a["seq"] not in run.acked, f"{where}: sequence {a['seq']} acknowledged twice"
            run.acked[a["seq"]] = (a["state"], a["kind"])

        # rows are never rewritten, and no acknowledged row is lost
        seqs = [r.seq for r in after]
        assert seqs == list(range(len(after))), f"{where}: log not dense: {seqs}"
        finished = bool(acks) and acks[-1]["state"] == "DONE"
        failed_here = any(e["state"] == "FINISH" and e["fail"] for e in fx)
        expected_undo = self.expected_undo(before, fx)
        rolled_back = run.fail and failed_here and undos == expected_undo
        run.ending = run.ending or finished or rolled_back

        # compensation: only after this run's failure, exactly the recorded steps, LIFO
        if undos:
            assert run.fail and failed_here, f"{where}: stray compensation {undos}"
            first_undo = next(i for i, r in enumerate(recs) if r["ev"] == "undo")
            assert any(r["ev"] == "fx" and r["state"] == "FINISH" for r in recs[:first_undo]), (
                f"{where}: compensation before the failure: {recs}"
            )
        assert undos == expected_undo[: len(undos)], (
            f"{where}: compensations {undos}, expected (a prefix of) {expected_undo}"
        )
        # at-least-once, as documented: figures for what a kill costs
        for e in fx:
            if e["state"] in COMPENSATABLE:
                if e["state"] in run.sagas:
                    self.stats["saga steps run again after a kill"] += 1
                run.sagas.add(e["state"])
        if undos:
            if run.undone:
                self.stats["rollbacks run again after a kill"] += 1
            run.undone = True

        if after or not run.acked:
            assert after[: len(before)] == before, (
                f"{where}: rows changed or vanished:\nbefore {before}\nafter {after}"
            )
            found = {r.seq: (r.state, r.kind) for r in after}
            lost = {s: row for s, row in run.acked.items() if found.get(s) != row}
            assert not lost, (
                f"{where}: acknowledged rows lost (seq: (state, kind)) {lost}; log now {after}"
            )
        else:
            assert finished or rolled_back, (
                f"{where}: the whole log is gone although the run neither reached DONE nor "
                f"rolled back; acknowledged {run.acked}, undos {undos}"
            )
        if ends:
            assert not after, f"{where}: the run ended but its log was not cleared: {after}"

        # effects: each after its state's row, from the resume point on, in order
        start = "PREP" if mode == "run" else before[-1].state
        for e in fx:
            assert run.acked.get(e["seq"], ("?",))[0] == e["state"], (
                f"{where}: effect {e} ran without its state's row acknowledged "
                f"(acknowledged {run.acked})"
            )
        states_run = [e["state"] for e in fx]
        if states_run:
            assert states_run[0] == start, (
                f"{where}: resumed at {start} but the first effect was in {states_run[0]}"
            )
        assert all(RANK[s] >= RANK[start] for s in states_run), (
            f"{where}: a state before the resume point {start} re-ran: {states_run}"
        )
        distinct = [s for i, s in enumerate(states_run) if i == 0 or states_run[i - 1] != s]
        assert all(RANK[b] == RANK[a] + 1 for a, b in itertools.pairwise(distinct)), (
            f"{where}: states out of order or skipped: {distinct}"
        )
        attempts = [e["att"] for e in fx if e["state"] == "PREP"]
        assert attempts == [1, 2][: len(attempts)], f"{where}: PREP attempts {attempts}"
        cursors = [e["cursor"] for e in fx if e["state"] == "PAGES"]
        if cursors:
            first = self.committed_cursor(before) if start == "PAGES" else 0
            assert cursors == list(range(first, first + len(cursors))), (
                f"{where}: PAGES stepped {cursors}; the committed cursor was {first}"
            )

        if ends:
            end = {k: v for k, v in ends[0].items() if k not in ("c", "r", "ev")}
            run.outcome = end
            run.done = True
            if run.fail:
                assert end.get("error") == "StateFailure" and end.get("state") == "FINISH", (
                    f"{where}: a failing run ended with {end}"
                )
                assert end.get("category") == "task_execution", f"{where}: {end}"
                assert undos == expected_undo, f"{where}: rollback {undos} != {expected_undo}"
                self.stats["runs rolled back"] += 1
            else:
                assert end == {"result": "DONE"}, f"{where}: the run ended with {end}"
                self.stats["runs completed"] += 1
            self.stats[f"runs over {run.children} children"] += 1
        elif not after and run.acked:
            # killed after the final clear, before it could journal its end
            run.done = True
            self.stats["runs cleared just before the kill"] += 1

    @staticmethod
    def expected_undo(before: list[Row], fx: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """The rollback this child must run if it fails: the completion rows of the log
        it resumed (except one written by the state it resumes, which re-runs) and the
        saga steps it completed itself, newest first."""
        stack = [
            (r.state, json.loads(r.blob or b"{}")["token"])
            for r in before
            if r.kind == COMPLETION and r.seq != before[-1].seq
        ]
        stack += [(e["state"], e["token"]) for e in fx if e["state"] in COMPENSATABLE]
        return stack[::-1]

    @staticmethod
    def committed_cursor(before: list[Row]) -> int:
        cursors = [r for r in before if r.kind == CURSOR and r.state == "PAGES"]
        return int(json.loads(cursors[-1].blob or b"0")) if cursors else 0


def kill_point(records: list[dict[str, Any]]) -> str:
    """Where a killed child was, by its last journal record."""
    if not any(r["ev"] == "ack" for r in records):
        return "before its first append returned"
    if records[-1]["ev"] == "end":
        return "after a run ended"
    if records[-1]["ev"] in ("start", "load"):
        return "as a run started"
    last = records[-1]
    return f"after {'an effect' if last['ev'] == 'fx' else last['ev']} in {last.get('state')}"


def kill_count(kind: str) -> int:
    soak = os.environ.get(SOAK_ENV, "").strip().lower()
    if not soak or soak in ("0", "false", "no"):
        return CI_KILLS[kind]
    if soak.isdigit() and int(soak) > 1:
        return int(soak)
    return SOAK_KILLS


def seed_of() -> int:
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield SqliteFile(tmp_path / "kill.db", tmp_path / "copy")
        return
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    pg = PgTable(dsn, f"cano_kill_{uuid.uuid4().hex[:10]}")
    try:
        yield pg
    finally:
        pg.close()


# -- the loop ----------------------------------------------------------------------------------


# a soak outlives the suite's 300 s per-test limit: about a second per kill, generously
@pytest.mark.timeout(max(300, 2 * max(kill_count("sqlite"), kill_count("postgres")) + 120))
def test_random_sigkill_loop(store: Store, tmp_path: Path) -> None:
    seed = seed_of()
    kills = kill_count(store.kind)
    print(
        f"\nkill loop on {store.kind}: seed={seed} (replay with {SEED_ENV}={seed}), {kills} kills"
    )
    loop = Loop(store, tmp_path, seed)
    rng = loop.rng
    started = time.monotonic()
    rounds = 0
    try:
        while loop.stats["kills"] < kills:
            rounds += 1
            runs = [
                Run(f"r{rounds}-{i}-{seed % 10000}", fail=rng.random() < 0.3)
                for i in range(rng.choice((1, 1, 2, 3)))
            ]
            streak = 0  # children of this round killed in a row
            while True:
                active = [r for r in runs if not r.done]
                if not active:
                    break
                assert max(r.children for r in active) < 200, f"seed={seed}: no progress"
                # the window widens while every child is killed (a slow, loaded machine),
                # so each round ends, and narrows back once a child has finished
                window = WINDOW[store.kind] * 1.4 ** min(streak, 12)
                streak = streak + 1 if loop.child(active, rng.uniform(0.0, window)) else 0
    finally:
        loop.close()
    if isinstance(store, SqliteFile):
        store.final_check()
    took = time.monotonic() - started
    stats = dict(sorted(loop.stats.items()))
    print(f"kill loop on {store.kind}: seed={seed} rounds={rounds} {took:.1f}s {stats}")
    assert loop.stats["kills"] >= kills
    assert loop.stats["backend trio"] and loop.stats["backend asyncio"]


# -- a kill while the write lock is held inside a group commit ------------------------------


EXPECTED_END = {
    True: {
        "error": "StateFailure",
        "category": "task_execution",
        "message": "finish: the order was rejected",
        "state": "FINISH",
    },
    False: {"result": "DONE"},
}


def held_child(
    loop: Loop, name: str, backend: str
) -> tuple[list[Run], Child, int, Callable[[], None]]:
    """Six fresh runs in a child that holds a grouped transaction: the runs, the child
    (blocked inside the transaction), the rows in it, and the check to run once the
    child is killed. The hold point is drawn from the
    seed; if the runs end before a transaction that large comes (timing), the child's
    report is checked like any other and the first grouped transaction is held instead."""
    hold, rows = loop.rng.randrange(1, 4), loop.rng.choice((2, 2, 3, 4))
    for tries in range(3):
        runs = [Run(f"{name}.{tries}-{i}-{loop.seed % 10000}", fail=i % 3 == 2) for i in range(6)]
        before = loop.store.snapshot([r.id for r in runs])
        cmd = loop.command(runs, before, backend, fast=True, hold=hold, hold_rows=rows)
        child = loop.pool.take()
        child.send(cmd)
        line = child.readline(TIMEOUT)
        if line.strip() == "go":  # the store is open; now wait for the held transaction
            line = child.readline(TIMEOUT)
        if line.startswith("holding"):
            in_txn = int(line.split()[1])
            assert in_txn >= rows

            def verify(runs: list[Run] = runs, cmd: Any = cmd, before: Any = before) -> None:
                loop.verify(runs, cmd, before, True, {"runs": {}})

            return runs, child, in_txn, verify
        child.buf = line.encode() + child.buf  # not a hold: the report line, read back
        loop.verify(runs, cmd, before, False, child.report())
        loop.stats["children that ended before the hold"] += 1
        hold, rows = 0, 2
    pytest.fail(f"seed={loop.seed}: no child ever held a grouped transaction")


def test_kill_inside_a_group_commit(store: Store, tmp_path: Path) -> None:
    """Six runs in one child; after ``hold`` grouped transactions (two or more rows each)
    the store's worker thread blocks inside the next one once ``rows`` rows are in,
    before its commit (SQLite's write lock or PostgreSQL's row locks held, verified from
    outside), and the child is killed there. The lock dies with the child; another
    process then resumes every run: none is refused, no acknowledged row is lost, the
    file is intact. Twice: held on asyncio and resumed on trio, then the other way."""
    seed = seed_of()
    print(f"\ngroup-commit kill on {store.kind}: seed={seed} (replay with {SEED_ENV}={seed})")
    loop = Loop(store, tmp_path, seed, spares=1)
    try:
        for attempt in range(2):
            backends = ("asyncio", "trio")[attempt % 2], ("trio", "asyncio")[attempt % 2]
            runs, child, in_txn, verify = held_child(loop, f"g{attempt}", backends[0])
            time.sleep(0.05)
            if isinstance(store, SqliteFile):
                assert store.lock_is_held(), "the held transaction does not hold the write lock"
            else:
                assert "idle in transaction" in store.backends(child.app)
            child.kill()
            loop.last_killed = child
            verify()
            acked = sum(len(r.acked) for r in runs)
            assert acked > 0, f"seed={seed}: nothing was acknowledged before the hold"
            if isinstance(store, SqliteFile):
                assert not store.lock_is_held(), "the write lock outlived the killed child"
            # at once, one process resumes (or, for a run with no row yet, starts) every run
            # the killed child had not ended (with inline SQLite commits a run can finish
            # before the hold: its appends need no worker thread)
            loop.child([r for r in runs if not r.done], None, backends[1])
            if isinstance(store, PgTable):
                store.wait_gone(child.app)
            assert all(r.done for r in runs), [r.id for r in runs if not r.done]
            assert [r.outcome for r in runs] == [EXPECTED_END[r.fail] for r in runs]
            print(f"attempt {attempt}: killed holding {in_txn} rows, {acked} rows acknowledged")
    finally:
        loop.close()
    print(f"group-commit kill on {store.kind}: {dict(sorted(loop.stats.items()))}")


# -- PostgreSQL: a resume while the killed client's commit is still in flight -------------


@pytest.fixture
def pg_store(tmp_path: Path) -> Iterator[PgTable]:
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: set {PG_ENV}, e.g. by running .ci/postgres.sh")
    pg = PgTable(dsn, f"cano_kill_{uuid.uuid4().hex[:10]}")
    try:
        yield pg
    finally:
        pg.close()
        with pg.connect() as conn:
            conn.execute(f"DROP FUNCTION IF EXISTS {pg.table}_slow()")


SLOW_COMMIT = 3.0  # seconds the server spends in the killed client's COMMIT


@pytest.mark.postgres
def test_resume_while_the_killed_clients_commit_is_in_flight(
    pg_store: PgTable, tmp_path: Path
) -> None:
    """A child is SIGKILLed while the server is still committing its CHARGE entry row (a
    deferred constraint trigger makes that one COMMIT take SLOW_COMMIT seconds, as a slow
    disk or a synchronous standby would); the server finishes the commit after the kill.
    Another child resumes the run at once: it must not be refused and must not
    compensate or clear anything; the run must complete, and no acknowledged row may be
    lost. (The random loop meets this race too, a few times in a few hundred kills, but
    there the resume's load comes after the late commit.)

    Today the resume waits because the store's connect-time migration (``ALTER TABLE
    ... ADD COLUMN IF NOT EXISTS``) needs the table's exclusive lock, which waits for the
    killed client's transaction. Without that wait (the migration skipped when the column
    exists, say) the resume loads the log without the late row, its first append meets
    that row when the commit lands, and the run fails with a checkpoint conflict,
    compensates RESERVE although nothing failed, and clears the log: the claim of issue 8
    item 2 (a session lock the resume waits for) must keep this test green."""
    store = pg_store
    seed = seed_of()
    loop = Loop(store, tmp_path, seed, spares=2)
    try:
        runs = [Run(f"late-{seed % 10000}", fail=False)]
        before = store.snapshot([runs[0].id])
        first = loop.pool.take()
        # the table and a trigger that slows the COMMIT of this child's CHARGE entry row
        with store.connect() as conn:
            conn.execute(
                f"""CREATE TABLE IF NOT EXISTS {store.table} (
                workflow_id text NOT NULL, sequence bigint NOT NULL, state text NOT NULL,
                task_id text NOT NULL, output_blob bytea, kind smallint NOT NULL DEFAULT 0,
                workflow_version bigint NOT NULL DEFAULT 0, PRIMARY KEY (workflow_id, sequence))"""
            )
            conn.execute(
                f"""CREATE FUNCTION {store.table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF current_setting('application_name') = '{first.app}' THEN
                        PERFORM pg_sleep({SLOW_COMMIT});
                    END IF;
                    RETURN NULL;
                END $$"""
            )
            conn.execute(
                f"CREATE CONSTRAINT TRIGGER {store.table}_slow AFTER INSERT ON {store.table} "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "WHEN (NEW.state = 'CHARGE' AND NEW.kind = 0) "
                f"EXECUTE FUNCTION {store.table}_slow()"
            )
        cmd = loop.command(runs, before, "asyncio")
        first.send(cmd)
        deadline = time.monotonic() + TIMEOUT
        sql = (
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND wait_event = 'PgSleep'"
        )
        while not store.query(sql, (first.app,)):
            assert time.monotonic() < deadline, "the child never reached its slow COMMIT"
            time.sleep(0.01)
        first.kill()
        loop.last_killed = first
        loop.verify(runs, cmd, before, True, {"runs": {}})
        assert store.backends(first.app), "the precondition: the commit is still running"
        # at once: another process resumes the run (trio this time)
        loop.child(runs, None, "trio")
        store.wait_gone(first.app)
        assert runs[0].outcome == {"result": "DONE"}
        assert store.snapshot([runs[0].id]) == {runs[0].id: []}
        # the late row was there for the resume: it waited for the commit to land
        assert loop.stats["resumes that found a commit landed after the kill"] == 1
    finally:
        loop.close()
    print(f"\nlate commit: {dict(sorted(loop.stats.items()))}")
