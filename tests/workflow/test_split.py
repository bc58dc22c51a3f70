"""Split/join (REFERENCE §4): strategies, decision and error texts, early exit,
observer order, per-branch configs, bulkhead, timeouts, validation, outer cancel and
total timeout."""

from __future__ import annotations

import enum
import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cano_dsl import (
    CancellationToken,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    MemoryStore,
    Resources,
    RetryExhausted,
    RetryMode,
    SplitResult,
    StateFailure,
    TaskConfig,
    TaskResult,
    TaskTimeout,
    Workflow,
    WorkflowCancelled,
    WorkflowError,
    WorkflowObserver,
    WorkflowTimeout,
    batch,
    task,
)
from cano_dsl.testing import InMemoryCheckpointStore

pytestmark = pytest.mark.anyio

# a split timeout is a real anyio deadline: keep it tiny
TINY = 0.05


class Step(enum.Enum):
    START = enum.auto()
    SPLIT = enum.auto()
    JOIN = enum.auto()
    AFTER = enum.auto()
    DONE = enum.auto()


async def ticks(n: int) -> None:
    """``n`` scheduling points: a deterministic, wall-clock-free delay."""
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


@task
class Branch:
    """A split branch: ``outcome`` is "ok", "fail" or "hang"; ``delay`` is in ticks."""

    def __init__(
        self,
        idx: int,
        outcome: str = "ok",
        delay: int = 0,
        *,
        label: str = "branch",
        log: list[tuple[str, int]] | None = None,
        cfg: TaskConfig | None = None,
        fail_times: int = 0,
    ) -> None:
        self.idx = idx
        self.outcome = outcome
        self.delay = delay
        self.label = label
        self.log = log if log is not None else []
        self.cfg = cfg if cfg is not None else TaskConfig.minimal()
        self.fail_times = fail_times
        self.calls = 0

    def name(self) -> str:
        return self.label

    def config(self) -> TaskConfig:
        return self.cfg

    async def run_bare(self) -> Step:
        self.calls += 1
        self.log.append(("start", self.idx))
        try:
            await ticks(self.delay)
            if self.outcome == "hang":
                await anyio.sleep_forever()
            if self.outcome == "fail" or self.calls <= self.fail_times:
                raise ValueError(f"b{self.idx} failed")
        except anyio.get_cancelled_exc_class():
            self.log.append(("cancelled", self.idx))
            raise
        self.log.append(("end", self.idx))
        return Step.JOIN


