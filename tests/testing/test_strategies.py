"""`cano_dsl.testing.strategies`: the runner applies plans faithfully (faults, crashes,
delays) on asyncio and trio, and every checker passes on a sound workflow and fails on
a deliberately broken one."""

from __future__ import annotations

import enum
import sys
import time
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cano_dsl import (
    CircuitBreaker,
    ConfigurationError,
    JoinConfig,
    JoinStrategy,
    Resources,
    RetryExhausted,
    StateFailure,
    TaskConfig,
    Workflow,
    batch,
    compensatable,
    router,
    task,
)
from cano_dsl.stores import RowKind
from cano_dsl.testing import InMemoryCheckpointStore
from cano_dsl.testing.strategies import (
    Cancel,
    Crash,
    Delay,
    Fault,
    History,
    Plan,
    assert_batch_order,
    assert_compensation_lifo,
    assert_effects_once,
    assert_join_consistent,
    assert_prefix_never_rerun,
    assert_retries_within_policy,
    assert_terminates,
    cancel_points,
    crash_points,
    effect,
    fault_plans,
    plans,
    run_plan,
    run_plan_sync,
    timings,
    workflow_property,
    workflow_settings,
)

pytestmark = pytest.mark.anyio


# -- workflows under test ---------------------------------------------------------------


class Pay(enum.Enum):
    RESERVE = 1
    CHARGE = 2
    SHIP = 3
    DONE = 4


def saga(*, idempotent_refund: bool = True, ship_fails: bool = False) -> Workflow[Pay]:
    """An order saga whose effects are marked; the refund is idempotent (a ledger of
    refunded transactions) unless told otherwise."""
    ledger: set[str] = set()

    @compensatable(state=Pay, config=TaskConfig.minimal(), name="reserve")
    class Reserve:
        async def run(self, res: Resources) -> tuple[Pay, dict[str, Any]]:
            effect("reserve", "o-1")
            return Pay.CHARGE, {"hold": "h-1"}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            effect("release", output["hold"])

    @compensatable(state=Pay, config=TaskConfig().with_fixed_retry(2, 1.0), name="charge")
    class Charge:
        async def run(self, res: Resources) -> tuple[Pay, dict[str, Any]]:
            effect("charge", "o-1")
            return Pay.SHIP, {"txn": "t-1"}

        async def compensate(self, res: Resources, output: dict[str, Any]) -> None:
            if idempotent_refund and output["txn"] in ledger:
                return
            ledger.add(output["txn"])
            effect("refund", output["txn"])

    @task(config=TaskConfig.minimal(), name="ship")
    async def ship(res: Resources) -> Pay:
        if ship_fails:
            raise RuntimeError("carrier down")
        effect("ship", "o-1")
        return Pay.DONE

    return (
        Workflow(Resources())
        .register_with_compensation(Pay.RESERVE, Reserve())
        .register_with_compensation(Pay.CHARGE, Charge())
        .register(Pay.SHIP, ship)
        .add_exit_state(Pay.DONE)
    )


class Fan(enum.Enum):
    SPLIT = 1
    BATCH = 2
    DONE = 3


def fan_out(strategy: JoinStrategy, *, write_in_process: bool = False) -> Workflow[Fan]:
    """A split of three branches, then a batch of five items with concurrency 5 whose
    results are written (an effect) in ``finish``, or as each item completes."""

    def branch(i: int) -> Any:
        @task(config=TaskConfig.minimal(), name=f"b{i}")
        async def b(res: Resources) -> Fan:
            effect("branch", i)
            return Fan.BATCH

        return b

    @batch(state=Fan, config=TaskConfig.minimal(), name="square")
    class Square:
        concurrency = 5

        async def load(self, res: Resources) -> list[int]:
            return [10, 11, 12, 13, 14]

        async def process_item(self, item: int) -> int:
            if write_in_process:
                effect("written", item)
            return item * item

        async def finish(self, res: Resources, outputs: list[Any]) -> Fan:
            if not write_in_process:
                for item, _out in zip([10, 11, 12, 13, 14], outputs, strict=True):
                    effect("written", item)
            return Fan.DONE

    return (
        Workflow(Resources())
        .register_split(Fan.SPLIT, [branch(i) for i in range(3)], JoinConfig(strategy, Fan.BATCH))
        .register(Fan.BATCH, Square())
        .add_exit_state(Fan.DONE)
    )


