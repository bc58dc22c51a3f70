"""Split/join: run several tasks in parallel in one state and decide the join
(REFERENCE §4)."""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal

import anyio
import attrs

from .. import _metrics, _spans
from .._config import optional_seconds
from .._errors import ConfigurationError, WorkflowError
from .._observer import notify
from .._retry import run_with_retries
from .._state import S, label
from ._entry import Entry

__all__ = [
    "JoinConfig",
    "JoinStrategy",
    "SplitData",
    "SplitResult",
    "join_config_error",
    "run_split",
]

_Kind = Literal["all", "any", "quorum", "percentage", "partial_results", "partial_timeout"]


def _non_negative_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{what} must be an int >= 0, got {value!r}")
    return value


@attrs.frozen(repr=False)
class JoinStrategy:
    """When a split's join is satisfied. Counts are of *successful* branches, except
    `partial_timeout`, which counts completions of either kind."""

    kind: _Kind
    n: int = 0
    p: float = 0.0

    @classmethod
    def all(cls) -> JoinStrategy:
        """Every branch must succeed; waits for all of them."""
        return cls("all")

    @classmethod
    def any(cls) -> JoinStrategy:
        """One success is enough; the rest are cancelled at the first success."""
        return cls("any")

    @classmethod
    def quorum(cls, n: int) -> JoinStrategy:
        """At least ``n`` successes; waits for every branch."""
        return cls("quorum", _non_negative_int(n, "quorum"))

    @classmethod
    def percentage(cls, p: float) -> JoinStrategy:
        """At least ``ceil(total * p)`` successes, ``p`` in (0, 1]; waits for every branch."""
        if isinstance(p, bool) or not isinstance(p, (int, float)):
            raise ConfigurationError(f"percentage must be a number, got {p!r}")
        if not math.isfinite(p) or p <= 0 or p > 1:
            raise ConfigurationError(
                f"Percentage strategy requires a finite value in (0.0, 1.0], got {p}"
            )
        return cls("percentage", 0, float(p))

    @classmethod
    def partial_results(cls, minimum: int) -> JoinStrategy:
        """At least ``minimum`` successes; the rest are cancelled once it is reached."""
        return cls("partial_results", _non_negative_int(minimum, "partial_results minimum"))

    @classmethod
    def partial_timeout(cls) -> JoinStrategy:
        """Wait until the split timeout, then accept if at least one branch completed."""
        return cls("partial_timeout")

    def is_satisfied(self, completed: int, total: int) -> bool:
        """Whether ``completed`` (successes; completions for partial_timeout) of ``total``
        satisfy the strategy."""
        k = self.kind
        if k == "all":
            return completed >= total
        if k == "any":
            return completed >= 1
        if k in ("quorum", "partial_results"):
            return completed >= self.n
        if k == "percentage":
            return completed >= math.ceil(total * self.p)
        return completed >= 1

    def __repr__(self) -> str:
        return {
            "all": "All",
            "any": "Any",
            "quorum": f"Quorum({self.n})",
            "percentage": f"Percentage({self.p})",
            "partial_results": f"PartialResults({self.n})",
            "partial_timeout": "PartialTimeout",
        }[self.kind]

    __str__ = __repr__


def _timeout(value: float | datetime.timedelta | None) -> float | None:
    return optional_seconds(value, "split timeout")


def _bulkhead(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"bulkhead requires a positive permit count, got {value}")
    return value


def _strategy(_inst: Any, _attr: Any, value: Any) -> None:
    if isinstance(value, JoinStrategy):
        return
    name: str = getattr(getattr(value, "__func__", None), "__qualname__", "")
    if callable(value) and name.startswith("JoinStrategy."):
        bare = ("JoinStrategy.all", "JoinStrategy.any", "JoinStrategy.partial_timeout")
        args = "()" if name in bare else "(...)"
        raise ConfigurationError(
            f"JoinConfig strategy must be a JoinStrategy, got the factory {name} itself; "
            f"call it: `{name}{args}`"
        )
    raise ConfigurationError(
        f"JoinConfig strategy must be a JoinStrategy (JoinStrategy.all(), .any(), "
        f".quorum(n), ...), got {value!r}"
    )


def _join_state(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, enum.Enum):
        raise ConfigurationError(
            f"JoinConfig join_state must be a member of the workflow's state Enum, got {value!r}"
        )


