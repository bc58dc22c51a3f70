"""`Workflow.resume_from` (REFERENCE §9.4): preflight errors, rehydration, re-run rules."""

from __future__ import annotations

import enum
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    CheckpointStoreError,
    ConfigurationError,
    Resources,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowError,
    WorkflowVersionMismatch,
    compensatable,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore, RecordingObserver, assert_compensation_ran

pytestmark = pytest.mark.anyio

MINIMAL = TaskConfig.minimal()


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    C = enum.auto()
    D = enum.auto()
    FAIL = enum.auto()
    DONE = enum.auto()


class Crash(BaseException):
    """Stands in for a killed process: not an Exception, so nothing catches it, nothing
    is compensated and the log stays as it was."""


class Counts:
    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.undone: list[Any] = []

    def hit(self, name: str) -> None:
        self.runs[name] = self.runs.get(name, 0) + 1


def plain(counts: Counts, name: str, nxt: Step, *, crash: bool = False) -> Any:
    @task(config=MINIMAL, name=name)
    async def run(res: Resources) -> Step:
        counts.hit(name)
        if crash:
            raise Crash(name)
        return nxt

    return run


def boom(counts: Counts, name: str = "boom") -> Any:
    @task(config=MINIMAL, name=name)
    async def run(res: Resources) -> Step:
        counts.hit(name)
        raise RuntimeError("boom")

    return run


def saga_step(counts: Counts, name: str, nxt: Step, *, crash: bool = False) -> Any:
    @compensatable(state=Step, config=MINIMAL, name=name)
    class Step_:
        async def run(self, res: Resources) -> tuple[Step, dict[str, Any]]:
            counts.hit(name)
            if crash:
                raise Crash(name)
            return nxt, {"step": name, "run": counts.runs[name]}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            counts.undone.append((output["step"], output["run"]))

    return Step_()


def base(store: Any) -> Workflow[Step]:
    return Workflow.bare().add_exit_state(Step.DONE).with_checkpoint_store(store)


async def crash_run(wf: Workflow[Step], initial: Step = Step.A) -> None:
    with pytest.raises(Crash):
        await wf.orchestrate(initial)


# -- preflight ------------------------------------------------------------------------


async def test_no_store_is_a_raw_configuration_error() -> None:
    wf = Workflow.bare().register(Step.A, plain(Counts(), "a", Step.DONE)).add_exit_state(Step.DONE)
    with pytest.raises(ConfigurationError, match="requires a checkpoint store"):
        await wf.resume_from("x")


async def test_validation_error_is_raw(store: Any) -> None:
    wf = (
        Workflow.bare()
        .register(Step.A, plain(Counts(), "a", Step.DONE))
        .with_checkpoint_store(store)
    )
    with pytest.raises(ConfigurationError, match="no exit states"):
        await wf.resume_from("x")


async def test_unknown_id_is_a_raw_no_rows_error(store: Any) -> None:
    wf = base(store).register(Step.A, plain(Counts(), "a", Step.DONE))
    with pytest.raises(CheckpointStoreError) as info:
        await wf.resume_from("nobody")
    assert type(info.value) is CheckpointStoreError
    assert info.value.message == "no checkpoint rows for workflow id nobody"


async def test_load_failure_is_raw_and_resources_are_torn_down() -> None:
    events: list[str] = []

    class Db:
        async def setup(self) -> None:
            events.append("setup")

        async def teardown(self) -> None:
            events.append("teardown")

    class Broken(InMemoryCheckpointStore):
        async def load_run(self, workflow_id: str) -> list[CheckpointRow]:
            raise OSError("disk on fire")

    wf = (
        Workflow(Resources().insert("db", Db()))
        .register(Step.A, plain(Counts(), "a", Step.DONE))
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(Broken())
    )
    with pytest.raises(CheckpointStoreError) as info:
        await wf.resume_from("w")
    assert info.value.message == "load checkpoint run w: disk on fire"
    assert events == ["setup", "teardown"]


async def test_version_mismatch_on_the_last_row_is_raw(store: Any) -> None:
    counts = Counts()
    v1 = base(store).register(Step.A, plain(counts, "a", Step.B, crash=True)).with_workflow_id("v")
    await crash_run(v1.with_workflow_version(1))
    v2 = base(store).register(Step.A, plain(counts, "a", Step.DONE)).with_workflow_version(2)
    with pytest.raises(WorkflowVersionMismatch) as info:
        await v2.resume_from("v")
    assert (info.value.stored, info.value.expected) == (1, 2)
    assert counts.runs == {"a": 1}
    assert len(await store.load_run("v")) == 1


async def test_only_the_last_rows_version_is_checked(store: Any) -> None:
    await store.append("mixed", CheckpointRow(0, "A", "a", workflow_version=1))
    await store.append("mixed", CheckpointRow(1, "B", "b", workflow_version=2))
    counts = Counts()
    wf = base(store).register(Step.B, plain(counts, "b", Step.DONE)).with_workflow_version(2)
    assert await wf.resume_from("mixed") is Step.DONE


