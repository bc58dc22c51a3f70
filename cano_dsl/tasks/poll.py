"""`@poll` / `PollTask`: wait until something is ready (REFERENCE §3.2).

``poll(res)`` is called in a loop. `PollOutcome.ready` ends the loop with the next
state; `PollOutcome.pending` (with a delay in seconds, 0 = re-poll at once) asks for
another round. An exception from ``poll`` is handled by ``on_poll_error``:
`PollErrorPolicy.fail_fast` (the default) ends the loop with it,
`PollErrorPolicy.retry_on_error` tolerates up to ``max_errors`` *consecutive* errors,
re-polling immediately; a `pending` outcome resets the count.

The whole loop is one attempt of the task's retry loop: the default config is
`TaskConfig.minimal()`, ``attempt_timeout`` bounds the whole loop, and an outer retry
(if configured) starts polling again from scratch.
"""

from __future__ import annotations

import abc
import datetime
import enum
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol

import anyio.lowlevel
import attrs

from .. import _clock, _metrics
from .._config import TaskConfig, _count, seconds
from .._errors import TaskDefinitionError, TaskExecutionError
from .._resources import Resources
from .._state import S, S_co, TaskResult
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec, constant, driver_data_invoker

__all__ = ["PollErrorPolicy", "PollLike", "PollOutcome", "PollTask", "poll", "run_poll_loop"]


@attrs.frozen(repr=False)
class PollOutcome(Generic[S_co]):
    """What one ``poll`` call found: `ready` (carry ``result`` to the next state) or
    `pending` (poll again after ``delay`` seconds)."""

    kind: Literal["ready", "pending"]
    result: S_co | TaskResult[S_co] | None = None
    delay: float = 0.0

    @classmethod
    def ready(cls, result: S | TaskResult[S]) -> PollOutcome[S]:
        """The condition holds; the loop ends with ``result`` (a state or a TaskResult)."""
        if not isinstance(result, (enum.Enum, TaskResult)):
            raise TaskDefinitionError(
                f"PollOutcome.ready takes a state (Enum member) or a TaskResult, got {result!r}"
            )
        out: PollOutcome[S] = cls("ready", result, 0.0)  # type: ignore[arg-type,assignment]
        return out

    @classmethod
    def pending(cls, delay: float | datetime.timedelta = 0.0) -> PollOutcome[Any]:
        """Not yet: poll again after ``delay`` seconds (0 = at once)."""
        return cls("pending", None, seconds(delay, "PollOutcome.pending delay"))

    @property
    def is_ready(self) -> bool:
        """Whether this is `ready(...)`."""
        return self.kind == "ready"

    @property
    def is_pending(self) -> bool:
        """Whether this is `pending(...)`."""
        return self.kind == "pending"

    def __repr__(self) -> str:
        if self.kind == "ready":
            return f"PollOutcome.ready({self.result!r})"
        return f"PollOutcome.pending({self.delay!r})"


@attrs.frozen(repr=False)
class PollErrorPolicy:
    """What the poll loop does when ``poll`` raises: `fail_fast` (the default) or
    `retry_on_error` (tolerate ``max_errors`` consecutive errors)."""

    kind: Literal["fail_fast", "retry_on_error"] = "fail_fast"
    max_errors: int = 0

    @classmethod
    def fail_fast(cls) -> PollErrorPolicy:
        """The first error ends the loop."""
        return _FAIL_FAST

    @classmethod
    def retry_on_error(cls, max_errors: int) -> PollErrorPolicy:
        """Re-poll at once after an error; the ``max_errors + 1``-th consecutive error
        ends the loop (``0`` fails on the first). A `pending` outcome resets the count."""
        return cls("retry_on_error", _count(max_errors, "max_errors"))

    def __repr__(self) -> str:
        if self.kind == "fail_fast":
            return "PollErrorPolicy.fail_fast()"
        return f"PollErrorPolicy.retry_on_error({self.max_errors})"


_FAIL_FAST = PollErrorPolicy()
_POLL_READY: _metrics.Labels = (("outcome", "ready"),)
_POLL_PENDING: _metrics.Labels = (("outcome", "pending"),)


