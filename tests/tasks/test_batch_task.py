"""`@batch` / `BatchTask` (REFERENCE §3.4): load → process_item per item with bounded
concurrency and per-item retry → finish with one Ok/Err slot per item in input
order; the outer config replays the whole cycle."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cano_dsl import (
    BatchTask,
    ConfigurationError,
    Err,
    Ok,
    Resources,
    RetryExhausted,
    RetryMode,
    StateFailure,
    Task,
    TaskConfig,
    TaskDefinitionError,
    TaskExecutionError,
    TaskResult,
    Workflow,
    batch,
)
from cano_dsl.tasks.batch import run_batch
from cano_dsl.testing import MockClock

pytestmark = pytest.mark.anyio


class Step(enum.Enum):
    PROCESS = enum.auto()
    DONE = enum.auto()
    PARTIAL = enum.auto()


async def ticks(n: int) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


def values(outputs: list[Any]) -> list[Any]:
    return [o.value if o.is_ok() else None for o in outputs]


# -- the seed's tests (a)-(j) ---------------------------------------------------------


@batch(state=Step)
class Indexed:
    """Default concurrency 1: items reach finish in input order."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[Any] = []

    async def load(self, res: Resources) -> list[int]:
        return list(range(self.n))

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.seen = list(outputs)
        return Step.DONE


async def test_a_sequential_items_reach_finish_in_input_order() -> None:
    b = Indexed(5)
    assert await b.run(Resources()) == Step.DONE
    assert b.seen == [Ok(i) for i in range(5)]


@batch
class ReverseFinishing:
    """Earlier items take longer, so they complete later."""

    concurrency = 4

    def __init__(self, n: int) -> None:
        self.n = n
        self.completed: list[int] = []
        self.seen: list[Any] = []

    async def load(self, res: Resources) -> list[int]:
        return list(range(self.n))

    async def process_item(self, item: int) -> int:
        await ticks(2 * (self.n - item))
        self.completed.append(item)
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.seen = list(outputs)
        return Step.DONE


async def test_b_concurrent_items_complete_out_of_order_but_arrive_in_input_order() -> None:
    b = ReverseFinishing(4)
    assert await b.run(Resources()) == Step.DONE
    assert b.completed == [3, 2, 1, 0]
    assert b.seen == [Ok(0), Ok(1), Ok(2), Ok(3)]


@batch
class PartialFail:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def load(self, res: Resources) -> list[int]:
        return [0, 1, 2]

    async def process_item(self, item: int) -> int:
        if item == 1:
            raise TaskExecutionError("item 1 failed")
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.seen = list(outputs)
        return Step.PARTIAL if any(o.is_err() for o in outputs) else Step.DONE


async def test_c_a_failing_item_fills_its_slot_and_finish_decides() -> None:
    b = PartialFail()
    assert await b.run(Resources()) == Step.PARTIAL
    assert [o.is_ok() for o in b.seen] == [True, False, True]
    err = b.seen[1]
    assert isinstance(err, Err) and isinstance(err.error, TaskExecutionError)
    with pytest.raises(TaskExecutionError, match="item 1 failed"):
        err.unwrap()


@batch
class FlakySingle:
    def item_retry(self) -> RetryMode:
        return RetryMode.fixed(2, 0.001)

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[Any] = []

    async def load(self, res: Resources) -> list[int]:
        return [42]

    async def process_item(self, item: int) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise TaskExecutionError("transient failure")
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.seen = list(outputs)
        return Step.DONE


async def test_d_item_retry_recovers_a_flaky_item() -> None:
    b = FlakySingle()
    with MockClock():
        assert await b.run(Resources()) == Step.DONE
    assert b.seen == [Ok(42)]
    assert b.calls == 3


@batch
class LoadFails:
    def __init__(self) -> None:
        self.finish_called = False

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[int]:
        raise TaskExecutionError("load failed")

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.finish_called = True
        return Step.DONE


