"""The nine run data semantics (docs/run-data.md), on asyncio and trio, on every store."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from typing import Any

import anyio
import attrs
import pytest

from cano_dsl import (
    CompensationFailed,
    JoinConfig,
    JoinStrategy,
    PollOutcome,
    Resources,
    RetryMode,
    RunDataError,
    RunResult,
    StateFailure,
    StepOutcome,
    TaskConfig,
    TimerOutcome,
    Workflow,
    WorkflowVersionMismatch,
    batch,
    compensatable,
    poll,
    router,
    stepped,
    task,
    timer,
)

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    LOAD = "load"
    PRICE = "price"
    CHARGE = "charge"
    SHIP = "ship"
    DONE = "done"


class Kind(enum.Enum):
    STANDARD = 1
    EXPRESS = 2


@attrs.define
class Line:
    sku: str
    qty: int = 1


@attrs.define
class Order:
    order_id: str = ""
    lines: list[Line] = attrs.Factory(list)
    price: float | None = None
    charge_id: str | None = None
    kind: Kind = Kind.STANDARD
    notes: dict[str, str] = attrs.Factory(dict)


RETRY3 = TaskConfig.default().with_retry(RetryMode.fixed(2, 0.0))


def order_wf(store: Any, wid: str, **tasks: Any) -> Workflow[Step]:
    @task
    async def load(res: Resources, data: Order) -> Step:
        data.order_id = "o-1"
        data.lines.append(Line("apple", 3))
        return Step.PRICE

    @task
    async def price(res: Resources, data: Order) -> Step:
        data.price = 3 * 1.5
        return Step.CHARGE

    @task
    async def charge(res: Resources, data: Order) -> Step:
        data.charge_id = f"ch-{data.order_id}"
        return Step.SHIP

    @task
    async def ship(res: Resources, data: Order) -> Step:
        data.notes["shipped"] = "yes"
        return Step.DONE

    defaults = {"load": load, "price": price, "charge": charge, "ship": ship}
    defaults.update(tasks)
    wf = (
        Workflow(Resources(), state=Step)
        .with_run_data(Order)
        .register(Step.LOAD, defaults["load"])
        .register(Step.PRICE, defaults["price"])
        .register(Step.CHARGE, defaults["charge"])
        .register(Step.SHIP, defaults["ship"])
        .add_exit_state(Step.DONE)
    )
    if store is not None:
        wf = wf.with_checkpoint_store(store).with_workflow_id(wid)
    return wf


# -- 9. result ---------------------------------------------------------------------------


async def test_run_returns_the_final_data(store: Any) -> None:
    result = await order_wf(store, "r9").run(Step.LOAD, data=Order())
    assert isinstance(result, RunResult)
    assert result.state is Step.DONE
    assert result.data == Order(
        "o-1", [Line("apple", 3)], 4.5, "ch-o-1", Kind.STANDARD, {"shipped": "yes"}
    )


async def test_the_callers_value_is_copied_not_shared() -> None:
    mine = Order()
    result = await order_wf(None, "").run(Step.LOAD, data=mine)
    assert mine == Order()
    assert result.data.order_id == "o-1"
    assert await order_wf(None, "").orchestrate(Step.LOAD, data=mine) is Step.DONE


# -- 1. isolation ------------------------------------------------------------------------


async def test_concurrent_runs_of_one_workflow_never_see_each_others_data() -> None:
    seen: dict[str, list[str]] = {}

    @task
    async def load(res: Resources, data: Order) -> Step:
        await anyio.sleep(0.01)
        data.lines.append(Line(data.order_id))
        return Step.PRICE

    @task
    async def price(res: Resources, data: Order) -> Step:
        await anyio.sleep(0.01)
        seen[data.order_id] = [ln.sku for ln in data.lines]
        return Step.CHARGE

    wf = order_wf(None, "", load=load, price=price)
    results: dict[str, Order] = {}

    async def one(oid: str) -> None:
        results[oid] = (await wf.run(Step.LOAD, data=Order(oid))).data

    async with anyio.create_task_group() as tg:
        for oid in ("a", "b", "c", "d"):
            tg.start_soon(one, oid)
    assert seen == {oid: [oid] for oid in "abcd"}
    assert {k: v.charge_id for k, v in results.items()} == {oid: f"ch-{oid}" for oid in "abcd"}


# -- 2. restored at the resume point -----------------------------------------------------


class Crash(Exception):
    pass


async def test_resume_restores_the_data_as_of_the_resumed_states_entry(store: Any) -> None:
    attempts: list[Order] = []

    @task
    async def crashing_ship(res: Resources, data: Order) -> Step:
        attempts.append(attrs.evolve(data, notes=dict(data.notes)))
        data.notes["half"] = "done"  # a half-done change the crash must not keep
        raise Crash("power cut")

    with pytest.raises(StateFailure):
        await order_wf(store, "r2", ship=crashing_ship).run(Step.LOAD, data=Order())
    rows = await store.load_run("r2")
    assert [r.state for r in rows] == ["LOAD", "PRICE", "CHARGE", "SHIP"]
    # the data as of SHIP's entry is in SHIP's own entry row
    ship_patch = json.loads(rows[-1].data_patch)
    assert ship_patch["p"] == [["s", ["charge_id"], "ch-o-1"]]

    ran: list[str] = []

    @task
    async def ship(res: Resources, data: Order) -> Step:
        ran.append("ship")
        assert attrs.evolve(data, notes=dict(data.notes)) == attempts[0]
        data.notes["shipped"] = "yes"
        return Step.DONE

    @task
    async def never(res: Resources, data: Order) -> Step:
        raise AssertionError("a state before the resume point re-ran")

    wf = order_wf(store, "r2", load=never, price=never, charge=never, ship=ship)
    result = await wf.resume("r2")
    assert ran == ["ship"]
    assert result.data.charge_id == "ch-o-1" and result.data.price == 4.5
    assert result.data.notes == {"shipped": "yes"}
    assert await store.load_run("r2") == []


async def test_resume_from_returns_the_state_and_resume_the_data(store: Any) -> None:
    @task
    async def crashing(res: Resources, data: Order) -> Step:
        raise Crash("x")

    with pytest.raises(StateFailure):
        await order_wf(store, "r2b", charge=crashing).orchestrate(Step.LOAD)
    assert await order_wf(store, "r2b").resume_from("r2b") is Step.DONE


# -- 3. attempt isolation ----------------------------------------------------------------


async def test_each_retry_starts_from_the_data_as_of_the_states_entry() -> None:
    seen: list[tuple[float | None, int]] = []

    @task(config=RETRY3)
    async def price(res: Resources, data: Order) -> Step:
        seen.append((data.price, len(data.lines)))
        data.price = 99.0
        data.lines.append(Line("junk"))
        if len(seen) < 3:
            raise RuntimeError("flaky")
        return Step.CHARGE

    result = await order_wf(None, "", price=price).run(Step.LOAD)
    assert seen == [(None, 1), (None, 1), (None, 1)]
    assert [ln.sku for ln in result.data.lines] == ["apple", "junk"]


# -- 4. split and batch ------------------------------------------------------------------


class Sp(enum.Enum):
    SPLIT = 1
    JOIN = 2
    DONE = 3


@task(name="fx")
async def set_fx(res: Resources, data: dict[str, Any]) -> Sp:
    assert data == {"order": "o-1", "n": 0}
    data["fx"] = 1.1
    return Sp.JOIN


@task(name="tax")
async def set_tax(res: Resources, data: dict[str, Any]) -> Sp:
    assert data == {"order": "o-1", "n": 0}
    data["tax"] = 0.2
    data["n"] = 1
    return Sp.JOIN


@task(name="plain")
async def plain_branch(res: Resources) -> Sp:
    return Sp.JOIN


@task(name="also_n")
async def also_n(res: Resources, data: dict[str, Any]) -> Sp:
    data["n"] = 2
    return Sp.JOIN


def split_wf(branches: list[Any], store: Any = None) -> Workflow[Sp]:
    @task
    async def join(res: Resources, data: dict[str, Any]) -> Sp:
        data["joined"] = True
        return Sp.DONE

    wf = (
        Workflow(Resources())
        .with_run_data(dict)
        .register_split(Sp.SPLIT, branches, JoinConfig(JoinStrategy.all(), Sp.JOIN))
        .register(Sp.JOIN, join)
        .add_exit_state(Sp.DONE)
    )
    if store is not None:
        wf = wf.with_checkpoint_store(store).with_workflow_id("split")
    return wf


async def test_split_branches_merge_in_branch_order(store: Any) -> None:
    result = await split_wf([set_fx, plain_branch, set_tax], store).run(
        Sp.SPLIT, data={"order": "o-1", "n": 0}
    )
    assert result.data == {"order": "o-1", "n": 1, "fx": 1.1, "tax": 0.2, "joined": True}


async def test_two_branches_changing_one_field_is_an_error_naming_both() -> None:
    with pytest.raises(StateFailure) as info:
        await split_wf([set_fx, set_tax, also_n]).run(Sp.SPLIT, data={"order": "o-1", "n": 0})
    err = info.value.error
    assert isinstance(err, RunDataError)
    assert "`n`" in str(err) and "tax" in str(err) and "also_n" in str(err)


async def test_a_failed_branchs_changes_are_dropped() -> None:
    @task(name="bad")
    async def bad(res: Resources, data: dict[str, Any]) -> Sp:
        data["bad"] = True
        raise RuntimeError("no")

    wf = (
        Workflow(Resources())
        .with_run_data(dict)
        .register_split(Sp.SPLIT, [set_fx, bad], JoinConfig(JoinStrategy.any(), Sp.DONE))
        .add_exit_state(Sp.DONE)
    )
    result = await wf.run(Sp.SPLIT, data={"order": "o-1", "n": 0})
    assert result.data == {"order": "o-1", "n": 0, "fx": 1.1}


async def test_batch_load_and_finish_get_the_data() -> None:
    @batch
    class Sum:
        async def load(self, res: Resources, data: dict[str, Any]) -> list[int]:
            return list(data["items"])

        async def process_item(self, item: int) -> int:
            return item * 2

        async def finish(self, res: Resources, outputs: list[Any], data: dict[str, Any]) -> Sp:
            data["total"] = sum(o.value for o in outputs)
            return Sp.DONE

    wf = Workflow(Resources()).with_run_data(dict).register(Sp.SPLIT, Sum()).add_exit_state(Sp.DONE)
    assert (await wf.run(Sp.SPLIT, data={"items": [1, 2, 3]})).data["total"] == 12


# -- every model with data ---------------------------------------------------------------


async def test_router_poll_timer_and_stepped_get_the_data(store: Any) -> None:
    class M(enum.Enum):
        ROUTE = 1
        POLL = 2
        TIMER = 3
        STEP = 4
        DONE = 5

    @router
    class R:
        async def route(self, res: Resources, data: dict[str, Any]) -> M:
            data["log"].append("route")
            return M.POLL

    @poll
    class P:
        async def poll(self, res: Resources, data: dict[str, Any]) -> PollOutcome[M]:
            data["log"].append("poll")
            return PollOutcome.ready(M.TIMER) if len(data["log"]) > 2 else PollOutcome.pending()

    @timer
    class T:
        async def wait(self, res: Resources) -> TimerOutcome:
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources, data: dict[str, Any]) -> M:
            data["log"].append("timer")
            return M.STEP

    @stepped
    class St:
        async def step(
            self, res: Resources, cursor: int | None, data: dict[str, Any]
        ) -> StepOutcome[int, M]:
            n = cursor or 0
            data["log"].append(f"step{n}")
            return StepOutcome.done(M.DONE) if n == 2 else StepOutcome.more(n + 1)

    wf = (
        Workflow(Resources())
        .with_run_data(dict)
        .register_router(M.ROUTE, R())
        .register(M.POLL, P())
        .register(M.TIMER, T())
        .register_stepped(M.STEP, St())
        .add_exit_state(M.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("models")
    )
    result = await wf.run(M.ROUTE, data={"log": []})
    assert result.data["log"] == ["route", "poll", "poll", "timer", "step0", "step1", "step2"]


async def test_stepped_resume_restores_the_data_as_of_the_last_cursor(store: Any) -> None:
    class M(enum.Enum):
        STEP = 1
        DONE = 2

    seen: list[tuple[int | None, list[int]]] = []

    def make(crash_at: int | None) -> Any:
        @stepped(name="st")
        class St:
            async def step(
                self, res: Resources, cursor: int | None, data: dict[str, Any]
            ) -> StepOutcome[int, M]:
                n = cursor or 0
                seen.append((cursor, list(data["done"])))
                if n == crash_at:
                    data["done"].append(-1)
                    raise Crash("in step")
                data["done"].append(n)
                return StepOutcome.done(M.DONE) if n == 3 else StepOutcome.more(n + 1)

        return (
            Workflow(Resources())
            .with_run_data(dict)
            .register_stepped(M.STEP, St())
            .add_exit_state(M.DONE)
            .with_checkpoint_store(store)
            .with_workflow_id("st")
        )

    with pytest.raises(StateFailure):
        await make(2).run(M.STEP, data={"done": []})
    seen.clear()
    result = await make(None).resume("st")
    assert seen[0] == (2, [0, 1])
    assert result.data == {"done": [0, 1, 2, 3]}


# -- 5. compensation ---------------------------------------------------------------------


async def test_compensate_sees_the_data_as_of_its_states_completion(store: Any) -> None:
    undone: list[tuple[str, Order]] = []

    @compensatable(name="charge")
    class Charge:
        async def run(self, res: Resources, data: Order) -> tuple[Step, str]:
            data.charge_id = "ch-9"
            return Step.SHIP, data.charge_id

        async def compensate(self, res: Resources, output: str, data: Order) -> None:
            undone.append((output, data))

    @task
    async def ship(res: Resources, data: Order) -> Step:
        data.charge_id = "changed later"
        data.notes["x"] = "y"
        raise Crash("warehouse on fire")

    wf = order_wf(store, "comp", ship=ship).register_with_compensation(Step.CHARGE, Charge())
    with pytest.raises(StateFailure):
        await wf.run(Step.LOAD)
    assert len(undone) == 1
    output, data = undone[0]
    assert output == "ch-9" and data.charge_id == "ch-9" and data.notes == {}
    assert data.price == 4.5


async def test_compensate_after_resume_sees_the_completion_data(store: Any) -> None:
    undone: list[Order] = []

    @compensatable(name="charge")
    class Charge:
        async def run(self, res: Resources, data: Order) -> tuple[Step, str]:
            data.charge_id = "ch-7"
            return Step.SHIP, "ch-7"

        async def compensate(self, res: Resources, output: str, data: Order) -> None:
            undone.append(data)

    @task
    async def crash(res: Resources, data: Order) -> Step:
        raise Crash("down")

    @task
    async def fail_for_good(res: Resources, data: Order) -> Step:
        data.charge_id = "overwritten"
        raise RuntimeError("refused")

    first = order_wf(store, "comp2", ship=crash).register_with_compensation(Step.CHARGE, Charge())
    with pytest.raises((StateFailure, CompensationFailed)):
        # the task fails: compensation runs here; make the log stay by resuming a fresh log
        await first.with_checkpoint_store(_NoClear(store)).run(Step.LOAD)
    undone.clear()
    second = order_wf(store, "comp2", ship=fail_for_good).register_with_compensation(
        Step.CHARGE, Charge()
    )
    with pytest.raises(StateFailure):
        await second.resume("comp2")
    assert [d.charge_id for d in undone] == ["ch-7"]


class _NoClear:
    """A store whose clear does nothing and whose compensations are not yet drained:
    stands for a process that died after the completion row."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def append(self, wid: str, row: Any) -> None:
        await self.inner.append(wid, row)

    async def load_run(self, wid: str) -> Any:
        return await self.inner.load_run(wid)

    async def clear(self, wid: str) -> None:
        return None


