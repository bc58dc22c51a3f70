"""Rules 2 and 3 under random crash points x random retry failures x random branch writes.

A crash stops the run right after the store committed row k (a BaseException raised from
the store's append, as a process dying there), and a fresh workflow resumes from the
store. Every attempt of every state, in the crashed run and after the resume, must start
from exactly the data the same state started from in an uncrashed reference run (rule 2:
the resume point restores the entry data; rule 3: a retry starts from it too), and the
final data must equal the reference run's.
"""

from __future__ import annotations

import copy
import enum
import tempfile
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import (
    JoinConfig,
    JoinStrategy,
    Resources,
    RetryMode,
    StateFailure,
    TaskConfig,
    Workflow,
    task,
)
from cano_dsl.stores import SqliteCheckpointStore
from cano_dsl.testing import InMemoryCheckpointStore


class S(enum.Enum):
    A = 1
    B = 2
    SPLIT = 3
    C = 4
    D = 5
    DONE = 6


CHAIN = [S.A, S.B, S.SPLIT, S.C, S.D, S.DONE]
RETRY = TaskConfig.default().with_retry(RetryMode.fixed(3, 0.0))


class Crash(BaseException):
    """The process died right after a commit."""


class CrashingStore:
    """Delegates to ``inner``; raises `Crash` after the ``crash_after``-th append."""

    def __init__(self, inner: Any, crash_after: int | None) -> None:
        self.inner = inner
        self.crash_after = crash_after
        self.appends = 0

    async def append(self, wid: str, row: Any) -> None:
        await self.inner.append(wid, row)
        self.appends += 1
        if self.crash_after is not None and self.appends == self.crash_after:
            raise Crash(f"after row {row.sequence}")

    async def load_run(self, wid: str) -> Any:
        return await self.inner.load_run(wid)

    async def clear(self, wid: str) -> None:
        await self.inner.clear(wid)


def build(
    store: Any,
    fails: dict[str, int],
    branch_writes: list[dict[str, int]],
    seen: dict[str, list[Any]],
) -> Workflow[S]:
    """Every state (and split branch) records the data each attempt starts with, writes
    junk, fails its first ``fails[name]`` attempts, then writes its own keys."""
    attempts: dict[str, int] = {}

    def make(name: str, nxt: S) -> Any:
        @task(config=RETRY, name=name)
        async def run(res: Resources, data: dict[str, Any]) -> S:
            seen.setdefault(name, []).append(copy.deepcopy(data))
            attempts[name] = attempts.get(name, 0) + 1
            data["junk"] = attempts[name]
            data["log"].append(f"{name}?")
            if attempts[name] <= fails.get(name, 0):
                raise RuntimeError(f"{name} flaky")
            data.pop("junk")
            data["log"][-1] = name
            data[f"k_{name}"] = len(data["log"])
            return nxt

        return run

    def branch(i: int) -> Any:
        name = f"br{i}"

        @task(config=RETRY, name=name)
        async def run(res: Resources, data: dict[str, Any]) -> S:
            seen.setdefault(name, []).append(copy.deepcopy(data))
            attempts[name] = attempts.get(name, 0) + 1
            data["junk"] = attempts[name]
            if attempts[name] <= fails.get(name, 0):
                raise RuntimeError(f"{name} flaky")
            data.pop("junk")
            data.update(branch_writes[i])
            return S.C

        return run

    return (
        Workflow(Resources())
        .with_run_data(dict)
        .register(S.A, make("A", S.B))
        .register(S.B, make("B", S.SPLIT))
        .register_split(
            S.SPLIT,
            [branch(i) for i in range(len(branch_writes))],
            JoinConfig(JoinStrategy.all(), S.C),
        )
        .register(S.C, make("C", S.D))
        .register(S.D, make("D", S.DONE))
        .add_exit_state(S.DONE)
        .with_checkpoint_store(store)
    )


NAMES = ["A", "B", "C", "D", "br0", "br1", "br2"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int | None, dict[str, int], list[dict[str, int]]]:
    crash_after = draw(st.one_of(st.none(), st.integers(1, 6)))
    fails = {n: draw(st.integers(0, 2)) for n in NAMES}
    keys = draw(st.permutations(["x", "y", "z", "w", "v", "u"]))
    branch_writes = []
    for i in range(3):  # disjoint keys per branch, random values
        mine = keys[2 * i : 2 * i + draw(st.integers(0, 2))]
        branch_writes.append({k: draw(st.integers(-5, 5)) for k in mine})
    return crash_after, fails, branch_writes


async def scenario(
    kind: str,
    crash_after: int | None,
    fails: dict[str, int],
    branch_writes: list[dict[str, int]],
) -> None:
    start = {"log": [], "order": "o-1"}
    reference: dict[str, list[Any]] = {}
    ref = (
        await build(InMemoryCheckpointStore(), {}, branch_writes, reference)
        .with_workflow_id("ref")
        .run(S.A, data=copy.deepcopy(start))
    )
    with tempfile.TemporaryDirectory() as tmp:
        inner: Any = (
            InMemoryCheckpointStore()
            if kind == "memory"
            else SqliteCheckpointStore(Path(tmp) / "p.db")
        )
        seen: dict[str, list[Any]] = {}
        store = CrashingStore(inner, crash_after)
        crashed = False
        try:
            result = (
                await build(store, fails, branch_writes, seen)
                .with_workflow_id("w")
                .run(S.A, data=copy.deepcopy(start))
            )
        except Crash:
            crashed = True
        if crashed:
            # the process is gone: a new one resumes with fresh counters but no failures
            store.crash_after = None
            result = await build(store, {}, branch_writes, seen).resume("w")
        if kind != "memory":
            await inner.aclose()
    assert result.state is S.DONE
    assert result.data == ref.data
    for name, starts in seen.items():
        for got in starts:
            assert got == reference[name][0], (name, got, reference[name][0])


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=25)
@given(case=scenarios())
def test_crash_and_retry_never_change_what_a_state_starts_from(
    kind: str, backend: str, case: tuple[int | None, dict[str, int], list[dict[str, int]]]
) -> None:
    crash_after, fails, branch_writes = case
    try:
        anyio.run(scenario, kind, crash_after, fails, branch_writes, backend=backend)
    except StateFailure as exc:  # pragma: no cover - shown on failure
        raise AssertionError(f"run failed: {exc!r}") from exc