async def test_legacy_row_at_version_zero_is_refused_by_a_version_one_workflow(
    tmp_path: Path,
) -> None:
    from cano_dsl.stores import SqliteCheckpointStore

    path = tmp_path / "legacy.db"
    async with SqliteCheckpointStore(path) as store:
        await store.load_run("init")  # creates the schema
    # a row written the old way: no workflow_version column value at all
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO cano_checkpoints (workflow_id, sequence, state, task_id, output_blob, "
            "kind) VALUES ('old', 0, 'A', 'a', NULL, 0)"
        )
    counts = Counts()
    async with SqliteCheckpointStore(path) as store:
        wf = base(store).register(Step.A, plain(counts, "a", Step.DONE))
        with pytest.raises(WorkflowVersionMismatch) as info:
            await wf.with_workflow_version(1).resume_from("old")
        assert (info.value.stored, info.value.expected) == (0, 1)
        assert counts.runs == {}
        # under the default version 0 the legacy row resumes
        assert await wf.resume_from("old") is Step.DONE
        assert counts.runs == {"a": 1}


async def test_unknown_label_of_the_last_row_is_a_raw_workflow_error(store: Any) -> None:
    await store.append("ghost", CheckpointRow(0, "RENAMED", "x"))
    wf = base(store).register(Step.A, plain(Counts(), "a", Step.DONE))
    with pytest.raises(WorkflowError) as info:
        await wf.resume_from("ghost")
    assert type(info.value) is WorkflowError
    assert "checkpoint state RENAMED is not a registered or exit state" in info.value.message


async def test_a_different_workflow_id_is_a_raw_configuration_error(store: Any) -> None:
    await store.append("mine", CheckpointRow(0, "A", "a"))
    wf = base(store).register(Step.A, plain(Counts(), "a", Step.DONE)).with_workflow_id("other")
    with pytest.raises(ConfigurationError, match="with_workflow_id"):
        await wf.resume_from("mine")
    # the same id is fine
    assert await wf.with_workflow_id("mine").resume_from("mine") is Step.DONE


# -- re-run rules ------------------------------------------------------------------------


async def test_states_before_the_crash_never_rerun_and_the_crashed_state_does(store: Any) -> None:
    counts = Counts()
    wf = (
        base(store)
        .register(Step.A, plain(counts, "a", Step.B))
        .register(Step.B, plain(counts, "b", Step.C))
        .register(Step.C, plain(counts, "c", Step.DONE, crash=True))
        .with_workflow_id("rerun")
    )
    await crash_run(wf)
    fixed = wf.register(Step.C, plain(counts, "c", Step.DONE))
    obs = RecordingObserver()
    assert await fixed.with_observer(obs).resume_from("rerun") is Step.DONE
    assert counts.runs == {"a": 1, "b": 1, "c": 2}
    obs.assert_path(["C", "DONE"])
    assert await store.load_run("rerun") == []


async def test_resume_appends_after_the_last_row(store: Any) -> None:
    counts = Counts()
    wf = (
        base(store)
        .register(Step.A, plain(counts, "a", Step.B))
        .register(Step.B, plain(counts, "b", Step.DONE, crash=True))
        .with_workflow_id("seq")
    )
    await crash_run(wf)
    seen: list[int] = []
    resumed: list[tuple[str, int]] = []

    class Spy:
        def on_checkpoint(self, wid: str, seq: int) -> None:
            seen.append(seq)

        def on_resume(self, wid: str, last: int) -> None:
            resumed.append((wid, last))

    await wf.register(Step.B, plain(counts, "b", Step.DONE)).with_observer(Spy()).resume_from("seq")
    assert resumed == [("seq", 1)]
    assert seen == [2, 3]


async def test_path_after_resume_includes_the_pre_crash_states(store: Any) -> None:
    counts = Counts()
    wf = (
        base(store)
        .register(Step.A, plain(counts, "a", Step.B))
        .register(Step.B, plain(counts, "b", Step.C, crash=True))
        .with_workflow_id("path")
    )
    await crash_run(wf)
    later = wf.register(Step.B, plain(counts, "b", Step.C)).register(Step.C, boom(counts))
    with pytest.raises(StateFailure) as info:
        await later.resume_from("path")
    assert info.value.path == [Step.A, Step.B, Step.C]
    assert info.value.state is Step.C


async def test_unknown_earlier_labels_are_dropped_and_reported(store: Any) -> None:
    await store.append("old", CheckpointRow(0, "GONE", "x"))
    await store.append("old", CheckpointRow(1, "A", "a"))
    reported: list[tuple[str, int, str]] = []

    class Spy:
        def on_unknown_resume_state(self, wid: str, seq: int, label: str) -> None:
            reported.append((wid, seq, label))

    counts = Counts()
    wf = base(store).register(Step.A, boom(counts)).with_observer(Spy())
    with pytest.raises(StateFailure) as info:
        await wf.resume_from("old")
    assert reported == [("old", 0, "GONE")]
    assert info.value.path == [Step.A]


