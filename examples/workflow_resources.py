"""Four kinds of resource in one workflow, keyed by an Enum.

    python examples/workflow_resources.py

Port of cano's ``workflow_resources`` example (which uses the redb embedded database;
this one uses SQLite from the standard library):

- `MemoryStore`: scratch space handed from task to task;
- ``Counter``: a resource with ``setup``/``teardown`` hooks, counting its setups;
- ``ResultsDb``: a SQLite file opened (and its table created) in ``setup``, closed
  and deleted in ``teardown``; its blocking calls run in a worker thread, off the
  event loop;
- ``Params``: plain settings, no hooks at all.

INIT -> PROCESS -> PERSIST -> VERIFY -> DONE: INIT derives a value from the params,
PROCESS adds the counter's setup count, PERSIST commits the result to SQLite in a
transaction, VERIFY reads it back on a fresh query. The workflow sets every resource
up before the first state and tears them down (in reverse order) after the last.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import tempfile
from pathlib import Path

import anyio
import anyio.to_thread
import attrs

from cano_dsl import MemoryStore, Resources, Workflow, resource, task


class Key(enum.Enum):
    STORE = enum.auto()
    COUNTER = enum.auto()
    PARAMS = enum.auto()
    DB = enum.auto()


class Step(enum.Enum):
    INIT = enum.auto()
    PROCESS = enum.auto()
    PERSIST = enum.auto()
    VERIFY = enum.auto()
    DONE = enum.auto()


@resource
class Counter:
    def __init__(self) -> None:
        self.setups = 0
        self.teardowns = 0

    async def setup(self) -> None:
        self.setups += 1
        print("  counter: setup")

    async def teardown(self) -> None:
        self.teardowns += 1
        print("  counter: teardown")


@resource
class ResultsDb:
    """One SQLite file holding ``results(name TEXT PRIMARY KEY, value INTEGER)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results (name TEXT PRIMARY KEY, value INTEGER)"
            )
        return conn

    async def setup(self) -> None:
        self.conn = await anyio.to_thread.run_sync(self._open)
        print(f"  db: opened {self.path.name}")

    async def teardown(self) -> None:
        if self.conn is not None:
            await anyio.to_thread.run_sync(self.conn.close)
            self.conn = None
        self.path.unlink(missing_ok=True)
        print(f"  db: closed and removed {self.path.name}")

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("ResultsDb used before setup")
        return self.conn

    async def save(self, name: str, value: int) -> None:
        def write() -> None:
            with self._connection() as conn:  # one transaction, committed on exit
                conn.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (name, value))

        await anyio.to_thread.run_sync(write)

    async def load(self, name: str) -> int:
        def read() -> int:
            row = (
                self._connection()
                .execute("SELECT value FROM results WHERE name = ?", (name,))
                .fetchone()
            )
            if row is None:
                raise KeyError(f"{name} is not in the results table")
            return int(row[0])

        return await anyio.to_thread.run_sync(read)


@attrs.frozen
class Params:
    multiplier: int


@task(state=Step)
class Init:
    async def run(self, res: Resources) -> Step:
        value = 10 * res.get(Key.PARAMS, Params).multiplier
        res.get(Key.STORE, MemoryStore).put("value", value)
        print(f"  INIT: value = 10 x multiplier = {value}")
        return Step.PROCESS


@task(state=Step)
class Process:
    async def run(self, res: Resources) -> Step:
        store = res.get(Key.STORE, MemoryStore)
        result = store.get("value", int) + res.get(Key.COUNTER, Counter).setups
        store.put("result", result)
        print(f"  PROCESS: value + setup count = {result}")
        return Step.PERSIST


@task(state=Step)
class Persist:
    async def run(self, res: Resources) -> Step:
        result = res.get(Key.STORE, MemoryStore).get("result", int)
        await res.get(Key.DB, ResultsDb).save("final_result", result)
        print(f"  PERSIST: committed final_result = {result}")
        return Step.VERIFY


@task(state=Step)
class Verify:
    async def run(self, res: Resources) -> Step:
        value = await res.get(Key.DB, ResultsDb).load("final_result")
        res.get(Key.STORE, MemoryStore).put("verified", value)
        print(f"  VERIFY: read back final_result = {value}")
        return Step.DONE


async def main() -> None:
    store = MemoryStore()
    counter = Counter()
    fd, name = tempfile.mkstemp(prefix="cano_workflow_resources_", suffix=".sqlite3")
    os.close(fd)
    db_path = Path(name)
    res = (
        Resources()
        .insert(Key.STORE, store)
        .insert(Key.COUNTER, counter)
        .insert(Key.PARAMS, Params(multiplier=3))
        .insert(Key.DB, ResultsDb(db_path))
    )
    wf = (
        Workflow(res)
        .register(Step.INIT, Init())
        .register(Step.PROCESS, Process())
        .register(Step.PERSIST, Persist())
        .register(Step.VERIFY, Verify())
        .add_exit_state(Step.DONE)
    )
    print("running:")
    final = await wf.orchestrate(Step.INIT)
    print(f"\nfinal state: {final.name}")
    print(f"in-memory result: {store.get('result', int)}, read back: {store.get('verified', int)}")
    print(f"counter set up {counter.setups} time(s), torn down {counter.teardowns} time(s)")
    print(f"database file still on disk: {db_path.exists()}")


if __name__ == "__main__":
    anyio.run(main)