async def test_e_load_error_propagates_and_finish_is_never_called() -> None:
    b = LoadFails()
    with pytest.raises(TaskExecutionError, match="load failed"):
        await b.run(Resources())
    assert not b.finish_called


@batch
class FinishFails:
    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[int]:
        return [1, 2]

    async def process_item(self, item: int) -> int:
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        raise TaskExecutionError("finish failed")


async def test_f_finish_error_propagates() -> None:
    with pytest.raises(TaskExecutionError, match="finish failed"):
        await FinishFails().run(Resources())


def in_flight_probe(conc: Any) -> Any:
    @batch
    class Probe:
        concurrency = conc

        def __init__(self) -> None:
            self.live = 0
            self.peak = 0
            self.seen: list[Any] = []

        async def load(self, res: Resources) -> list[int]:
            return [1, 2, 3, 4, 5]

        async def process_item(self, item: int) -> int:
            self.live += 1
            self.peak = max(self.peak, self.live)
            await ticks(3)
            self.live -= 1
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            self.seen = list(outputs)
            return Step.DONE

    return Probe()


@pytest.mark.parametrize("conc", [0, -1, -100, 1])
async def test_g_zero_or_negative_concurrency_means_one(conc: int) -> None:
    b = in_flight_probe(conc)
    with anyio.fail_after(5):
        assert await b.run(Resources()) == Step.DONE
    assert b.peak == 1
    assert b.seen == [Ok(i) for i in (1, 2, 3, 4, 5)]


@pytest.mark.parametrize("conc", [2, 3, 5, 64])
async def test_concurrency_is_the_most_items_in_flight(conc: int) -> None:
    b = in_flight_probe(conc)
    await b.run(Resources())
    assert b.peak == min(conc, 5)


def test_h_a_batch_is_a_task() -> None:
    b = Indexed(1)
    assert isinstance(b, Task)
    assert isinstance(b, BatchTask)
    assert b.name() == f"{__name__}.Indexed"
    assert b.config() == TaskConfig.default()
    assert b.concurrency() == 1
    assert b.item_retry() == RetryMode.none()


async def test_i_batch_in_a_workflow() -> None:
    wf = Workflow.bare().register(Step.PROCESS, Indexed(3)).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.PROCESS) == Step.DONE


async def test_j_run_batch_directly() -> None:
    b = Indexed(2)
    assert await run_batch(b, Resources()) == Step.DONE
    assert b.seen == [Ok(0), Ok(1)]


# -- cano's batch reliability contracts --------------------------------------------------


@batch
class Uploads:
    """12 uploads, 3 at a time: item 7 is poisoned, item 4 succeeds on its 3rd try."""

    concurrency = 3
    item_retry = RetryMode.fixed(2, 0.001)

    def __init__(self) -> None:
        self.attempts: dict[int, int] = {}
        self.live = 0
        self.peak = 0
        self.slots: list[Any] = []

    def config(self) -> TaskConfig:
        return TaskConfig.minimal()

    async def load(self, res: Resources) -> list[int]:
        return list(range(12))

    async def process_item(self, item: int) -> int:
        self.attempts[item] = self.attempts.get(item, 0) + 1
        self.live += 1
        self.peak = max(self.peak, self.live)
        try:
            await ticks(1 + (item * 7) % 5)  # varied durations shuffle completion
        finally:
            self.live -= 1
        if item == 7:
            raise TaskExecutionError("poisoned upload")
        if item == 4 and self.attempts[item] < 3:
            raise TaskExecutionError("flaky upload")
        return item * 10

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.slots = values(outputs)
        if sum(o.is_err() for o in outputs) > 1:
            raise TaskExecutionError("too many failed uploads")
        return Step.DONE


async def test_poison_items_are_isolated_retried_per_item_and_concurrency_is_bounded() -> None:
    b = Uploads()
    wf = Workflow.bare().register(Step.PROCESS, b).add_exit_state(Step.DONE)
    with MockClock():
        assert await wf.orchestrate(Step.PROCESS) == Step.DONE
    assert b.slots == [None if i == 7 else i * 10 for i in range(12)]
    assert b.attempts[7] == 3
    assert b.attempts[4] == 3
    assert all(b.attempts[i] == 1 for i in range(12) if i not in (4, 7))
    assert 2 <= b.peak <= 3