async def test_pre_cancelled_token_does_not_rerun_the_task(store: Any) -> None:
    counts = Counts()
    wf = (
        base(store)
        .register(Step.A, plain(counts, "a", Step.DONE, crash=True))
        .with_workflow_id("pre")
    )
    await crash_run(wf)
    token = CancellationToken()
    token.cancel()
    with pytest.raises(StateFailure) as info:
        await wf.resume_from("pre", cancel=token)
    assert info.value.category == "cancelled"
    assert counts.runs == {"a": 1}
    assert len(await store.load_run("pre")) == 1


async def test_resuming_into_an_exit_state_clears_and_returns_it(store: Any) -> None:
    await store.append("fin", CheckpointRow(0, "A", "a"))
    await store.append("fin", CheckpointRow(1, "DONE", ""))
    counts = Counts()
    wf = base(store).register(Step.A, plain(counts, "a", Step.DONE))
    seen: list[int] = []

    class Spy:
        def on_checkpoint(self, wid: str, seq: int) -> None:
            seen.append(seq)

    assert await wf.with_observer(Spy()).resume_from("fin") is Step.DONE
    assert counts.runs == {}
    assert seen == [2]
    assert await store.load_run("fin") == []


async def test_resume_gets_a_fresh_total_timeout_budget(store: Any) -> None:
    def sleeper(seconds: float, crash: bool) -> Any:
        @task(config=MINIMAL, name="slow")
        async def slow(res: Resources) -> Step:
            await anyio.sleep(seconds)
            if crash:
                raise Crash("slow")
            return Step.DONE

        return slow

    # Each run alone stays far inside the budget (margins of 1.2 s and 1.5 s for a loaded
    # machine); together they overrun it, so a budget carried over from the crashed run
    # would fail the resume. Load only lengthens the sum, which keeps the check sharp.
    # The store connects first, so no connection set-up is spent inside the budget.
    if hasattr(store, "open"):
        await store.open()
    wf = base(store).with_workflow_id("budget").with_total_timeout(3.0)
    await crash_run(wf.register(Step.A, sleeper(1.8, crash=True)))
    # 1.8 s spent before the crash + 1.5 s now > 3.0 s, but the budget starts afresh
    assert await wf.register(Step.A, sleeper(1.5, crash=False)).resume_from("budget") is Step.DONE


# -- saga rehydration -------------------------------------------------------------------


async def test_resume_then_advance_then_fail_compensates_both_processes_lifo(store: Any) -> None:
    counts = Counts()
    first = (
        base(store)
        .register_with_compensation(Step.A, saga_step(counts, "a", Step.B))
        .register_with_compensation(Step.B, saga_step(counts, "b", Step.C))
        .register_with_compensation(Step.C, saga_step(counts, "c", Step.D, crash=True))
        .register(Step.D, boom(counts))
        .with_workflow_id("mixed")
    )
    await crash_run(first)
    second = first.register_with_compensation(Step.C, saga_step(counts, "c", Step.D))
    with pytest.raises(StateFailure) as info:
        await second.resume_from("mixed")
    assert info.value.state is Step.D
    assert_compensation_ran(counts.undone, [("c", 2), ("b", 1), ("a", 1)])
    assert await store.load_run("mixed") == []  # clean rollback


async def test_resumed_states_own_completion_row_is_not_compensated_twice(store: Any) -> None:
    # crash after C's completion row, before the next state's row
    await store.append("own", CheckpointRow(0, "A", "a"))
    await store.append("own", CheckpointRow(1, "A", "a").with_output(b'{"step":"a","run":1}'))
    await store.append("own", CheckpointRow(2, "C", "c"))
    await store.append("own", CheckpointRow(3, "C", "c").with_output(b'{"step":"c","run":1}'))
    counts = Counts()
    wf = (
        base(store)
        .register_with_compensation(Step.A, saga_step(counts, "a", Step.C))
        .register_with_compensation(Step.C, saga_step(counts, "c", Step.D))
        .register(Step.D, boom(counts))
    )
    with pytest.raises(StateFailure):
        await wf.resume_from("own")
    assert counts.runs == {"c": 1, "boom": 1}
    assert_compensation_ran(counts.undone, [("c", 1), ("a", 1)])


async def test_rehydrated_blob_reaches_compensate_decoded(store: Any) -> None:
    blob = json.dumps({"step": "a", "run": 41}).encode()
    await store.append("blob", CheckpointRow(0, "A", "a"))
    await store.append("blob", CheckpointRow(1, "A", "a").with_output(blob))
    await store.append("blob", CheckpointRow(2, "D", "boom"))
    counts = Counts()
    wf = (
        base(store)
        .register_with_compensation(Step.A, saga_step(counts, "a", Step.D))
        .register(Step.D, boom(counts))
    )
    with pytest.raises(StateFailure):
        await wf.resume_from("blob")
    assert counts.undone == [("a", 41)]
    assert "a" not in counts.runs