# -- plans and strategies ---------------------------------------------------------------


def test_plan_describes_itself_readably() -> None:
    plan = Plan(
        [Fault("CHARGE", 1, "error"), Fault(Pay.SHIP, 2, "slow", seconds=5)],
        [Crash("row", 4), Crash("attempt", state="SHIP", attempt=1, when="after")],
        [Delay("SPLIT", 1, 3.0)],
    )
    text = plan.describe()
    assert "state CHARGE attempt 1 raised ConnectionError" in text
    assert "state SHIP attempt 2 took 5s of virtual time" in text
    assert "run: crash after checkpoint row 4" in text
    assert "resume 1: crash after the body of SHIP's attempt 1" in text
    assert Plan().describe() == "no faults, no crash"


def test_bad_fault_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Fault kind must be one of"):
        Fault("X", 1, "explode")
    with pytest.raises(ConfigurationError, match="1-based"):
        Fault("X", 0, "error")


@workflow_settings(max_examples=30)
@given(data=st.data())
def test_strategies_draw_only_states_of_the_workflow(data: st.DataObject) -> None:
    wf = fan_out(JoinStrategy.all())
    plan = data.draw(plans(wf, crashes=2))
    assert len(plan.crashes) <= 2
    for f in plan.faults:
        assert f.state in {"SPLIT", "BATCH"}
        assert (f.branch is not None) == (f.state == "SPLIT")
    for d in data.draw(timings(wf)):
        assert d.state in {"SPLIT", "BATCH"} and d.seconds > 0
    saga_wf = saga()
    for f in data.draw(fault_plans(saga_wf)):
        assert f.state in {"RESERVE", "CHARGE", "SHIP"}
    for k in data.draw(cancel_points(saga_wf, segments=2)):
        assert k.state in {"RESERVE", "CHARGE", "SHIP"} and k.segment in (0, 1)
    for c in data.draw(crash_points(saga_wf, max_crashes=3)):
        assert c.where in {"row", "attempt", "compensation"}
        if c.where == "compensation":
            assert c.state in {"RESERVE", "CHARGE"}


def test_missing_hypothesis_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r"cano-dsl\[test\]"):
        plans(saga())


# -- the runner -------------------------------------------------------------------------


async def test_no_plan_runs_like_orchestrate_and_leaves_the_workflow_alone() -> None:
    wf = saga()
    entries = dict(wf._entries)
    history = await run_plan(wf, Pay.RESERVE)
    assert history.completed and history.final.result == "DONE"
    assert history.final.states_entered() == ["RESERVE", "CHARGE", "SHIP", "DONE"]
    assert [e.name for e in history.effects] == [
        "reserve",
        "run:reserve",
        "charge",
        "run:charge",
        "ship",
    ]
    assert wf._entries == entries and wf._store is None and not wf._observers
    assert await wf.orchestrate(Pay.RESERVE) is Pay.DONE


