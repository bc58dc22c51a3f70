"""`@batch` / `BatchTask`: fan-out over data within one state (REFERENCE §3.4).

``load`` produces the items, ``process_item`` runs on each with at most
``concurrency`` in flight (a fixed pool of ``min(concurrency, n)`` workers pulling
indices), each item retried per ``item_retry`` (the raw last error lands in its slot),
and ``finish`` receives one `Ok` / `Err` per item, in input order, and decides the
next state. A ``load`` error propagates and ``finish`` is never called; a ``finish``
error propagates. The task's own ``config`` retries the whole load→process→finish
cycle.
"""

from __future__ import annotations

import abc
import numbers
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import anyio
import attrs

from .. import _clock, _metrics
from .._config import RetryMode
from .._errors import TaskDefinitionError
from .._outcome import Err, Ok, Outcome, make_ok
from .._resources import Resources
from .._state import S, S_co
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec, constant, driver_data_invoker

__all__ = ["BatchLike", "BatchTask", "batch", "run_batch"]

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


async def _retry_item(
    process: Callable[[Any], Awaitable[Any]], item: Any, mode: RetryMode, first: Exception
) -> Outcome[Any]:
    """Retry one item after its first attempt failed; the raw last error on exhaustion."""
    attempt = 1
    error: Exception = first
    while attempt < mode.max_attempts:
        delay = mode.delay_for_attempt(attempt - 1)
        if delay is not None and delay >= 0.001:
            await _clock.sleep(delay)
        try:
            return make_ok(await process(item))
        except Exception as exc:
            error = exc
            attempt += 1
    return Err(error)


def concurrency_error(value: Any) -> str | None:
    """Why ``value`` is not a batch concurrency (an int; 0 and negatives mean 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"must be an int (items in flight at once; 0 and negatives mean 1), got {value!r}"
    return None


def _concurrency(b: Any) -> int:
    conc = constant(b, "concurrency")
    problem = concurrency_error(conc)
    if problem is not None:
        raise TaskDefinitionError(f"{type(b).__qualname__}.concurrency {problem}")
    return max(int(conc), 1)


# Ok(v) built in C from the 1-tuples ``zip(values)`` yields: no Python frame per item
_ok_from_1tuple = partial(tuple.__new__, Ok)


async def run_batch(b: Any, res: Resources, data: Any = None, hooks: Any = ()) -> Any:
    """Run one load → process → finish cycle of batch task ``b`` (``hooks``: which of
    ``load`` / ``finish`` take the run ``data``)."""
    sink = _metrics.SINK
    if sink is None:
        return await _run_batch(b, res, None, data, hooks)
    try:
        result = await _run_batch(b, res, sink, data, hooks)
    except Exception:
        sink.counter(_metrics.BATCH_RUNS_TOTAL, 1, _metrics.OUTCOME_FAILED)
        raise
    sink.counter(_metrics.BATCH_RUNS_TOTAL, 1, _metrics.OUTCOME_COMPLETED)
    return result


async def _run_batch(
    b: Any, res: Resources, sink: _metrics.MetricsSink | None, data: Any, hooks: Any
) -> Any:
    mode = constant(b, "item_retry")
    if not isinstance(mode, RetryMode):
        raise TaskDefinitionError(f"{type(b).__qualname__}.item_retry must give a RetryMode")
    conc = _concurrency(b)
    items = await (b.load(res, data) if "load" in hooks else b.load(res))
    if not isinstance(items, Sequence):
        items = list(items)
    n = len(items)
    process = b.process_item
    retries = mode.max_attempts > 1
    # the hot loop stores raw values; failed slots are collected aside and become Err
    values: list[Any] = [None] * n
    failed: dict[int, Err] = {}
    workers = min(conc, n)
    if workers <= 1:
        for i in range(n):
            item = items[i]
            try:
                values[i] = await process(item)
            except Exception as exc:
                outcome = await _retry_item(process, item, mode, exc) if retries else Err(exc)
                if isinstance(outcome, Err):
                    failed[i] = outcome
                else:
                    values[i] = outcome.value
    else:
        cursor = 0

        async def worker() -> None:
            nonlocal cursor
            while cursor < n:
                i = cursor
                cursor = i + 1
                item = items[i]
                try:
                    values[i] = await process(item)
                except Exception as exc:
                    outcome = await _retry_item(process, item, mode, exc) if retries else Err(exc)
                    if isinstance(outcome, Err):
                        failed[i] = outcome
                    else:
                        values[i] = outcome.value

        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    if sink is not None:
        _metrics.ok_err(sink, _metrics.BATCH_ITEMS_TOTAL, n - len(failed), len(failed))
    outputs: list[Any] = list(map(_ok_from_1tuple, zip(values)))
    for i, err in failed.items():
        outputs[i] = err
    if "finish" in hooks:
        return await b.finish(res, outputs, data)
    return await b.finish(res, outputs)


def _batch_invoker(b: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return partial(run_batch, b), True


BATCH_SPEC = ModelSpec(
    "batch",
    required=("load", "process_item", "finish"),
    returns=("finish",),
    constants=("concurrency", "item_retry", "config", "name"),
    checks={"concurrency": concurrency_error},
)


class BatchLike(Protocol[S_co]):
    """What a type checker sees of a batch (a `BatchTask` or a `@batch` class): the
    item and output types stay the class's own business."""

    async def load(self, res: Resources, /) -> Iterable[Any]:
        """Return the items to process."""

    async def process_item(self, item: Any, /) -> Any:
        """Process one item; its result (or error) fills that item's slot."""

    async def finish(self, res: Resources, outputs: list[Any], /) -> NextState[S_co]:
        """Decide the next state from the outputs, in input order."""