@batch
class Commit:
    """Loads four records; finish fails ``finish_failures`` times."""

    def __init__(self, finish_failures: int) -> None:
        self.finish_failures = finish_failures
        self.load_calls = 0
        self.item_calls: dict[int, int] = {}
        self.finish_calls = 0

    def config(self) -> TaskConfig:
        return TaskConfig.minimal().with_fixed_retry(1, 0.001)  # two attempts of the cycle

    async def load(self, res: Resources) -> list[int]:
        self.load_calls += 1
        return [1, 2, 3, 4]

    async def process_item(self, item: int) -> int:
        self.item_calls[item] = self.item_calls.get(item, 0) + 1
        return item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.finish_calls += 1
        assert len(outputs) == 4
        if self.finish_failures > 0:
            self.finish_failures -= 1
            raise TaskExecutionError("commit endpoint 503")
        return Step.DONE


async def test_outer_retry_replays_load_every_item_and_finish() -> None:
    b = Commit(1)
    wf = Workflow.bare().register(Step.PROCESS, b).add_exit_state(Step.DONE)
    with MockClock():
        assert await wf.orchestrate(Step.PROCESS) == Step.DONE
    assert b.load_calls == 2
    assert b.finish_calls == 2
    assert b.item_calls == {1: 2, 2: 2, 3: 2, 4: 2}


async def test_outer_retry_exhaustion_reports_the_true_attempt_count() -> None:
    b = Commit(2)
    wf = Workflow.bare().register(Step.PROCESS, b).add_exit_state(Step.DONE)
    with MockClock(), pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.PROCESS)
    err = info.value
    assert err.category == "retry_exhausted"
    assert isinstance(err.error, RetryExhausted)
    assert err.error.attempts == 2 and err.attempt == 2
    assert "after 2 attempt(s)" in str(err)
    assert isinstance(err.error.__cause__, TaskExecutionError)
    assert b.load_calls == 2, "no third cycle"


async def test_load_error_under_outer_retry_never_reaches_finish() -> None:
    @batch
    class Flaky:
        def __init__(self) -> None:
            self.load_calls = 0
            self.finish_calls = 0

        def config(self) -> TaskConfig:
            return TaskConfig.minimal().with_fixed_retry(2, 0)

        async def load(self, res: Resources) -> list[int]:
            self.load_calls += 1
            raise TaskExecutionError("source down")

        async def process_item(self, item: int) -> int:
            raise AssertionError("never reached")

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            self.finish_calls += 1
            return Step.DONE

    b = Flaky()
    wf = Workflow.bare().register(Step.PROCESS, b).add_exit_state(Step.DONE)
    with pytest.raises(StateFailure) as info:
        await wf.orchestrate(Step.PROCESS)
    assert (b.load_calls, b.finish_calls) == (3, 0)
    assert isinstance(info.value.error, RetryExhausted) and info.value.error.attempts == 3


async def test_per_item_retry_leaves_the_raw_last_error_in_the_slot() -> None:
    errors: list[Exception] = []

    @batch
    class AlwaysBad:
        item_retry = RetryMode.fixed(3, 0)

        def __init__(self) -> None:
            self.seen: list[Any] = []

        async def load(self, res: Resources) -> list[str]:
            return ["x"]

        async def process_item(self, item: str) -> str:
            exc = ValueError(f"attempt {len(errors) + 1}")
            errors.append(exc)
            raise exc

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            self.seen = list(outputs)
            return Step.DONE

    b = AlwaysBad()
    await b.run(Resources())
    assert len(errors) == 4
    (slot,) = b.seen
    assert isinstance(slot, Err)
    assert slot.error is errors[-1]
    assert not isinstance(slot.error, RetryExhausted)


