"""Mistakes a new user makes, and the messages that say what to do instead."""

from __future__ import annotations

import enum
import logging

import pytest

from cano_dsl import ConfigurationError, TaskConfig, Workflow, task
from cano_dsl.workflow import JoinConfig, JoinStrategy


class Step(enum.Enum):
    A = enum.auto()
    B = enum.auto()
    DONE = enum.auto()


@task(config=TaskConfig.minimal(), name="first")
async def first() -> Step:
    return Step.B


@task(config=TaskConfig.minimal(), name="second")
async def second() -> Step:
    return Step.DONE


def flow() -> Workflow[Step]:
    return (
        Workflow.bare().register(Step.A, first).register(Step.B, second).add_exit_state(Step.DONE)
    )


# -- run_sync inside a running loop ----------------------------------------------------------


@pytest.mark.anyio
async def test_run_sync_inside_a_running_loop_says_to_await_orchestrate() -> None:
    with pytest.raises(RuntimeError) as info:
        flow().run_sync(Step.A)
    message = str(info.value)
    assert "run_sync cannot start an event loop inside a running one" in message
    assert "in async code use `await workflow.orchestrate(Step.A)`" in message


def test_run_sync_outside_a_loop_still_runs() -> None:
    assert flow().run_sync(Step.A) is Step.DONE


# -- register(state, [a, b]) ------------------------------------------------------------------


@pytest.mark.parametrize("tasks", [[first, second], (first, second)], ids=["list", "tuple"])
def test_register_with_several_tasks_points_to_register_split(tasks: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        Workflow.bare().register(Step.A, tasks)
    message = info.value.message
    assert message.startswith(f"register(A, ...): got a {type(tasks).__name__} of tasks")
    assert "use register_split(A, [a, b], JoinConfig(JoinStrategy.all(), NEXT_STATE))" in message


def test_register_split_still_takes_a_list() -> None:
    wf = Workflow.bare().register_split(
        Step.A, [first, second], JoinConfig(JoinStrategy.all(), Step.DONE)
    )
    assert wf.entry_kind(Step.A) == "split"


# -- warnings ---------------------------------------------------------------------------------


def test_a_second_registration_replaces_the_first_and_is_logged_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="cano_dsl.workflow"):
        wf = flow().register(Step.A, second)
    replaced = "A was registered twice: first replaced by second"
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.DEBUG, replaced)]
    assert wf.warnings() == [replaced]
    assert wf.run_sync(Step.A) is Step.DONE  # A now runs `second`: the last one wins


def test_validate_logs_warnings_once_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    wf = flow().register(Step.A, second).register(Step.DONE, first)
    with caplog.at_level(logging.WARNING, logger="cano_dsl.workflow"):
        wf.validate()
        wf.validate()  # cached: not logged again
    assert [r.getMessage() for r in caplog.records] == [
        "A was registered twice: first replaced by second",
        "DONE is both registered and an exit state: a run stops when it enters it and its "
        "task never runs",
    ]


def test_a_clean_workflow_has_no_warnings() -> None:
    assert flow().warnings() == []


def test_warnings_do_not_leak_into_an_earlier_builder() -> None:
    base = flow()
    base.register(Step.A, second)
    assert base.warnings() == []