# -- 6. encoding -------------------------------------------------------------------------


async def test_a_value_that_does_not_encode_fails_at_once_naming_state_and_field() -> None:
    calls = 0

    @task(config=RETRY3)
    async def price(res: Resources, data: Order) -> Step:
        nonlocal calls
        calls += 1
        data.lines[0].qty = {1, 2}  # type: ignore[assignment]
        return Step.CHARGE

    with pytest.raises(StateFailure) as info:
        await order_wf(None, "", price=price).run(Step.LOAD)
    assert calls == 1
    assert isinstance(info.value.error, RunDataError)
    assert "PRICE" in str(info.value.error) and "lines[0].qty" in str(info.value.error)


async def test_nan_is_refused_with_its_field() -> None:
    @task
    async def price(res: Resources, data: Order) -> Step:
        data.price = math.nan
        return Step.CHARGE

    with pytest.raises(StateFailure, match="price"):
        await order_wf(None, "", price=price).run(Step.LOAD)


def test_types_the_converter_cannot_hold_are_refused_at_registration() -> None:
    @attrs.define
    class Bad:
        tags: set[str] = attrs.Factory(set)

    with pytest.raises(ValueError, match="set"):
        Workflow(Resources()).with_run_data(Bad)
    with pytest.raises(ValueError, match="attrs class, a dataclass or dict"):
        Workflow(Resources()).with_run_data(list)