async def test_faults_raise_the_planned_errors() -> None:
    wf = saga()
    retried = await run_plan(wf, Pay.RESERVE, Plan([Fault("CHARGE", 1, "error")]))
    assert retried.completed
    assert [(a.attempt, a.outcome) for a in retried.attempts if a.state == "CHARGE"] == [
        (1, "error"),
        (2, "ok"),
    ]
    fatal = await run_plan(wf, Pay.RESERVE, Plan([Fault("CHARGE", 1, "fatal")]))
    err = fatal.final.error
    assert isinstance(err, StateFailure) and isinstance(err.__cause__ or err.source, Exception)
    assert [a.outcome for a in fatal.attempts if a.state == "CHARGE"] == ["error"] * 3
    assert "RetryExhausted" in repr(err) or isinstance(err.source, RetryExhausted)
    with pytest.raises(ConfigurationError, match="CHARGE has no circuit breaker"):
        await run_plan(wf, Pay.RESERVE, Plan([Fault("CHARGE", 1, "circuit_open")]))
    limited = await run_plan(wf, Pay.RESERVE, Plan([Fault("SHIP", 1, "rate_limited")]))
    assert [a.error for a in limited.attempts if a.state == "SHIP"] == ["RateLimited"]
    timed = await run_plan(wf, Pay.RESERVE, Plan([Fault("SHIP", 1, "timeout")]))
    assert [a.error for a in timed.attempts if a.state == "SHIP"] == ["TaskTimeout"]
    # the failed SHIP rolled back both steps
    assert [e.name for e in timed.effects if e.name.startswith("compensate:")] == [
        "compensate:charge",
        "compensate:reserve",
    ]


async def test_an_open_breaker_refuses_before_the_attempt_and_stops_the_retries() -> None:
    breaker = CircuitBreaker()

    @task(config=TaskConfig().with_fixed_retry(3, 0).with_circuit_breaker(breaker), name="call")
    async def call(res: Resources) -> Loop:
        effect("called")
        return Loop.DONE

    wf = Workflow(Resources()).register(Loop.POLL, call).add_exit_state(Loop.DONE)
    history = await run_plan(wf, Loop.POLL, Plan([Fault("POLL", 2, "circuit_open")]))
    assert [(a.attempt, a.outcome) for a in history.attempts] == [(1, "ok")]  # never reached
    refused = await run_plan(wf, Loop.POLL, Plan([Fault("POLL", 1, "circuit_open")]))
    assert [(a.attempt, a.outcome) for a in refused.attempts] == [(1, "refused")]
    assert refused.effect_count("called") == 0  # refused before the body: no retry either
    assert "Circuit open" in str(refused.final.error)
    flaky = await run_plan(
        wf, Loop.POLL, Plan([Fault("POLL", 1, "error"), Fault("POLL", 2, "circuit_open")])
    )
    assert [(a.attempt, a.outcome) for a in flaky.attempts] == [(1, "error"), (2, "refused")]
    assert flaky.final.outcome == "error"


async def test_slow_attempts_cost_virtual_time_only() -> None:
    started = time.monotonic()
    history = await run_plan(saga(), Pay.RESERVE, Plan([Fault("SHIP", 1, "slow", seconds=3600)]))
    assert history.completed
    assert history.final.ended_at >= 3600
    assert time.monotonic() - started < 60  # an hour of virtual time, seconds of wall time


async def test_crash_after_a_row_keeps_exactly_the_committed_rows_and_runs_no_compensation() -> (
    None
):
    store = InMemoryCheckpointStore()
    plan = Plan([Fault("SHIP", 1, "fatal")], [Crash("row", 3)])
    history = await run_plan(saga(), Pay.RESERVE, plan, store=store, max_resumes=0)
    seg = history.final
    assert seg.outcome == "crash"
    # RESERVE entry, RESERVE completion, CHARGE entry, CHARGE completion: rows 0..3
    assert [(r.sequence, r.state, r.kind) for r in seg.rows_after] == [
        (0, "RESERVE", RowKind.STATE_ENTRY),
        (1, "RESERVE", RowKind.COMPENSATION_COMPLETION),
        (2, "CHARGE", RowKind.STATE_ENTRY),
        (3, "CHARGE", RowKind.COMPENSATION_COMPLETION),
    ]
    assert not [s for s in history.steps if s.kind == "compensate"]