async def run_poll_loop(p: Any, res: Resources, data: Any = None, hooks: Any = ()) -> Any:
    """Poll ``p`` until it is ready; return the ready result (REFERENCE §3.2). With
    ``"poll"`` in ``hooks``, ``poll`` also gets the run ``data``."""
    policy = constant(p, "on_poll_error")
    if not isinstance(policy, PollErrorPolicy):
        raise TaskDefinitionError(
            f"{type(p).__qualname__}.on_poll_error must give a PollErrorPolicy, got {policy!r}"
        )
    tolerate = policy.max_errors if policy.kind == "retry_on_error" else -1
    poll_once = p.poll if "poll" not in hooks else partial(_poll_with, p.poll, data)
    sleep = _clock.sleep
    errors = 0
    sink = _metrics.SINK
    while True:
        try:
            outcome = await poll_once(res)
        except Exception:
            if tolerate < 0:
                raise
            errors += 1
            if errors > tolerate:
                raise
            # re-poll at once, but let other tasks (and a cancellation) run first
            await anyio.lowlevel.checkpoint()
            continue
        if type(outcome) is not PollOutcome:
            raise TaskExecutionError(
                f"{type(p).__qualname__}.poll must return a PollOutcome "
                f"(PollOutcome.ready(state) or PollOutcome.pending(delay)), got {outcome!r}"
            )
        if outcome.kind == "ready":
            if sink is not None:
                sink.counter(_metrics.POLL_ITERATIONS_TOTAL, 1, _POLL_READY)
            return outcome.result
        if sink is not None:
            sink.counter(_metrics.POLL_ITERATIONS_TOTAL, 1, _POLL_PENDING)
        errors = 0
        if outcome.delay > 0:
            await sleep(outcome.delay)
        else:  # "re-poll now" still yields once, so a poller never starves the loop
            await anyio.lowlevel.checkpoint()


async def _poll_with(poll_fn: Any, data: Any, res: Resources) -> Any:
    return await poll_fn(res, data)


def _poll_invoker(p: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return partial(run_poll_loop, p), True


POLL_SPEC = ModelSpec("poll", required=("poll",), constants=("on_poll_error", "config", "name"))


class PollLike(Protocol[S_co]):
    """What a type checker sees of a poller (a `PollTask` or a `@poll` class)."""

    async def poll(self, res: Resources, /) -> PollOutcome[S_co]:
        """Check once: `PollOutcome.ready(state)` or `PollOutcome.pending(delay)`."""


class PollTask(Task[S]):
    """A task that polls until ready: ``poll(res)`` returns `PollOutcome.ready(state)`
    or `PollOutcome.pending(delay)`.

    Subclass it or decorate a plain class with `@poll`. Defaults: ``config`` →
    `TaskConfig.minimal()` (the loop is the resilience mechanism), ``on_poll_error`` →
    `PollErrorPolicy.fail_fast()`; both may be methods or plain attributes.
    """

    __cano_model__: ClassVar[ModelSpec] = POLL_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    def config(self) -> TaskConfig:
        """One attempt, no timeout: set ``attempt_timeout`` to bound the whole loop."""
        return TaskConfig.minimal()

    if TYPE_CHECKING:
        # a method or a plain attribute (``on_poll_error = PollErrorPolicy.retry_on_error(2)``):
        # a type checker cannot spell "either" for an override, so it sees Any here
        on_poll_error: Any
    else:

        def on_poll_error(self) -> PollErrorPolicy:
            """What an exception from ``poll`` does to the loop."""
            return PollErrorPolicy.fail_fast()

    @abc.abstractmethod
    async def poll(self, res: Resources) -> PollOutcome[S]:
        """Check once; return `PollOutcome.ready(state)` or `PollOutcome.pending(delay)`."""

    async def run(self, res: Resources) -> NextState[S]:
        """The whole poll loop, as the engine runs it."""
        result: NextState[S] = await run_poll_loop(self, res)
        return result


POLL_SPEC = attrs.evolve(
    POLL_SPEC.bind(PollTask, _poll_invoker),
    data_hooks={"poll": 1},
    data_invoker=driver_data_invoker(run_poll_loop),
)
PollTask.__cano_model__ = POLL_SPEC

poll = ModelDecorator(POLL_SPEC)
"""``@poll`` / ``@poll(state=Step, name=...)``: make a class a `PollTask` with an async
``poll`` returning a `PollOutcome`; ``on_poll_error``, ``config`` and ``name`` are
optional. Checked at decoration time."""