def test_a_task_taking_data_needs_with_run_data_and_the_right_annotation() -> None:
    @task
    async def f(res: Resources, data: Order) -> Step:
        return Step.DONE

    wf = Workflow(Resources()).register(Step.LOAD, f).add_exit_state(Step.DONE)
    with pytest.raises(ValueError, match="with_run_data"):
        wf.validate()

    @dataclasses.dataclass
    class Other:
        x: int = 0

    with pytest.raises(ValueError, match="annotated Order"):
        wf.with_run_data(Other).validate()
    wf.with_run_data(Order).validate()


async def test_dataclass_run_data_round_trips_through_resume(store: Any) -> None:
    class M(enum.Enum):
        A = 1
        B = 2
        DONE = 3

    @task
    async def a(res: Resources, data: D) -> M:
        data.n = 5
        data.inner.kind = Kind.EXPRESS
        return M.B

    def wf(b: Any) -> Workflow[M]:
        return (
            Workflow(Resources())
            .with_run_data(D)
            .register(M.A, a)
            .register(M.B, b)
            .add_exit_state(M.DONE)
            .with_checkpoint_store(store)
            .with_workflow_id("dc")
        )

    @task
    async def crash(res: Resources, data: D) -> M:
        raise Crash("x")

    @task
    async def b(res: Resources, data: D) -> M:
        assert data == D(5, Inner(Kind.EXPRESS))
        return M.DONE

    with pytest.raises(StateFailure):
        await wf(crash).run(M.A)
    assert (await wf(b).resume("dc")).data == D(5, Inner(Kind.EXPRESS))