async def test_resume_after_a_crash_finishes_the_run() -> None:
    plan = Plan([], [Crash("row", 2), Crash("attempt", state="SHIP", when="before")])
    history = await run_plan(saga(), Pay.RESERVE, plan)
    assert [s.outcome for s in history.segments] == ["crash", "crash", "exit"]
    assert history.segments[1].states_entered()[0] == "CHARGE"
    assert history.segments[2].states_entered() == ["SHIP", "DONE"]
    assert history.segments[2].rows_after == []  # the exit cleared the log
    assert_prefix_never_rerun(history)
    assert_terminates(history)


async def test_crash_after_an_attempt_body_reruns_that_state_on_resume() -> None:
    plan = Plan([], [Crash("attempt", state="CHARGE", when="after")])
    history = await run_plan(saga(), Pay.RESERVE, plan)
    assert history.completed
    assert history.effect_count("charge") == 2  # the documented at-least-once window
    with pytest.raises(AssertionError, match=r"effect 'charge' \(key 'o-1'\) happened 2 times"):
        assert_effects_once(history, "charge")
    assert_prefix_never_rerun(history)


async def test_a_cancellation_from_outside_cuts_the_run_and_rolls_back() -> None:
    cut = await run_plan(saga(), Pay.RESERVE, Plan(cancels=[Cancel("SHIP", 1)]))
    err = cut.final.error
    assert isinstance(err, StateFailure) and "cancelled" in str(err).lower()
    assert cut.effect_count("ship") == 0  # cut before its body
    assert [e.name for e in cut.effects if e.name.startswith("compensate:")] == [
        "compensate:charge",
        "compensate:reserve",
    ]
    assert_compensation_lifo(cut)
    # a compensatable step is never cut: the charge completes, the run stops after it
    late = await run_plan(saga(), Pay.RESERVE, Plan(cancels=[Cancel("CHARGE", 1)]))
    assert late.effect_count("charge") == 1 and late.effect_count("refund") == 1
    assert late.final.states_entered() == ["RESERVE", "CHARGE"]
    # in a resume: the first run dies, the resume is cancelled
    resumed = await run_plan(
        saga(), Pay.RESERVE, Plan([], [Crash("row", 4)], [], [Cancel("SHIP", 1, segment=1)])
    )
    assert [s.outcome for s in resumed.segments] == ["crash", "error"]
    assert "cancelled as SHIP's attempt 1 started (resume 1)" in resumed.plan.describe()


async def test_delays_decide_the_completion_order() -> None:
    wf = fan_out(JoinStrategy.all())
    plan = Plan(
        delays=[Delay("SPLIT", 0, 3.0), Delay("SPLIT", 1, 1.0), Delay("SPLIT", 2, 2.0)]
        + [Delay("BATCH", i, 5.0 - i) for i in range(5)]
    )
    history = await run_plan(wf, Fan.SPLIT, plan)
    assert history.completed
    assert history.splits[0].completed == [1, 2, 0]
    assert history.batches[0].completed == [4, 3, 2, 1, 0]
    assert_batch_order(history)
    assert_batch_order(history, Fan.BATCH, effect="written")
    assert_join_consistent(history)


# -- every checker fails on a deliberately broken workflow ------------------------------


async def test_effects_once_finds_a_refund_that_is_not_idempotent() -> None:
    plan = Plan([Fault("SHIP", 1, "fatal")], [Crash("compensation", state="CHARGE", when="after")])
    broken = await run_plan(saga(idempotent_refund=False), Pay.RESERVE, plan)
    with pytest.raises(AssertionError, match=r"effect 'refund' \(key 't-1'\) happened 2 times"):
        assert_effects_once(broken, "refund", required=False)
    sound = await run_plan(saga(), Pay.RESERVE, plan)
    assert_effects_once(sound, "refund", required=False)
    assert_effects_once(sound, "charge")


