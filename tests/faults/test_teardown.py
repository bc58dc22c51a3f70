"""A hanging teardown never holds a run forever (issue 8, item 4).

Each resource's ``teardown`` is bounded by ``Workflow.with_teardown_timeout`` (default
30 s): an overrun is cancelled, abandoned, logged and reported to observers, and the
other resources are still torn down. A ``KeyboardInterrupt`` / ``SystemExit`` raised
by one teardown propagates only after the others ran.

The hanging teardowns below sleep for ``HANG`` seconds rather than forever, so that the
code before the fix (teardown shielded with no limit) fails these tests instead of
hanging them; the bounds asserted are a few seconds wide, far below ``HANG`` and far
above the configured limits, so load cannot flip them.
"""

from __future__ import annotations

import datetime
import enum
import logging
import math
from typing import Any

import anyio
import pytest

from cano_dsl import (
    ConfigurationError,
    Resources,
    Scheduler,
    StateFailure,
    TaskConfig,
    Workflow,
    WorkflowObserver,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio

HANG = 8.0  # how long a "hanging" teardown would take if nothing stopped it
LIMIT = 0.2  # the teardown bound the tests configure
SLACK = 4.0  # generous: a loaded 2-core machine, yet well below HANG


class Step(enum.Enum):
    WORK = enum.auto()
    DONE = enum.auto()


class Key(enum.Enum):
    CACHE = enum.auto()


class Tracked:
    """A resource that records its lifecycle in a shared journal."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        hang: bool = False,
        swallow: bool = False,
        raises: BaseException | None = None,
        setup_error: Exception | None = None,
    ) -> None:
        self.name = name
        self.journal = journal
        self.hang = hang
        self.swallow = swallow
        self.raises = raises
        self.setup_error = setup_error

    async def setup(self) -> None:
        if self.setup_error is not None:
            raise self.setup_error
        self.journal.append(f"setup {self.name}")

    async def teardown(self) -> None:
        if self.raises is not None:
            self.journal.append(f"raise {self.name}")
            raise self.raises
        if self.hang:
            try:
                await anyio.sleep(HANG)
            except anyio.get_cancelled_exc_class():
                self.journal.append(f"abandoned {self.name}")
                if self.swallow:  # a badly behaved teardown: returns as if it finished
                    return
                raise
        self.journal.append(f"teardown {self.name}")


class TeardownWatch(WorkflowObserver):
    def __init__(self) -> None:
        self.overruns: list[tuple[str, float]] = []

    def on_teardown_timeout(self, resource: str, limit: float) -> None:
        self.overruns.append((resource, limit))


@task(state=Step, config=TaskConfig.minimal())
class Quick:
    async def run(self, res: Resources) -> Step:
        return Step.DONE


@task(state=Step, config=TaskConfig.minimal())
class Forever:
    async def run(self, res: Resources) -> Step:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def three(journal: list[str], **middle: Any) -> Resources:
    """``first`` / middle (``Key.CACHE``) / ``last``: torn down last, middle, first."""
    return (
        Resources()
        .insert("first", Tracked("first", journal))
        .insert(Key.CACHE, Tracked("cache", journal, **middle))
        .insert("last", Tracked("last", journal))
    )


def torn_down(journal: list[str]) -> list[str]:
    return [e for e in journal if not e.startswith("setup ")]


async def test_hanging_teardown_is_abandoned_after_a_total_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    watch = TeardownWatch()
    wf = (
        Workflow(three(journal, hang=True))
        .register(Step.WORK, Forever())
        .add_exit_state(Step.DONE)
        .with_total_timeout(0.2)
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    with (
        caplog.at_level(logging.ERROR, logger="cano_dsl.resources"),
        pytest.raises(StateFailure) as info,
    ):
        await wf.orchestrate(Step.WORK)
    elapsed = anyio.current_time() - started
    assert info.value.category == "workflow_timeout"
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]
    assert watch.overruns == [("Key.CACHE", LIMIT)]
    assert elapsed < 0.2 + LIMIT + SLACK, elapsed
    messages = [r.getMessage() for r in caplog.records]
    assert any("teardown" in m and "Key.CACHE" in m for m in messages), messages


async def test_enclosing_cancel_scope_is_honoured_despite_a_hanging_teardown() -> None:
    journal: list[str] = []
    watch = TeardownWatch()
    wf = (
        Workflow(three(journal, hang=True))
        .register(Step.WORK, Forever())
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(datetime.timedelta(seconds=LIMIT))
        .with_observer(watch)
    )
    started = anyio.current_time()
    with anyio.move_on_after(0.2) as scope:
        await wf.orchestrate(Step.WORK)
    elapsed = anyio.current_time() - started
    assert scope.cancelled_caught
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]
    assert watch.overruns == [("Key.CACHE", LIMIT)]
    assert elapsed < 0.2 + LIMIT + SLACK, elapsed


async def test_a_successful_run_abandons_a_hanging_teardown_too() -> None:
    journal: list[str] = []
    watch = TeardownWatch()
    wf = (
        Workflow(three(journal, hang=True))
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    assert await wf.orchestrate(Step.WORK) is Step.DONE
    assert anyio.current_time() - started < LIMIT + SLACK
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]
    assert watch.overruns == [("Key.CACHE", LIMIT)]


async def test_setup_rollback_bounds_each_teardown() -> None:
    journal: list[str] = []
    res = (
        Resources()
        .insert("first", Tracked("first", journal))
        .insert("stuck", Tracked("stuck", journal, hang=True))
        .insert("broken", Tracked("broken", journal, setup_error=OSError("no db")))
    )
    watch = TeardownWatch()
    wf = (
        Workflow(res)
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    with pytest.raises(OSError, match="no db"):
        await wf.orchestrate(Step.WORK)
    assert anyio.current_time() - started < LIMIT + SLACK
    assert torn_down(journal) == ["abandoned stuck", "teardown first"]
    assert watch.overruns == [("stuck", LIMIT)]


async def test_resume_from_bounds_teardown() -> None:
    journal: list[str] = []
    watch = TeardownWatch()
    wf = (
        Workflow(three(journal, hang=True))
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(InMemoryCheckpointStore())
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    with pytest.raises(Exception, match="no checkpoint rows"):
        await wf.resume_from("never-ran")
    assert anyio.current_time() - started < LIMIT + SLACK
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]
    assert watch.overruns == [("Key.CACHE", LIMIT)]


async def test_scheduler_shutdown_bounds_each_teardown() -> None:
    journal: list[str] = []
    watch = TeardownWatch()
    wf = (
        Workflow(three(journal, hang=True))
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    async with Scheduler().manual("adhoc", wf, Step.WORK).start():
        pass
    assert anyio.current_time() - started < LIMIT + SLACK
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]
    assert watch.overruns == [("Key.CACHE", LIMIT)]


async def test_a_teardown_that_swallows_its_cancellation_is_still_reported() -> None:
    journal: list[str] = []
    res = (
        Resources()
        .insert("first", Tracked("first", journal))
        .insert("rude", Tracked("rude", journal, hang=True, swallow=True))
        .insert("stuck", Tracked("stuck", journal, hang=True))
        .insert("last", Tracked("last", journal))
    )
    watch = TeardownWatch()
    wf = (
        Workflow(res)
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
        .with_teardown_timeout(LIMIT)
        .with_observer(watch)
    )
    started = anyio.current_time()
    assert await wf.orchestrate(Step.WORK) is Step.DONE
    assert anyio.current_time() - started < 2 * LIMIT + SLACK
    assert torn_down(journal) == [
        "teardown last",
        "abandoned stuck",
        "abandoned rude",
        "teardown first",
    ]
    assert watch.overruns == [("stuck", LIMIT), ("rude", LIMIT)]


async def test_resources_teardown_all_keeps_working_without_arguments() -> None:
    journal: list[str] = []
    res = three(journal)
    await res.setup_all()
    await res.teardown_all()
    assert torn_down(journal) == ["teardown last", "teardown cache", "teardown first"]


async def test_resources_teardown_all_takes_a_bound() -> None:
    journal: list[str] = []
    res = three(journal, hang=True)
    started = anyio.current_time()
    await res.teardown_all(LIMIT)
    assert anyio.current_time() - started < LIMIT + SLACK
    assert torn_down(journal) == ["teardown last", "abandoned cache", "teardown first"]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_interrupt_in_one_teardown_lets_the_others_run_first(
    exc_type: type[BaseException],
) -> None:
    journal: list[str] = []
    wf = (
        Workflow(three(journal, raises=exc_type()))
        .register(Step.WORK, Quick())
        .add_exit_state(Step.DONE)
    )
    with pytest.raises(exc_type):
        await wf.orchestrate(Step.WORK)
    assert torn_down(journal) == ["teardown last", "raise cache", "teardown first"]


async def test_interrupt_in_teardown_all_lets_the_others_run_first() -> None:
    journal: list[str] = []
    res = three(journal, raises=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        await res.teardown_all()
    assert torn_down(journal) == ["teardown last", "raise cache", "teardown first"]


async def test_failing_teardown_is_logged_with_its_key_and_the_rest_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal: list[str] = []
    res = three(journal, raises=RuntimeError("disk gone"))
    with caplog.at_level(logging.ERROR, logger="cano_dsl.resources"):
        await res.teardown_all()
    assert torn_down(journal) == ["teardown last", "raise cache", "teardown first"]
    assert any("Key.CACHE" in r.getMessage() for r in caplog.records)


def test_default_teardown_timeout_is_30_seconds() -> None:
    assert Workflow.bare()._teardown_timeout == 30.0


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -1, float("nan"), math.inf, -math.inf, True, "3", datetime.timedelta(0)],
    ids=repr,
)
def test_with_teardown_timeout_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="teardown timeout"):
        Workflow.bare().with_teardown_timeout(value)


@pytest.mark.parametrize("value", [0, -2, float("nan"), math.inf, "1"], ids=repr)
async def test_teardown_all_rejects_bad_bounds(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="teardown timeout"):
        await Resources().teardown_all(value)


def test_with_teardown_timeout_accepts_seconds_timedelta_and_none() -> None:
    wf = Workflow.bare()
    assert wf.with_teardown_timeout(2)._teardown_timeout == 2.0
    assert wf.with_teardown_timeout(datetime.timedelta(milliseconds=1500))._teardown_timeout == 1.5
    assert wf.with_teardown_timeout(None)._teardown_timeout is None
    assert wf._teardown_timeout == 30.0  # the receiver is unchanged