@dataclasses.dataclass
class Inner:
    kind: Kind = Kind.STANDARD


@dataclasses.dataclass
class D:
    n: int = 0
    inner: Inner = dataclasses.field(default_factory=Inner)


# -- 7. size -----------------------------------------------------------------------------


async def test_rows_carry_what_changed_not_the_whole_value(store: Any) -> None:
    class M(enum.Enum):
        STEP = 1
        DONE = 2

    big = {"blob": ["x" * 1000] * 1000, "counter": 0}

    @task
    async def step(res: Resources, data: dict[str, Any]) -> M:
        data["counter"] += 1
        return M.STEP if data["counter"] < 20 else M.DONE

    wf = (
        Workflow(Resources())
        .with_run_data(dict)
        .register(M.STEP, step)
        .add_exit_state(M.DONE)
        .with_checkpoint_store(_NoClear(store))
        .with_workflow_id("big")
    )
    result = await wf.run(M.STEP, data=big)
    assert result.data["counter"] == 20
    rows = await store.load_run("big")
    sizes = [len(r.data_patch or b"") for r in rows]
    assert sizes[0] > 1_000_000
    assert len(rows) == 21 and max(sizes[1:]) < 100


# -- 8. compatibility --------------------------------------------------------------------


async def test_a_log_without_run_data_resumes_with_the_default(store: Any) -> None:
    @task
    async def crash(res: Resources) -> Step:
        raise Crash("old version")

    old = (
        Workflow(Resources())
        .register(Step.LOAD, crash)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("old")
    )
    with pytest.raises(StateFailure):
        await old.orchestrate(Step.LOAD)
    result = await order_wf(store, "old").resume("old")
    assert result.data.order_id == "o-1" and result.data.charge_id == "ch-o-1"