async def test_effects_once_requires_the_effect_on_a_completed_run() -> None:
    history = await run_plan(saga(), Pay.RESERVE)
    with pytest.raises(AssertionError, match="effect 'never' never happened"):
        assert_effects_once(history, "never")
    assert_effects_once(history, "never", required=False)


async def test_prefix_never_rerun_finds_a_resume_that_restarts() -> None:
    async def restart(wf: Workflow[Any], workflow_id: str) -> Any:
        await wf._store.clear(workflow_id)
        return await wf.orchestrate(Pay.RESERVE)

    plan = Plan([], [Crash("row", 4)])
    broken = await run_plan(saga(), Pay.RESERVE, plan, resume=restart)
    with pytest.raises(AssertionError, match="resume 1 started at RESERVE but the log's last row"):
        assert_prefix_never_rerun(broken)
    assert_prefix_never_rerun(await run_plan(saga(), Pay.RESERVE, plan))


async def test_batch_order_finds_results_written_in_completion_order() -> None:
    plan = Plan(delays=[Delay("BATCH", i, 5.0 - i) for i in range(5)])
    broken = await run_plan(fan_out(JoinStrategy.all(), write_in_process=True), Fan.SPLIT, plan)
    assert_batch_order(broken)  # the engine kept the outputs in order...
    with pytest.raises(AssertionError, match=r"effect 'written' happened in the order \[14, 13"):
        assert_batch_order(broken, Fan.BATCH, effect="written")  # ...the workflow did not


async def test_batch_order_compares_outputs_with_what_each_item_produced() -> None:
    history = await run_plan(fan_out(JoinStrategy.all()), Fan.SPLIT)
    rec = history.batches[0]
    assert rec.outputs is not None
    rec.outputs.reverse()  # what a batch engine that lost the order would hand to finish
    with pytest.raises(AssertionError, match=r"batch BATCH: output 0 is .*196.*item 0 \(10\)"):
        assert_batch_order(history)


async def test_compensation_lifo_finds_two_steps_sharing_a_name() -> None:
    @compensatable(state=Pay, config=TaskConfig.minimal(), name="step")
    class First:
        async def run(self, res: Resources) -> tuple[Pay, int]:
            return Pay.CHARGE, 1

        async def compensate(self, res: Resources, output: int) -> None:
            pass

    @compensatable(state=Pay, config=TaskConfig.minimal(), name="step")
    class Second:
        async def run(self, res: Resources) -> tuple[Pay, int]:
            return Pay.SHIP, 2

        async def compensate(self, res: Resources, output: int) -> None:
            pass

    @task(config=TaskConfig.minimal(), name="ship")
    async def ship(res: Resources) -> Pay:
        raise RuntimeError("carrier down")

    broken = (
        Workflow(Resources())
        .register_with_compensation(Pay.RESERVE, First())
        .register_with_compensation(Pay.CHARGE, Second())
        .register(Pay.SHIP, ship)
        .add_exit_state(Pay.DONE)
    )
    history = await run_plan(broken, Pay.RESERVE)
    with pytest.raises(AssertionError, match=r"compensations ran as \['CHARGE', 'CHARGE'\]"):
        assert_compensation_lifo(history)
    sound = await run_plan(saga(ship_fails=True), Pay.RESERVE, Plan([], [Crash("row", 4)]))
    assert [s.state for s in sound.steps if s.kind == "compensate"] == ["CHARGE", "RESERVE"]
    assert_compensation_lifo(sound)


async def test_retries_within_policy_finds_a_budget_larger_than_intended() -> None:
    plan = Plan([Fault("CHARGE", 1, "error"), Fault("CHARGE", 2, "error")])
    history = await run_plan(saga(), Pay.RESERVE, plan)
    assert history.completed
    assert_retries_within_policy(history)  # 3 attempts, within the registered 1 + 2
    with pytest.raises(AssertionError, match="CHARGE made 3 attempts in one visit .*budget is 2"):
        assert_retries_within_policy(history, {Pay.CHARGE: 2})