async def test_item_retry_waits_its_delays_on_the_library_clock() -> None:
    @batch
    class Slow:
        item_retry = RetryMode.fixed(2, 5.0)

        def __init__(self) -> None:
            self.calls = 0

        async def load(self, res: Resources) -> list[int]:
            return [1]

        async def process_item(self, item: int) -> int:
            self.calls += 1
            raise ValueError("nope")

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            return Step.DONE

    with MockClock() as clock:
        start = clock.now()
        b = Slow()
        await b.run(Resources())
        assert b.calls == 3
        assert clock.now() - start == pytest.approx(10.0)


async def test_an_empty_load_calls_finish_with_no_slots() -> None:
    b = Indexed(0)
    assert await b.run(Resources()) == Step.DONE
    assert b.seen == []


async def test_load_may_return_any_iterable() -> None:
    @batch
    class Gen:
        concurrency = 2

        def __init__(self) -> None:
            self.seen: list[Any] = []

        async def load(self, res: Resources) -> Iterator[int]:
            return (i * i for i in range(4))

        async def process_item(self, item: int) -> int:
            return item + 1

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            self.seen = list(outputs)
            return Step.DONE

    b = Gen()
    await b.run(Resources())
    assert b.seen == [Ok(1), Ok(2), Ok(5), Ok(10)]


async def test_finish_may_return_a_task_result() -> None:
    @batch
    class Wrapped:
        async def load(self, res: Resources) -> list[int]:
            return [1]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> TaskResult[Step]:
            return TaskResult.single(Step.DONE)

    wf = Workflow.bare().register(Step.PROCESS, Wrapped()).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.PROCESS) == Step.DONE


async def test_batch_gets_the_workflow_resources() -> None:
    @batch
    class Reads:
        async def load(self, res: Resources) -> list[int]:
            return list(res.get("items"))

        async def process_item(self, item: int) -> int:
            return item * 3

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            res.get("out").extend(o.unwrap() for o in outputs)
            return Step.DONE

    out: list[int] = []
    wf = (
        Workflow(Resources().insert("items", [1, 2]).insert("out", out))
        .register(Step.PROCESS, Reads())
        .add_exit_state(Step.DONE)
    )
    await wf.orchestrate(Step.PROCESS)
    assert out == [3, 6]


# -- the optional members: attribute, method, base class ------------------------------------


@pytest.mark.parametrize("form", ["attribute", "method"])
async def test_concurrency_and_item_retry_as_attribute_or_method(form: str) -> None:
    if form == "attribute":

        @batch
        class B:
            concurrency = 3
            item_retry = RetryMode.fixed(1, 0)

            async def load(self, res: Resources) -> list[int]:
                return [1]

            async def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE

    else:

        @batch
        class B:  # type: ignore[no-redef]
            def concurrency(self) -> int:
                return 3

            def item_retry(self) -> RetryMode:
                return RetryMode.fixed(1, 0)

            async def load(self, res: Resources) -> list[int]:
                return [1]

            async def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE

    from cano_dsl.tasks._decorate import constant

    b = B()
    assert constant(b, "concurrency") == 3
    assert constant(b, "item_retry") == RetryMode.fixed(1, 0)
    assert await b.run(Resources()) == Step.DONE


class CsvProcessor(BatchTask[Step, int, int]):
    concurrency = 2

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def load(self, res: Resources) -> list[int]:
        return [3, 1, 2]

    async def process_item(self, item: int) -> int:
        await ticks(item)
        return -item

    async def finish(self, res: Resources, outputs: list[Any]) -> Step:
        self.seen = list(outputs)
        return Step.DONE


async def test_the_base_class_form_is_equivalent() -> None:
    b = CsvProcessor()
    assert isinstance(b, Task) and isinstance(b, BatchTask)
    assert b.name() == f"{__name__}.CsvProcessor"
    wf = Workflow.bare().register(Step.PROCESS, b).add_exit_state(Step.DONE)
    assert await wf.orchestrate(Step.PROCESS) == Step.DONE
    assert b.seen == [Ok(-3), Ok(-1), Ok(-2)]