class Rec(WorkflowObserver):
    """Records every hook as a tuple (errors kept as objects)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_state_enter(self, state: str) -> None:
        self.events.append(("enter", state))

    def on_task_start(self, task_id: str) -> None:
        self.events.append(("start", task_id))

    def on_task_success(self, task_id: str) -> None:
        self.events.append(("success", task_id))

    def on_task_failure(self, task_id: str, error: BaseException) -> None:
        self.events.append(("failure", task_id, error))

    def on_retry(self, task_id: str, attempt: int) -> None:
        self.events.append(("retry", task_id, attempt))

    def on_checkpoint(self, workflow_id: str, sequence: int) -> None:
        self.events.append(("checkpoint", workflow_id, sequence))

    def on_cancelled(self, state: str) -> None:
        self.events.append(("cancelled", state))

    def on_workflow_timeout(self, elapsed: float, limit: float) -> None:
        self.events.append(("workflow_timeout", limit))

    def brief(self) -> list[tuple[Any, ...]]:
        """Events with failures reduced to ``(kind, id)``."""
        return [e[:2] if e[0] == "failure" else e for e in self.events]


def branches(spec: str, **kw: Any) -> list[Branch]:
    """``"ok:3 fail:1 hang"`` → one Branch per word (outcome[:delay])."""
    out = []
    for i, word in enumerate(spec.split()):
        outcome, _, delay = word.partition(":")
        out.append(Branch(i, outcome, int(delay or 0), **kw))
    return out


def split_wf(
    tasks: list[Any], cfg: JoinConfig[Step], obs: WorkflowObserver | None = None
) -> Workflow[Step]:
    wf = Workflow.bare().register_split(Step.SPLIT, tasks, cfg).add_exit_state(Step.JOIN)
    return wf.with_observer(obs) if obs is not None else wf


async def split_error(tasks: list[Any], cfg: JoinConfig[Step]) -> StateFailure:
    with pytest.raises(StateFailure) as info:
        await split_wf(tasks, cfg).orchestrate(Step.SPLIT)
    return info.value


def join(strategy: JoinStrategy) -> JoinConfig[Step]:
    return JoinConfig(strategy, Step.JOIN)


# -- value types ----------------------------------------------------------------------


def test_is_satisfied_follows_the_strategy_table() -> None:
    assert JoinStrategy.all().is_satisfied(3, 3)
    assert not JoinStrategy.all().is_satisfied(2, 3)
    assert JoinStrategy.all().is_satisfied(0, 0)
    assert JoinStrategy.any().is_satisfied(1, 3)
    assert not JoinStrategy.any().is_satisfied(0, 0)
    assert JoinStrategy.quorum(2).is_satisfied(2, 3)
    assert not JoinStrategy.quorum(2).is_satisfied(1, 3)
    assert JoinStrategy.quorum(0).is_satisfied(0, 3)
    assert not JoinStrategy.quorum(4).is_satisfied(3, 3)
    assert JoinStrategy.percentage(0.5).is_satisfied(2, 4)
    assert not JoinStrategy.percentage(0.5).is_satisfied(1, 3)  # ceil(1.5) == 2
    assert JoinStrategy.percentage(0.5).is_satisfied(0, 0)
    assert JoinStrategy.partial_results(0).is_satisfied(0, 5)
    assert JoinStrategy.partial_timeout().is_satisfied(1, 9)
    assert not JoinStrategy.partial_timeout().is_satisfied(0, 9)


def test_strategies_print_like_cano() -> None:
    shown = [
        repr(s)
        for s in (
            JoinStrategy.all(),
            JoinStrategy.any(),
            JoinStrategy.quorum(2),
            JoinStrategy.percentage(0.75),
            JoinStrategy.partial_results(3),
            JoinStrategy.partial_timeout(),
        )
    ]
    assert shown == [
        "All",
        "Any",
        "Quorum(2)",
        "Percentage(0.75)",
        "PartialResults(3)",
        "PartialTimeout",
    ]


@pytest.mark.parametrize("p", [0, 0.0, -0.1, 1.0000001, 1.5, math.nan, math.inf])
def test_percentage_out_of_range_is_rejected(p: float) -> None:
    with pytest.raises(ConfigurationError, match=r"requires a finite value in \(0\.0, 1\.0\]"):
        JoinStrategy.percentage(p)


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ConfigurationError):
        JoinStrategy.quorum(-1)
    with pytest.raises(ConfigurationError):
        JoinStrategy.partial_results(-2)


@pytest.mark.parametrize("permits", [0, -3])
def test_bulkhead_must_be_positive(permits: int) -> None:
    with pytest.raises(ConfigurationError, match="bulkhead requires a positive permit count"):
        join(JoinStrategy.all()).with_bulkhead(permits)


def test_join_config_builders_return_new_values() -> None:
    base = join(JoinStrategy.all())
    timed = base.with_timeout(2).with_bulkhead(3).with_join_state(Step.AFTER)
    assert (base.timeout, base.bulkhead, base.join_state) == (None, None, Step.JOIN)
    assert (timed.timeout, timed.bulkhead, timed.join_state) == (2.0, 3, Step.AFTER)
    import datetime

    assert base.with_timeout(datetime.timedelta(milliseconds=250)).timeout == 0.25


def test_split_result_counts() -> None:
    r = SplitResult(successes=[(0, Step.JOIN)], errors=[(2, ValueError())], cancelled=[1, 3])
    assert (r.completed_count(), r.total_count()) == (2, 4)
    assert SplitResult().total_count() == 0


# -- validation -------------------------------------------------------------------------


async def test_partial_timeout_without_timeout_fails_validation_raw() -> None:
    wf = split_wf(branches("ok"), join(JoinStrategy.partial_timeout()))
    with pytest.raises(ConfigurationError, match="requires a timeout"):
        wf.validate()
    with pytest.raises(ConfigurationError, match="requires a timeout") as info:
        await wf.orchestrate(Step.SPLIT)
    assert not isinstance(info.value, StateFailure)


async def test_join_state_must_be_registered_or_exit() -> None:
    wf = (
        Workflow.bare()
        .register_split(Step.SPLIT, branches("ok"), JoinConfig(JoinStrategy.all(), Step.AFTER))
        .add_exit_state(Step.DONE)
    )
    msg = "Split join_state AFTER is neither registered nor an exit state"
    with pytest.raises(ConfigurationError, match=msg):
        wf.validate()
    with pytest.raises(ConfigurationError, match=msg):
        await wf.orchestrate(Step.SPLIT)


def test_register_split_rejects_a_task_class() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean `Branch\(\)`\?"):
        Workflow.bare().register_split(Step.SPLIT, [Branch], join(JoinStrategy.all()))


def test_a_foreign_join_state_is_rejected_at_registration() -> None:
    class Other(enum.Enum):
        X = 1

    with pytest.raises(ConfigurationError, match="join_state <Other.X: 1> is not a member"):
        Workflow.bare().register_split(
            Step.SPLIT, branches("ok"), JoinConfig(JoinStrategy.all(), Other.X)
        )


# -- strategies ------------------------------------------------------------------------


async def test_all_joins_when_every_branch_succeeds() -> None:
    log: list[tuple[str, int]] = []
    assert (
        await split_wf(branches("ok:2 ok ok:5", log=log), join(JoinStrategy.all())).orchestrate(
            Step.SPLIT
        )
        == Step.JOIN
    )
    assert sorted(i for kind, i in log if kind == "end") == [0, 1, 2]


async def test_all_with_no_branches_joins() -> None:
    assert await split_wf([], join(JoinStrategy.all())).orchestrate(Step.SPLIT) == Step.JOIN


async def test_all_waits_for_every_branch_after_a_failure() -> None:
    log: list[tuple[str, int]] = []
    err = await split_error(branches("fail ok:9 ok:3", log=log), join(JoinStrategy.all()))
    assert isinstance(err.error, WorkflowError)
    assert err.error.message == (
        "Join condition not met: 2 of 3 tasks completed successfully, strategy: All; "
        "errors: task 0: b0 failed"
    )
    assert ("end", 1) in log and ("end", 2) in log
    assert err.attempt == 1
    assert err.state == Step.SPLIT and err.path == [Step.SPLIT]
    assert err.category == "workflow"


async def test_any_exits_at_the_first_success_and_cancels_the_rest() -> None:
    log: list[tuple[str, int]] = []
    rec = Rec()
    wf = split_wf(branches("fail:1 ok:4 hang ok:30", log=log), join(JoinStrategy.any()), rec)
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert ("cancelled", 2) in log and ("cancelled", 3) in log
    assert ("end", 3) not in log
    assert rec.brief() == [
        ("enter", "SPLIT"),
        *[("start", f"branch[{i}]") for i in range(4)],
        ("success", "branch[1]"),
        ("failure", "branch[0]"),
        ("enter", "JOIN"),
    ]


async def test_any_fails_when_every_branch_fails() -> None:
    err = await split_error(branches("fail fail:2"), join(JoinStrategy.any()))
    assert err.error.message == (
        "Join condition not met: 0 of 2 tasks completed successfully, strategy: Any; "
        "errors: task 0: b0 failed; task 1: b1 failed"
    )


async def test_any_with_no_branches_fails() -> None:
    err = await split_error([], join(JoinStrategy.any()))
    assert err.error.message == (
        "Join condition not met: 0 of 0 tasks completed successfully, strategy: Any"
    )


async def test_quorum_is_met_despite_a_failure_and_waits_for_all() -> None:
    log: list[tuple[str, int]] = []
    wf = split_wf(branches("ok fail:2 ok:3 ok:20", log=log), join(JoinStrategy.quorum(2)))
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert ("end", 3) in log, "Quorum must not exit early"


async def test_quorum_not_met_lists_the_errors() -> None:
    err = await split_error(branches("ok fail:3 fail:6"), join(JoinStrategy.quorum(2)))
    assert err.error.message == (
        "Join condition not met: 1 of 3 tasks completed successfully, strategy: Quorum(2); "
        "errors: task 1: b1 failed; task 2: b2 failed"
    )


async def test_quorum_zero_accepts_all_failures_and_above_total_never_joins() -> None:
    assert (
        await split_wf(branches("fail fail"), join(JoinStrategy.quorum(0))).orchestrate(Step.SPLIT)
        == Step.JOIN
    )
    err = await split_error(branches("ok ok"), join(JoinStrategy.quorum(3)))
    assert err.error.message == (
        "Join condition not met: 2 of 2 tasks completed successfully, strategy: Quorum(3)"
    )


async def test_percentage_rounds_the_requirement_up() -> None:
    # 75 % of 4 = 3 successes needed
    ok = split_wf(branches("ok ok fail ok"), join(JoinStrategy.percentage(0.75)))
    assert await ok.orchestrate(Step.SPLIT) == Step.JOIN
    err = await split_error(branches("ok fail ok fail:2"), join(JoinStrategy.percentage(0.75)))
    assert err.error.message == (
        "Join condition not met: 2 of 4 tasks completed successfully, "
        "strategy: Percentage(0.75); errors: task 1: b1 failed; task 3: b3 failed"
    )
    # 50 % of 3 = ceil(1.5) = 2
    err = await split_error(branches("ok fail fail:2"), join(JoinStrategy.percentage(0.5)))
    assert err.error.message.startswith("Join condition not met: 1 of 3")
    # 100 % is All
    err = await split_error(branches("ok fail"), join(JoinStrategy.percentage(1.0)))
    assert "strategy: Percentage(1.0)" in err.error.message


async def test_percentage_waits_for_all() -> None:
    log: list[tuple[str, int]] = []
    wf = split_wf(branches("ok ok ok:15", log=log), join(JoinStrategy.percentage(0.5)))
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert ("end", 2) in log


async def test_partial_results_exits_once_the_minimum_succeeded() -> None:
    log: list[tuple[str, int]] = []
    rec = Rec()
    wf = split_wf(
        branches("ok:1 fail:3 ok:6 hang ok:40", log=log), join(JoinStrategy.partial_results(2)), rec
    )
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert ("cancelled", 3) in log and ("cancelled", 4) in log
    assert [e for e in rec.brief() if e[0] in ("success", "failure")] == [
        ("success", "branch[0]"),
        ("success", "branch[2]"),
        ("failure", "branch[1]"),
    ]


async def test_partial_results_counts_successes_only() -> None:
    err = await split_error(
        branches("ok fail:2 fail:4 fail:6"), join(JoinStrategy.partial_results(2))
    )
    assert err.error.message == (
        "Partial results condition not met: 1 completed successfully, 2 required; "
        "errors: task 1: b1 failed; task 2: b2 failed; task 3: b3 failed"
    )


async def test_partial_results_not_met_without_errors_has_no_error_tail() -> None:
    err = await split_error(branches("ok ok"), join(JoinStrategy.partial_results(3)))
    assert (
        err.error.message
        == "Partial results condition not met: 2 completed successfully, 3 required"
    )


async def test_partial_results_zero_exits_at_the_first_completion_of_either_kind() -> None:
    # cano checks the PartialResults threshold after every completion, so a minimum of
    # 0 is met by the first completion, even a failure: the hung branch is cancelled
    # instead of running into the split timeout.
    log: list[tuple[str, int]] = []
    cfg = join(JoinStrategy.partial_results(0)).with_timeout(0.5)
    assert await split_wf(branches("fail hang", log=log), cfg).orchestrate(Step.SPLIT) == Step.JOIN
    assert ("cancelled", 1) in log


async def test_partial_timeout_accepts_failures_as_completions() -> None:
    log: list[tuple[str, int]] = []
    rec = Rec()
    cfg = join(JoinStrategy.partial_timeout()).with_timeout(TINY)
    wf = split_wf(branches("fail fail:2 hang", log=log), cfg, rec)
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert ("cancelled", 2) in log
    assert [e for e in rec.brief() if e[0] in ("success", "failure")] == [
        ("failure", "branch[0]"),
        ("failure", "branch[1]"),
    ]


async def test_partial_timeout_with_nothing_completed_fails() -> None:
    cfg = join(JoinStrategy.partial_timeout()).with_timeout(TINY)
    err = await split_error(branches("hang hang"), cfg)
    assert err.error.message == "PartialTimeout: No tasks completed before timeout"


async def test_partial_timeout_returns_without_waiting_when_all_complete() -> None:
    cfg = join(JoinStrategy.partial_timeout()).with_timeout(60)
    with anyio.fail_after(5):
        assert await split_wf(branches("ok fail:2 ok:1"), cfg).orchestrate(Step.SPLIT) == Step.JOIN


async def test_partial_timeout_with_no_branches_fails() -> None:
    cfg = join(JoinStrategy.partial_timeout()).with_timeout(60)
    err = await split_error([], cfg)
    assert err.error.message == "PartialTimeout: No tasks completed before timeout"


# -- timeouts --------------------------------------------------------------------------


async def test_split_timeout_fails_even_when_a_quorum_was_met() -> None:
    rec = Rec()
    log: list[tuple[str, int]] = []
    cfg = join(JoinStrategy.quorum(2)).with_timeout(TINY)
    wf = split_wf(branches("ok ok:2 hang", log=log), cfg, rec)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.SPLIT)
    assert isinstance(info.value.error, WorkflowError)
    # the error names the limit and the branch still running
    assert info.value.error.message == (
        "Split task timeout exceeded (0.05 s); still running: branch[2]"
    )
    assert info.value.attempt == 1
    assert ("cancelled", 2) in log
    # the split returns before reporting branch outcomes, like cano
    assert [e[0] for e in rec.events] == ["enter", "start", "start", "start"]


@pytest.mark.parametrize(
    "strategy",
    [
        JoinStrategy.all(),
        JoinStrategy.any(),
        JoinStrategy.percentage(0.1),
        JoinStrategy.partial_results(1),
    ],
    ids=repr,
)
async def test_split_timeout_is_an_error_for_every_other_strategy(strategy: JoinStrategy) -> None:
    err = await split_error(branches("fail hang"), join(strategy).with_timeout(TINY))
    assert err.error.message == "Split task timeout exceeded (0.05 s); still running: branch[1]"


async def test_bulkhead_queued_branches_count_toward_the_timeout() -> None:
    # one permit: the hung branch holds it, the fast one never starts
    log: list[tuple[str, int]] = []
    cfg = join(JoinStrategy.partial_timeout()).with_timeout(TINY).with_bulkhead(1)
    err = await split_error(branches("hang hang hang", log=log), cfg)
    assert err.error.message == "PartialTimeout: No tasks completed before timeout"
    assert [kind for kind, _ in log] == ["start", "cancelled"]


async def test_branch_finishing_late_without_yielding_is_not_a_timeout() -> None:
    import time

    @task
    class Blocking:
        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run_bare(self) -> Step:
            time.sleep(TINY * 2)  # overrun the deadline, no checkpoint
            return Step.JOIN

    cfg = join(JoinStrategy.all()).with_timeout(TINY)
    assert await split_wf([Blocking()], cfg).orchestrate(Step.SPLIT) == Step.JOIN


# -- error summary -----------------------------------------------------------------------


async def test_error_summary_lists_three_errors_then_a_count() -> None:
    err = await split_error(branches("fail:12 fail:9 fail:6 fail:3 fail"), join(JoinStrategy.all()))
    assert err.error.message == (
        "Join condition not met: 0 of 5 tasks completed successfully, strategy: All; "
        "errors: task 4: b4 failed; task 3: b3 failed; task 2: b2 failed; "
        "... and 2 more error(s)"
    )


async def test_error_summary_shows_retry_exhausted_and_timeouts() -> None:
    @task
    class Slow:
        def config(self) -> TaskConfig:
            return TaskConfig.minimal().with_attempt_timeout(0.01)

        async def run_bare(self) -> Step:
            await anyio.sleep_forever()
            raise AssertionError

    retried = Branch(0, "fail", cfg=TaskConfig.minimal().with_retry(RetryMode.fixed(1, 0)))
    err = await split_error([retried, Slow()], join(JoinStrategy.all()))
    assert err.error.message == (
        "Join condition not met: 0 of 2 tasks completed successfully, strategy: All; "
        "errors: task 0: Retry exhausted after 2 attempt(s): b0 failed; "
        "task 1: Timeout error: task attempt exceeded attempt_timeout"
    ) or err.error.message == (
        "Join condition not met: 0 of 2 tasks completed successfully, strategy: All; "
        "errors: task 1: Timeout error: task attempt exceeded attempt_timeout; "
        "task 0: Retry exhausted after 2 attempt(s): b0 failed"
    )


# -- observers, ids, configs ---------------------------------------------------------------


async def test_observer_order_enter_starts_successes_failures() -> None:
    rec = Rec()
    wf = (
        Workflow.bare()
        .register_split(
            Step.SPLIT, branches("fail:1 ok:4 fail:7 ok:10"), join(JoinStrategy.quorum(1))
        )
        .add_exit_state(Step.JOIN)
        .with_observer(rec)
    )
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert rec.brief() == [
        ("enter", "SPLIT"),
        ("start", "branch[0]"),
        ("start", "branch[1]"),
        ("start", "branch[2]"),
        ("start", "branch[3]"),
        ("success", "branch[1]"),
        ("success", "branch[3]"),
        ("failure", "branch[0]"),
        ("failure", "branch[2]"),
        ("enter", "JOIN"),
    ]
    failures = [e for e in rec.events if e[0] == "failure"]
    assert all(isinstance(e[2], ValueError) for e in failures)


async def test_branch_ids_use_each_task_name_and_index() -> None:
    @task
    class Plain:
        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run_bare(self) -> Step:
            return Step.JOIN

    rec = Rec()
    tasks = [Branch(0, label="fetch"), Plain(), Branch(2, label="fetch")]
    await split_wf(tasks, join(JoinStrategy.all()), rec).orchestrate(Step.SPLIT)
    starts = [e[1] for e in rec.events if e[0] == "start"]
    assert starts == ["fetch[0]", f"{Plain.__module__}.{Plain.__qualname__}[1]", "fetch[2]"]


async def test_each_branch_keeps_its_own_retry_config() -> None:
    rec = Rec()
    flaky = Branch(0, fail_times=2, cfg=TaskConfig.minimal().with_fixed_retry(4, 0))
    once = Branch(1, fail_times=1)  # minimal: one attempt
    wf = split_wf([flaky, once], join(JoinStrategy.quorum(1)), rec)
    assert await wf.orchestrate(Step.SPLIT) == Step.JOIN
    assert (flaky.calls, once.calls) == (3, 1)
    assert [e for e in rec.events if e[0] == "retry"] == [
        ("retry", "branch[0]", 1),
        ("retry", "branch[0]", 2),
    ]
    failures = [e for e in rec.events if e[0] == "failure"]
    assert [(e[1], str(e[2])) for e in failures] == [("branch[1]", "b1 failed")]


async def test_multi_attempt_branch_failure_reports_retry_exhausted() -> None:
    rec = Rec()
    b = Branch(0, "fail", cfg=TaskConfig.minimal().with_fixed_retry(2, 0))
    with pytest.raises(StateFailure):
        await split_wf([b], join(JoinStrategy.all()), rec).orchestrate(Step.SPLIT)
    (failure,) = [e for e in rec.events if e[0] == "failure"]
    assert isinstance(failure[2], RetryExhausted) and failure[2].attempts == 3


async def test_branch_return_values_are_ignored() -> None:
    @task
    class Odd:
        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run_bare(self) -> TaskResult[Step]:
            return TaskResult.split([Step.DONE, Step.AFTER])

    assert (
        await split_wf([Odd(), Odd()], join(JoinStrategy.all())).orchestrate(Step.SPLIT)
        == Step.JOIN
    )


async def test_branches_share_data_through_resources_and_the_join_state_aggregates() -> None:
    store = MemoryStore()

    @task
    class Write:
        def __init__(self, key: str) -> None:
            self.key = key

        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run(self, res: Resources) -> Step:
            res.get("store", MemoryStore).put(self.key, self.key.upper())
            return Step.JOIN

    @task
    async def aggregate(res: Resources) -> Step:
        s = res.get("store", MemoryStore)
        s.put("all", sorted(s.get(k) for k in ("a", "b", "c")))
        return Step.DONE

    wf = (
        Workflow(Resources().insert("store", store))
        .register_split(Step.SPLIT, [Write("a"), Write("b"), Write("c")], join(JoinStrategy.all()))
        .register(Step.JOIN, aggregate)
        .add_exit_state(Step.DONE)
    )
    assert await wf.orchestrate(Step.SPLIT) == Step.DONE
    assert store.get("all") == ["A", "B", "C"]


async def test_any_companion_model_can_be_a_branch() -> None:
    seen: list[list[int]] = []

    @batch
    class Doubler:
        concurrency = 2

        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def load(self, res: Resources) -> list[int]:
            return [1, 2, 3]

        async def process_item(self, item: int) -> int:
            return item * 2

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            seen.append([o.unwrap() for o in outputs])
            return Step.JOIN

    await split_wf([Doubler(), Doubler()], join(JoinStrategy.all())).orchestrate(Step.SPLIT)
    assert seen == [[2, 4, 6], [2, 4, 6]]


async def test_split_writes_one_checkpoint_row_with_an_empty_task_id() -> None:
    store = InMemoryCheckpointStore()

    @task(config=TaskConfig.minimal())
    async def broken() -> Step:
        raise RuntimeError("keep the log")

    wf = (
        Workflow.bare()
        .register_split(Step.SPLIT, branches("ok ok ok"), join(JoinStrategy.all()))
        .register(Step.JOIN, broken)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("split-run")
    )
    with pytest.raises(StateFailure):
        await wf.orchestrate(Step.SPLIT)
    rows = store.rows("split-run")
    assert [(r.sequence, r.state, r.task_id) for r in rows] == [
        (0, "SPLIT", ""),
        (1, "JOIN", broken.name()),
    ]


# -- bulkhead ------------------------------------------------------------------------------


@pytest.mark.parametrize("permits", [1, 2, 3])
async def test_bulkhead_caps_branches_in_flight(permits: int) -> None:
    live = 0
    peak = 0

    @task
    class Probe:
        def __init__(self, delay: int) -> None:
            self.delay = delay

        def config(self) -> TaskConfig:
            return TaskConfig.minimal()

        async def run_bare(self) -> Step:
            nonlocal live, peak
            live += 1
            peak = max(peak, live)
            try:
                await ticks(self.delay)
            finally:
                live -= 1
            return Step.JOIN

    tasks = [Probe(d) for d in (5, 1, 3, 8, 2, 2, 6, 1, 4, 3)]
    cfg = join(JoinStrategy.all()).with_bulkhead(permits)
    assert await split_wf(tasks, cfg).orchestrate(Step.SPLIT) == Step.JOIN
    assert peak == permits


# -- outer cancel and total timeout ---------------------------------------------------------


async def test_outer_cancel_fails_every_branch_then_reports_cancelled() -> None:
    rec = Rec()
    log: list[tuple[str, int]] = []
    token = CancellationToken()
    tasks = branches("hang ok hang", log=log)
    wf = split_wf(tasks, join(JoinStrategy.all()), rec)

    async def cancel_when_started() -> None:
        while sum(1 for kind, _ in log if kind == "start") < 3:
            await anyio.lowlevel.checkpoint()
        token.cancel()

    failure: StateFailure | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_when_started)
        try:
            await wf.orchestrate(Step.SPLIT, cancel=token)
        except StateFailure as exc:
            failure = exc
    assert failure is not None
    assert isinstance(failure.error, WorkflowCancelled)
    assert failure.attempt == 0
    assert rec.brief() == [
        ("enter", "SPLIT"),
        ("start", "branch[0]"),
        ("start", "branch[1]"),
        ("start", "branch[2]"),
        ("failure", "branch[0]"),
        ("failure", "branch[1]"),
        ("failure", "branch[2]"),
        ("cancelled", "SPLIT"),
    ]
    assert all(isinstance(e[2], WorkflowCancelled) for e in rec.events if e[0] == "failure")
    # nothing is left running: both hung branches saw their cancellation
    assert ("cancelled", 0) in log and ("cancelled", 2) in log


async def test_total_timeout_fails_every_branch_then_reports_the_timeout() -> None:
    rec = Rec()
    log: list[tuple[str, int]] = []
    wf = split_wf(branches("hang hang", log=log), join(JoinStrategy.all()), rec).with_total_timeout(
        TINY
    )
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.SPLIT)
    assert isinstance(info.value.error, WorkflowTimeout)
    assert info.value.attempt == 0
    assert rec.brief() == [
        ("enter", "SPLIT"),
        ("start", "branch[0]"),
        ("start", "branch[1]"),
        ("failure", "branch[0]"),
        ("failure", "branch[1]"),
        ("workflow_timeout", TINY),
    ]
    assert ("cancelled", 0) in log and ("cancelled", 1) in log


async def test_enclosing_scope_cancel_reports_every_branch_once() -> None:
    rec = Rec()
    log: list[tuple[str, int]] = []
    wf = split_wf(branches("hang hang", log=log), join(JoinStrategy.all()), rec)
    with anyio.move_on_after(TINY):
        await wf.orchestrate(Step.SPLIT)
    assert rec.brief() == [
        ("enter", "SPLIT"),
        ("start", "branch[0]"),
        ("start", "branch[1]"),
        ("failure", "branch[0]"),
        ("failure", "branch[1]"),
        ("cancelled", "SPLIT"),
    ]
    assert ("cancelled", 0) in log and ("cancelled", 1) in log


async def test_pre_cancelled_token_starts_no_branch() -> None:
    log: list[tuple[str, int]] = []
    token = CancellationToken()
    token.cancel()
    with pytest.raises(StateFailure) as info:
        await split_wf(branches("ok ok", log=log), join(JoinStrategy.all())).orchestrate(
            Step.SPLIT, cancel=token
        )
    assert isinstance(info.value.error, WorkflowCancelled)
    assert info.value.path == []
    assert log == []


def test_timeouts_are_task_timeouts() -> None:
    # the error class raised by attempt timeouts in branches (see the summary test)
    assert issubclass(TaskTimeout, TimeoutError)