async def test_a_run_data_type_change_is_a_version_mismatch(store: Any) -> None:
    @task
    async def crash(res: Resources, data: Order) -> Step:
        raise Crash("x")

    with pytest.raises(StateFailure):
        await order_wf(store, "tc", price=crash).run(Step.LOAD)

    @attrs.define
    class Order2:
        order_id: int = 0

    @task
    async def any_task(res: Resources, data: Order2) -> Step:
        return Step.DONE

    changed = (
        Workflow(Resources())
        .with_run_data(Order2)
        .register(Step.PRICE, any_task)
        .add_exit_state(Step.DONE)
        .with_checkpoint_store(store)
        .with_workflow_id("tc")
    )
    with pytest.raises(WorkflowVersionMismatch, match="run data type"):
        await changed.resume("tc")
    with pytest.raises(WorkflowVersionMismatch):
        await changed.with_workflow_version(2).resume("tc")


# -- the sync entry points and bad input -----------------------------------------------


def test_run_sync_takes_data_and_run_sync_result_returns_it() -> None:
    wf = order_wf(None, "")
    assert wf.run_sync(Step.LOAD, data=Order("x")) is Step.DONE
    for backend in ("asyncio", "trio"):
        result = wf.run_sync_result(Step.LOAD, data=Order(), backend=backend)
        assert result.state is Step.DONE and result.data.charge_id == "ch-o-1"