async def test_retries_within_policy_across_crashes() -> None:
    plan = Plan(
        [Fault("CHARGE", 1, "error"), Fault("CHARGE", 2, "error")],
        [Crash("attempt", state="CHARGE", attempt=3, when="before")],
    )
    history = await run_plan(saga(), Pay.RESERVE, plan)
    assert history.completed
    assert_retries_within_policy(history)  # each process stayed within its budget
    # faults hit every process alike: 2 failed attempts before the crash, 3 after it
    with pytest.raises(AssertionError, match="CHARGE made 5 attempts in one visit"):
        assert_retries_within_policy(history, across_crashes=True)


async def test_join_consistent_finds_a_strategy_other_than_intended() -> None:
    plan = Plan([Fault("SPLIT", 1, "fatal", branch=1)])
    history = await run_plan(fan_out(JoinStrategy.any()), Fan.SPLIT, plan)
    assert history.completed
    assert_join_consistent(history)  # Any: one success is enough
    with pytest.raises(AssertionError, match="with All: .* should not go on to BATCH, but it did"):
        assert_join_consistent(history, strategy=JoinStrategy.all())
    strict = await run_plan(fan_out(JoinStrategy.all()), Fan.SPLIT, plan)
    assert strict.final.outcome == "error"
    assert_join_consistent(strict)


class Loop(enum.Enum):
    POLL = 1
    DONE = 2


async def test_terminates_finds_a_loop_that_never_ends() -> None:
    from cano_dsl import _clock

    @router(state=Loop, name="poll")
    class Poll:
        async def route(self, res: Resources) -> Loop:
            await _clock.sleep(60)  # waits on the library clock, as retry backoff does
            return Loop.POLL

    broken = Workflow(Resources()).register_router(Loop.POLL, Poll()).add_exit_state(Loop.DONE)
    history = await run_plan(broken, Loop.POLL, virtual_limit=3600)
    with pytest.raises(AssertionError, match="did not end within 3600 virtual seconds"):
        assert_terminates(history)
    assert_terminates(await run_plan(saga(), Pay.RESERVE), within=60)
    slow = await run_plan(saga(), Pay.RESERVE, Plan([Fault("SHIP", 1, "slow", seconds=120)]))
    with pytest.raises(AssertionError, match="took 120 virtual seconds, more than 60"):
        assert_terminates(slow, within=60)


# -- properties, as a user writes them --------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@workflow_settings(max_examples=15)
@given(plan=plans(saga(), crashes=2, cancels=True))
def test_idempotent_refund_happens_at_most_once_under_any_plan(backend: str, plan: Plan) -> None:
    history = run_plan_sync(saga(), Pay.RESERVE, plan, backend=backend)
    assert_effects_once(history, "refund", required=False)
    assert_prefix_never_rerun(history)
    assert_compensation_lifo(history)
    assert_retries_within_policy(history)
    assert_terminates(history)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@workflow_settings(max_examples=15)
@given(plan=plans(fan_out(JoinStrategy.quorum(2)), max_items=5))
def test_fan_out_keeps_order_and_joins_by_its_strategy(backend: str, plan: Plan) -> None:
    history = run_plan_sync(fan_out(JoinStrategy.quorum(2)), Fan.SPLIT, plan, backend=backend)
    assert_batch_order(history)
    assert_batch_order(history, Fan.BATCH, effect="written")
    assert_join_consistent(history)
    assert_terminates(history)


@workflow_property(saga, Pay.RESERVE, crashes=2, max_examples=10)
def test_workflow_property_makes_a_collectable_test(history: History) -> None:
    """The decorator's test: pytest collects it with no parameters; both backends."""
    assert_effects_once(history, "refund", required=False)
    assert_compensation_lifo(history)