def test_decorator_arguments_set_name_and_config() -> None:
    @batch(state=Step, name="csv", config=TaskConfig.minimal())
    class Named:
        async def load(self, res: Resources) -> list[int]:
            return []

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            return Step.DONE

    b = Named()
    assert b.name() == "csv"
    assert b.config() == TaskConfig.minimal()
    assert Named.__name__ == "Named" and Named.__module__ == __name__


async def test_an_item_retry_that_is_not_a_retry_mode_is_reported() -> None:
    @batch
    class Bad:
        item_retry = 3

        async def load(self, res: Resources) -> list[int]:
            return [1]

        async def process_item(self, item: int) -> int:
            return item

        async def finish(self, res: Resources, outputs: list[Any]) -> Step:
            return Step.DONE

    with pytest.raises(TaskDefinitionError, match="item_retry must give a RetryMode"):
        await Bad().run(Resources())


# -- decoration-time errors ---------------------------------------------------------------


def test_a_missing_hook_is_named() -> None:
    with pytest.raises(TaskDefinitionError, match=r"@batch .*NoFinish: missing .*`finish`"):

        @batch
        class NoFinish:
            async def load(self, res: Resources) -> list[int]:
                return []

            async def process_item(self, item: int) -> int:
                return item


def test_a_sync_hook_is_rejected() -> None:
    with pytest.raises(TaskDefinitionError, match="`process_item` must be `async def`"):

        @batch
        class SyncItem:
            async def load(self, res: Resources) -> list[int]:
                return []

            def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_an_async_constant_member_is_rejected() -> None:
    with pytest.raises(TaskDefinitionError, match="`concurrency` must be a plain method"):

        @batch
        class AsyncConc:
            async def concurrency(self) -> int:
                return 2

            async def load(self, res: Resources) -> list[int]:
                return []

            async def process_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_a_near_miss_hook_name_gets_a_suggestion() -> None:
    with pytest.raises(TaskDefinitionError, match=r"did you mean `process_item`\?"):

        @batch
        class Typo:
            async def load(self, res: Resources) -> list[int]:
                return []

            async def process_item(self, item: int) -> int:
                return item

            async def proces_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_a_typo_instead_of_the_hook_gets_a_suggestion() -> None:
    with pytest.raises(TaskDefinitionError, match=r"did you mean `process_item`\?"):

        @batch
        class OnlyTypo:
            async def load(self, res: Resources) -> list[int]:
                return []

            async def proces_item(self, item: int) -> int:
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_batch_decorates_classes_only() -> None:
    async def fn() -> None:
        return None

    with pytest.raises(TaskDefinitionError, match="decorates a class"):
        batch(fn)  # type: ignore[call-overload]


def test_the_base_class_form_rejects_a_sync_hook_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="`process_item` must be `async def`"):

        class SyncBase(BatchTask[Step, int, int]):
            async def load(self, res: Resources) -> list[int]:
                return []

            def process_item(self, item: int) -> int:  # type: ignore[override]
                return item

            async def finish(self, res: Resources, outputs: list[Any]) -> Step:
                return Step.DONE


def test_registering_the_class_instead_of_an_instance_is_caught() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean `Indexed\(\)`\?"):
        Workflow.bare().register(Step.PROCESS, Indexed)


def test_a_batch_cannot_be_registered_as_a_router() -> None:
    with pytest.raises(ConfigurationError, match="@router"):
        Workflow.bare().register_router(Step.PROCESS, Indexed(1))


def test_ok_and_err_match_and_compare() -> None:
    boom = ValueError("boom")
    for slot in (Ok(3), Err(boom)):
        match slot:
            case Ok(value):
                assert value == 3
            case Err(error):
                assert error is boom
    assert Ok(1) == Ok(1) and Ok(1) != Ok(2)
    assert Ok(1).unwrap() == 1 and Err(boom).is_err()