async def test_bad_data_arguments_are_configuration_errors() -> None:
    @task
    async def plain(res: Resources) -> Step:
        return Step.DONE

    bare = Workflow(Resources()).register(Step.LOAD, plain).add_exit_state(Step.DONE)
    with pytest.raises(ValueError, match="declares no run data"):
        await bare.run(Step.LOAD, data={"a": 1})
    assert (await bare.run(Step.LOAD)).data is None
    with pytest.raises(ValueError, match="must be a Order"):
        await order_wf(None, "").run(Step.LOAD, data={"order_id": "x"})

    @attrs.define
    class Needs:
        x: int

    with pytest.raises(ValueError, match="without arguments"):
        await bare.with_run_data(Needs).run(Step.LOAD)
    assert (await bare.with_run_data(Needs).run(Step.LOAD, data=Needs(3))).data == Needs(3)


async def test_a_change_through_a_kept_reference_is_detected_not_lost() -> None:
    kept: list[Order] = []

    @task
    async def price(res: Resources, data: Order) -> Step:
        kept.append(data)  # misuse: keeps a reference past the call
        data.price = 1.0
        return Step.CHARGE

    @task
    async def charge(res: Resources) -> Step:  # does not take the data ...
        kept[0].charge_id = "sneaky"  # ... but changes it through the kept reference
        return Step.SHIP

    @task
    async def ship(res: Resources) -> Step:
        return Step.DONE

    with pytest.raises(StateFailure) as info:
        await order_wf(None, "", price=price, charge=charge, ship=ship).run(Step.LOAD)
    assert isinstance(info.value.error, RunDataError)
    assert "`charge_id`" in str(info.value.error) and "outside a task" in str(info.value.error)


async def test_compensate_alone_may_take_the_data_and_timer_wait_too() -> None:
    class M(enum.Enum):
        WAIT = 1
        PAY = 2
        FAIL = 3
        DONE = 4

    undone: list[dict[str, Any]] = []

    @timer
    class W:
        async def wait(self, res: Resources, data: dict[str, Any]) -> TimerOutcome:
            data["waited"] = True
            return TimerOutcome.duration(0)

        async def after_wait(self, res: Resources) -> M:
            return M.PAY

    @compensatable(name="pay")
    class Pay:
        async def run(self, res: Resources) -> tuple[M, int]:
            return M.FAIL, 7

        async def compensate(self, res: Resources, output: int, data: dict[str, Any]) -> None:
            undone.append({"output": output, **data})

    @task(config=TaskConfig.minimal())
    async def fail(res: Resources, data: dict[str, Any]) -> M:
        data["late"] = True
        raise RuntimeError("no")

    wf = (
        Workflow(Resources())
        .with_run_data(dict)
        .register(M.WAIT, W())
        .register_with_compensation(M.PAY, Pay())
        .register(M.FAIL, fail)
        .add_exit_state(M.DONE)
    )
    with pytest.raises(StateFailure):
        await wf.run(M.WAIT, data={"id": "t"})
    assert undone == [{"output": 7, "id": "t", "waited": True}]