def test_workflow_property_finds_the_broken_saga() -> None:
    backends: list[str] = []

    @workflow_property(
        lambda: saga(idempotent_refund=False),
        Pay.RESERVE,
        crashes=1,
        crash_where=("compensation",),
        max_examples=100,
    )
    def prop(history: History) -> None:
        backends.append("x")
        assert_effects_once(history, "refund", required=False)

    assert prop.__name__ == "prop"
    with pytest.raises(AssertionError, match=r"effect 'refund' \(key 't-1'\) happened 2 times"):
        prop()
    assert len(backends) >= 2


def test_a_failing_property_prints_the_shrunk_plan() -> None:
    """Hypothesis shrinks to the shortest plan; the message shows it."""
    seen: list[str] = []

    @workflow_settings(max_examples=200, derandomize=True)
    @given(plan=plans(saga(idempotent_refund=False), crashes=2))
    def prop(plan: Plan) -> None:
        history = run_plan_sync(saga(idempotent_refund=False), Pay.RESERVE, plan)
        try:
            assert_effects_once(history, "refund", required=False)
        except AssertionError as exc:
            seen.append(str(exc))
            raise

    with pytest.raises(AssertionError) as info:
        prop()
    message = str(info.value)
    assert "effect 'refund' (key 't-1') happened 2 times" in message
    # the shortest plan: one fault that fails the saga, one crash after the refund
    # the shortest plan: a fault that fails the saga, a crash once the refund ran
    assert "plan: state SHIP attempt 1 raised ConnectionError; run: crash " in message
    assert message.count(";") == 1 and len(seen) > 1


async def test_history_is_a_plain_record() -> None:
    history = await run_plan(saga(), Pay.RESERVE)
    assert isinstance(history, History)
    assert history.effect_count("charge", "o-1") == 1
    assert "reached DONE" in history.describe()


async def test_runs_on_this_backend(anyio_backend: str) -> None:
    history = await run_plan(saga(), Pay.RESERVE, Plan([Fault("CHARGE", 1, "error")]))
    assert history.completed
    assert anyio.get_current_task() is not None


# -- the state-machine base -------------------------------------------------------------


def _machine(workflow: Workflow[Pay], backend: str, start: Plan | None = None) -> Any:
    from cano_dsl.testing.strategies import WorkflowMachine

    class SagaMachine(WorkflowMachine):  # type: ignore[misc, valid-type]
        def check(self, history: History) -> None:
            super().check(history)
            assert_effects_once(history, "refund", required=False)
            assert_compensation_lifo(history)

    SagaMachine.workflow = workflow
    SagaMachine.initial = Pay.RESERVE
    SagaMachine.backend = backend
    SagaMachine.start_plan = start if start is not None else Plan()
    return SagaMachine


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_workflow_machine_holds_for_a_sound_saga(backend: str) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        _machine(saga(), backend),
        settings=workflow_settings(max_examples=8, stateful_step_count=4),
    )


def test_workflow_machine_finds_the_refund_that_is_not_idempotent() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    with pytest.raises(AssertionError, match=r"effect 'refund' \(key 't-1'\) happened 2 times"):
        run_state_machine_as_test(
            _machine(saga(idempotent_refund=False), "asyncio", Plan([Fault("SHIP", 1, "fatal")])),
            settings=workflow_settings(max_examples=100, stateful_step_count=2, derandomize=True),
        )


async def test_a_task_that_cannot_be_wrapped_is_a_configuration_error() -> None:
    @compensatable(state=Pay, config=TaskConfig.minimal(), name="slotted")
    class Slotted:
        __slots__ = ()

        async def run(self, res: Resources) -> tuple[Pay, int]:
            return Pay.DONE, 1

        async def compensate(self, res: Resources, output: int) -> None:
            pass

    wf = Workflow(Resources()).register_with_compensation(Pay.RESERVE, Slotted())
    with pytest.raises(ConfigurationError, match="cannot wrap .*Slotted.*__dict__"):
        await run_plan(wf.add_exit_state(Pay.DONE), Pay.RESERVE)
