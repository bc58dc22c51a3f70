"""LoggingObserver: cano's TracingObserver events as stdlib log records, at cano's
levels, with the fields in the message and on the record."""

from __future__ import annotations

import enum
import logging

import pytest

from cano_dsl import StateFailure, TaskConfig, Workflow, task
from cano_dsl.observability import LoggingObserver

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    A = enum.auto()
    DONE = enum.auto()


def test_each_hook_logs_its_message_at_its_level(caplog: pytest.LogCaptureFixture) -> None:
    obs = LoggingObserver()
    with caplog.at_level(logging.DEBUG, logger="cano_dsl.observer"):
        obs.on_state_enter("A")
        obs.on_task_start("t")
        obs.on_task_success("t")
        obs.on_task_failure("t", ValueError("bad"))
        obs.on_retry("t", 2)
        obs.on_circuit_open("t")
        obs.on_checkpoint("w", 4)
        obs.on_resume("w", 4)
        obs.on_workflow_timeout(1.2345, 1.0)
        obs.on_cancelled("A")
        obs.on_checkpoint_clear_failed("w", OSError("ro"))
        obs.on_unknown_resume_state("w", 0, "GONE")
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [
        ("DEBUG", "workflow entered state state=A"),
        ("DEBUG", "task started task_id=t"),
        ("INFO", "task succeeded task_id=t"),
        ("ERROR", "task failed task_id=t error=bad"),
        ("WARNING", "task retry task_id=t attempt=2"),
        ("WARNING", "circuit breaker rejected task task_id=t"),
        ("DEBUG", "checkpoint appended workflow_id=w sequence=4"),
        ("INFO", "workflow resumed from checkpoint workflow_id=w sequence=4"),
        ("WARNING", "workflow total timeout exceeded elapsed_ms=1234 limit_ms=1000"),
        ("WARNING", "workflow cancelled state=A"),
        ("WARNING", "checkpoint log clear failed workflow_id=w error=ro"),
        (
            "WARNING",
            "checkpoint row references a state not registered on the current workflow "
            "— dropped from rehydrated path workflow_id=w sequence=0 unknown_state_label=GONE",
        ),
    ]
    retry = caplog.records[4]
    assert retry.cano_event == "task retry"
    assert retry.cano_fields == {"task_id": "t", "attempt": 2}
    assert {r.name for r in caplog.records} == {"cano_dsl.observer"}


def test_disabled_levels_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.cano.quiet")
    obs = LoggingObserver(logger)
    with caplog.at_level(logging.WARNING, logger="test.cano.quiet"):
        obs.on_state_enter("A")
        obs.on_task_success("t")
        obs.on_retry("t", 1)
    assert [r.getMessage() for r in caplog.records] == ["task retry task_id=t attempt=1"]


async def test_a_run_logs_its_path_and_failure(caplog: pytest.LogCaptureFixture) -> None:
    @task(config=TaskConfig().with_fixed_retry(1, 0), name="boom")
    async def boom() -> Step:
        raise ValueError("nope")

    logger = logging.getLogger("test.cano.run")
    wf = (
        Workflow.bare()
        .register(Step.A, boom)
        .add_exit_state(Step.DONE)
        .with_observer(LoggingObserver(logger))
    )
    with caplog.at_level(logging.DEBUG, logger="test.cano.run"), pytest.raises(StateFailure):
        await wf.orchestrate(Step.A)
    assert [r.cano_event for r in caplog.records] == [
        "workflow entered state",
        "task started",
        "task retry",
        "task failed",
    ]
    assert caplog.records[-1].levelno == logging.ERROR