@attrs.frozen
class JoinConfig(Generic[S]):
    """How a split state joins: the strategy, the state entered when it is satisfied,
    an optional timeout (float seconds) and an optional bulkhead (most branches
    running at once)."""

    strategy: JoinStrategy = attrs.field(validator=_strategy)
    join_state: S = attrs.field(validator=_join_state)
    timeout: float | None = attrs.field(default=None, converter=_timeout)
    bulkhead: int | None = attrs.field(default=None, converter=_bulkhead)

    def with_timeout(self, timeout: float | datetime.timedelta) -> JoinConfig[S]:
        """A copy with a split timeout of ``timeout`` seconds (required by
        `JoinStrategy.partial_timeout`)."""
        return attrs.evolve(self, timeout=timeout)

    def with_join_state(self, state: S) -> JoinConfig[S]:
        """A copy that goes to ``state`` when the join succeeds."""
        return attrs.evolve(self, join_state=state)

    def with_bulkhead(self, permits: int) -> JoinConfig[S]:
        """A copy running at most ``permits`` branches at once."""
        return attrs.evolve(self, bulkhead=permits)


def join_config_error(
    cfg: JoinConfig[Any], is_known: Callable[[Any], bool] | None = None
) -> ConfigurationError | None:
    """The validation error of a join config (REFERENCE §1.3), or None."""
    strategy = cfg.strategy
    if strategy.kind == "partial_timeout" and cfg.timeout is None:
        return ConfigurationError(
            "PartialTimeout strategy requires a timeout (call JoinConfig.with_timeout)"
        )
    if strategy.kind == "percentage" and not (math.isfinite(strategy.p) and 0 < strategy.p <= 1):
        return ConfigurationError(
            f"Percentage strategy requires a finite value in (0.0, 1.0], got {strategy.p}"
        )
    if cfg.bulkhead is not None and cfg.bulkhead <= 0:
        return ConfigurationError(f"bulkhead requires a positive permit count, got {cfg.bulkhead}")
    if is_known is not None and not is_known(cfg.join_state):
        return ConfigurationError(
            f"Split join_state {label(cfg.join_state)} is neither registered nor an exit state"
        )
    return None


@attrs.define
class SplitResult:
    """How a split's branches ended: ``successes`` and ``errors`` in completion order as
    ``(index, value)``, ``cancelled`` indices."""

    successes: list[tuple[int, Any]] = attrs.Factory(list)
    errors: list[tuple[int, BaseException]] = attrs.Factory(list)
    cancelled: list[int] = attrs.Factory(list)

    def completed_count(self) -> int:
        """Branches that finished, with a value or an error."""
        return len(self.successes) + len(self.errors)

    def total_count(self) -> int:
        """Every branch: finished or cancelled."""
        return len(self.successes) + len(self.errors) + len(self.cancelled)


def _error_summary(errors: Sequence[tuple[int, BaseException]]) -> str:
    parts = [f"task {i}: {e}" for i, e in errors[:3]]
    if len(errors) > 3:
        parts.append(f"... and {len(errors) - 3} more error(s)")
    return "; ".join(parts)


def _split_branch_results(sink: _metrics.MetricsSink, result: SplitResult) -> None:
    name = _metrics.SPLIT_BRANCH_RESULTS_TOTAL
    for result_label, count in (
        ("success", len(result.successes)),
        ("failure", len(result.errors)),
        ("cancelled", len(result.cancelled)),
    ):
        if count:
            sink.counter(name, count, (("result", result_label),))


class SplitData:
    """Run data of one split dispatch: each branch that takes the data gets its own copy
    of the split's entry value (a fresh one per retry); ``ok`` lists the branches that
    succeeded, so that the engine merges their changes at the join."""

    __slots__ = ("base", "codec", "invokers", "ok", "values")

    def __init__(self, codec: Any, base: Any, invokers: list[Any]) -> None:
        self.codec = codec
        self.base = base
        self.invokers = invokers
        self.values: list[Any] = [
            None if inv is None else codec.from_tree(base) for inv in invokers
        ]
        self.ok: list[int] = []

    def thunk(self, i: int, res: Any) -> Callable[[], Any]:
        invoke = self.invokers[i]
        calls = 0

        async def attempt() -> Any:
            nonlocal calls
            if calls:
                self.values[i] = self.codec.from_tree(self.base)
            calls += 1
            return await invoke(res, self.values[i])

        return attempt