class BatchTask(Task[S], Generic[S, I, O]):
    """Fan-out over data: ``load`` → ``process_item`` per item (bounded concurrency,
    per-item retry) → ``finish`` with the outputs in input order.

    Subclass it (``class CsvProcessor(BatchTask[Step, int, int])``) or decorate a plain
    class with `@batch`. ``concurrency`` (default 1; 0 and negatives mean 1) and
    ``item_retry`` (default `RetryMode.none()`) may be methods or plain attributes.
    """

    __cano_model__: ClassVar[ModelSpec] = BATCH_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    if TYPE_CHECKING:
        # a method or a plain attribute (``concurrency = 4``): a type checker cannot spell
        # "either" for an override, so it sees these members as Any
        concurrency: Any
        item_retry: Any
    else:

        def concurrency(self) -> int:
            """Most items in flight at once."""
            return 1

        def item_retry(self) -> RetryMode:
            """Retry policy of each ``process_item`` call."""
            return RetryMode.none()

    @abc.abstractmethod
    async def load(self, res: Resources) -> Sequence[I]:
        """Produce the items; an error aborts the batch (``finish`` is not called)."""

    @abc.abstractmethod
    async def process_item(self, item: I) -> O:
        """Process one item; an error fills its slot with `Err`."""

    @abc.abstractmethod
    async def finish(self, res: Resources, outputs: list[Outcome[O]]) -> NextState[S]:
        """Decide the next state from one `Ok`/`Err` per item, in input order."""

    async def run(self, res: Resources) -> NextState[S]:
        """One whole cycle, as the engine runs it."""
        result: NextState[S] = await run_batch(self, res)
        return result


BATCH_SPEC = attrs.evolve(
    BATCH_SPEC.bind(BatchTask, _batch_invoker),
    data_hooks={"load": 1, "finish": 2},
    data_invoker=driver_data_invoker(run_batch),
)
BatchTask.__cano_model__ = BATCH_SPEC

batch = ModelDecorator(BATCH_SPEC)
"""``@batch`` / ``@batch(state=Step, config=..., name=...)``: make a class a
`BatchTask`. It must define async ``load``, ``process_item`` and ``finish``;
``concurrency``, ``item_retry``, ``config`` and ``name`` are optional. Checked at
decoration time."""
