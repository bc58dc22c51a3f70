"""`@timer` / `TimerTask`: wait, then act (REFERENCE §3.3).

``wait(res)`` says how long: `TimerOutcome.duration(seconds)` or
`TimerOutcome.until(deadline)` with ``deadline`` on ``anyio.current_time()``'s clock (a
deadline in the past fires at once). The task sleeps once, then ``after_wait(res)``
returns the next state. An exception from ``wait`` aborts before sleeping
(``after_wait`` is not called). The default config is `TaskConfig.minimal()`; its
``attempt_timeout`` caps the whole wait. A resumed run calls ``wait`` again from
scratch, so persist wall-clock targets yourself if the timer must survive a crash.
"""

from __future__ import annotations

import abc
import datetime
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar, Literal, Protocol

import anyio
import attrs

from .. import _clock
from .._config import TaskConfig, seconds
from .._errors import ConfigurationError, TaskExecutionError
from .._resources import Resources
from .._state import S, S_co
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec, driver_data_invoker

__all__ = ["TimerLike", "TimerOutcome", "TimerTask", "run_timer", "timer"]


@attrs.frozen(repr=False)
class TimerOutcome:
    """How long a `TimerTask` sleeps: `duration` seconds from now, or `until` a
    deadline on ``anyio.current_time()``'s clock."""

    kind: Literal["duration", "until"]
    value: float

    @classmethod
    def duration(cls, d: float | datetime.timedelta) -> TimerOutcome:
        """Sleep ``d`` seconds (0 = fire at once)."""
        return cls("duration", seconds(d, "TimerOutcome.duration"))

    @classmethod
    def until(cls, deadline: float) -> TimerOutcome:
        """Sleep until ``anyio.current_time()`` reaches ``deadline`` (past = at once)."""
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
            raise ConfigurationError(
                f"TimerOutcome.until takes a deadline in seconds on anyio.current_time()'s "
                f"clock, got {deadline!r}"
            )
        if math.isnan(deadline):
            raise ConfigurationError("TimerOutcome.until deadline must not be NaN")
        return cls("until", float(deadline))

    def remaining(self) -> float:
        """Seconds left to sleep from now (never negative)."""
        if self.kind == "duration":
            return self.value
        return max(self.value - anyio.current_time(), 0.0)

    def __repr__(self) -> str:
        return f"TimerOutcome.{self.kind}({self.value!r})"


async def run_timer(t: Any, res: Resources, data: Any = None, hooks: Any = ()) -> Any:
    """``wait`` → one sleep → ``after_wait`` (REFERENCE §3.3); the hooks named in
    ``hooks`` also get the run ``data``."""
    outcome = await (t.wait(res, data) if "wait" in hooks else t.wait(res))
    if type(outcome) is not TimerOutcome:
        raise TaskExecutionError(
            f"{type(t).__qualname__}.wait must return a TimerOutcome "
            f"(TimerOutcome.duration(d) or TimerOutcome.until(deadline)), got {outcome!r}"
        )
    delay = outcome.remaining()
    if delay > 0:
        await _clock.sleep(delay)
    if "after_wait" in hooks:
        return await t.after_wait(res, data)
    return await t.after_wait(res)


def _timer_invoker(t: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return partial(run_timer, t), True


TIMER_SPEC = ModelSpec("timer", required=("wait", "after_wait"), returns=("after_wait",))


class TimerLike(Protocol[S_co]):
    """What a type checker sees of a timer (a `TimerTask` or a `@timer` class)."""

    async def wait(self, res: Resources, /) -> TimerOutcome:
        """How long to wait: `TimerOutcome.duration(d)` or `TimerOutcome.until(deadline)`."""

    async def after_wait(self, res: Resources, /) -> NextState[S_co]:
        """Run after the wait; return the next state."""


class TimerTask(Task[S]):
    """A task that sleeps once, then acts: ``wait(res)`` → `TimerOutcome`,
    ``after_wait(res)`` → next state.

    Subclass it or decorate a plain class with `@timer`. The default ``config`` is
    `TaskConfig.minimal()`.
    """

    __cano_model__: ClassVar[ModelSpec] = TIMER_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    def config(self) -> TaskConfig:
        """One attempt, no timeout: set ``attempt_timeout`` to cap the wait."""
        return TaskConfig.minimal()

    @abc.abstractmethod
    async def wait(self, res: Resources) -> TimerOutcome:
        """How long to sleep."""

    @abc.abstractmethod
    async def after_wait(self, res: Resources) -> NextState[S]:
        """Act once the timer fired; return the next state."""

    async def run(self, res: Resources) -> NextState[S]:
        """wait → sleep → after_wait, as the engine runs it."""
        result: NextState[S] = await run_timer(self, res)
        return result


TIMER_SPEC = attrs.evolve(
    TIMER_SPEC.bind(TimerTask, _timer_invoker),
    data_hooks={"wait": 1, "after_wait": 1},
    data_invoker=driver_data_invoker(run_timer),
)
TimerTask.__cano_model__ = TIMER_SPEC

timer = ModelDecorator(TIMER_SPEC)
"""``@timer`` / ``@timer(state=Step, name=...)``: make a class a `TimerTask` with async
``wait`` (returning a `TimerOutcome`) and ``after_wait``. Checked at decoration
time."""