async def run_split(
    entry: Entry,
    res: Any,
    observers: Sequence[Any],
    state: Any = None,
    data: SplitData | None = None,
) -> Any:
    """Run every branch of a split entry and return its join state, or raise the
    `WorkflowError` of §4.3. In a traced run each branch is a ``split_task`` span
    {task_id (the branch index), state, kind, outcome}."""
    cfg: JoinConfig[Any] = entry.join
    err = join_config_error(cfg)
    if err is not None:
        raise err
    tasks = entry.tasks
    configs = entry.configs
    total = len(tasks)
    strategy = cfg.strategy
    kind = strategy.kind
    ids = entry.in_flight_ids() if observers else []
    result = SplitResult()
    finished = [False] * total
    early = False
    limiter = anyio.Semaphore(cfg.bulkhead) if cfg.bulkhead is not None else None
    invokers = entry.invokers
    tracer = _spans.TRACER.get()

    async with anyio.create_task_group() as tg:

        async def branch(i: int) -> None:
            assert tracer is not None
            attributes: dict[str, Any] = {"task_id": i, "kind": "split"}
            if state is not None:
                attributes["state"] = state.name
            with tracer.start_as_current_span(_spans.SPLIT, attributes=attributes) as span:
                span.set_attribute("outcome", "cancelled")
                error = await run_branch(i)
                if error is None:
                    span.set_attribute("outcome", "completed")
                else:
                    span.set_attribute("outcome", "failed")
                    span.record_exception(error)
                    span.set_status(_spans.error_status(error))

        async def run_branch(i: int) -> Exception | None:
            nonlocal early
            invoke, pass_res = invokers[i]
            thunk = (lambda: invoke(res)) if pass_res else invoke
            if data is not None and data.invokers[i] is not None:
                thunk = data.thunk(i, res)
            task_id = ids[i] if observers else "<split-task>"
            try:
                if limiter is not None:
                    async with limiter:
                        value = await run_with_retries(
                            configs[i], thunk, task_id=task_id, observers=observers
                        )
                else:
                    value = await run_with_retries(
                        configs[i], thunk, task_id=task_id, observers=observers
                    )
            except Exception as exc:
                finished[i] = True
                result.errors.append((i, exc))
                error: Exception | None = exc
            else:
                finished[i] = True
                result.successes.append((i, value))
                error = None
            # checked after every completion, a failure included (cano does the same):
            # PartialResults(0) is met by the first completion of either kind
            done = len(result.successes)
            if (kind == "any" and done >= 1) or (kind == "partial_results" and done >= strategy.n):
                early = True
                tg.cancel_scope.cancel()
            return error

        if observers:
            for task_id in ids:
                notify(observers, "on_task_start", task_id)
        if cfg.timeout is not None:
            tg.cancel_scope.deadline = anyio.current_time() + cfg.timeout
        for i in range(total):
            tg.start_soon(branch if tracer is not None else run_branch, i)

    timed_out = tg.cancel_scope.cancelled_caught and not early
    if data is not None:
        data.ok = [i for i, _ in result.successes]
    result.cancelled = [i for i in range(total) if not finished[i]]
    sink = _metrics.SINK
    if sink is not None:
        _split_branch_results(sink, result)
    if timed_out and kind != "partial_timeout":
        names = entry.branch_names()
        running = ", ".join(f"{names[i]}[{i}]" for i in result.cancelled)
        raise WorkflowError(
            f"Split task timeout exceeded ({cfg.timeout:g} s); still running: {running}"
        )
    if observers:
        for i, _ in result.successes:
            notify(observers, "on_task_success", ids[i])
        for i, exc in result.errors:
            notify(observers, "on_task_failure", ids[i], exc)
    successes = len(result.successes)
    summary = _error_summary(result.errors)
    tail = f"; errors: {summary}" if summary else ""
    if kind == "partial_results":
        if strategy.is_satisfied(successes, total):
            return cfg.join_state
        raise WorkflowError(
            f"Partial results condition not met: {successes} completed successfully, "
            f"{strategy.n} required{tail}"
        )
    if kind == "partial_timeout":
        if result.completed_count() >= 1:
            return cfg.join_state
        raise WorkflowError("PartialTimeout: No tasks completed before timeout")
    if strategy.is_satisfied(successes, total):
        return cfg.join_state
    raise WorkflowError(
        f"Join condition not met: {successes} of {total} tasks completed successfully, "
        f"strategy: {strategy!r}{tail}"
    )
