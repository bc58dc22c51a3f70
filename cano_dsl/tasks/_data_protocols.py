"""What a type checker sees of tasks whose hooks take the run data (docs/run-data.md).

The hooks of these models take the run data as one more positional parameter; a model
with several hooks may give it to any of them, so those hooks are typed as callables of
any arity. Used only in `Workflow`'s annotations; the engine decides at registration
which hooks take the data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .._resources import Resources
from .._state import S_co
from ._base import NextState
from .poll import PollOutcome
from .stepped import StepOutcome
from .timer import TimerOutcome

__all__ = [
    "BatchDataLike",
    "CompensatableDataLike",
    "PollDataLike",
    "RouterDataLike",
    "SteppedDataLike",
    "SupportsRunData",
    "TimerDataLike",
]


class SupportsRunData(Protocol[S_co]):
    """A plain task taking the run data: ``run(res, data)``."""

    async def run(self, res: Resources, data: Any, /) -> NextState[S_co]: ...


class RouterDataLike(Protocol[S_co]):
    """A router taking the run data: ``route(res, data)``."""

    async def route(self, res: Resources, data: Any, /) -> NextState[S_co]: ...


class PollDataLike(Protocol[S_co]):
    """A poller taking the run data: ``poll(res, data)``."""

    async def poll(self, res: Resources, data: Any, /) -> PollOutcome[S_co]: ...


class SteppedDataLike(Protocol[S_co]):
    """A stepped task taking the run data: ``step(res, cursor, data)``."""

    async def step(self, res: Resources, cursor: Any, data: Any, /) -> StepOutcome[Any, S_co]: ...


class TimerDataLike(Protocol[S_co]):
    """A timer whose ``wait`` and / or ``after_wait`` take the run data."""

    @property
    def wait(self) -> Callable[..., Awaitable[TimerOutcome]]: ...

    @property
    def after_wait(self) -> Callable[..., Awaitable[NextState[S_co]]]: ...


class BatchDataLike(Protocol[S_co]):
    """A batch whose ``load`` and / or ``finish`` take the run data."""

    @property
    def load(self) -> Callable[..., Awaitable[Sequence[Any]]]: ...

    @property
    def process_item(self) -> Callable[[Any], Awaitable[Any]]: ...

    @property
    def finish(self) -> Callable[..., Awaitable[NextState[S_co]]]: ...


class CompensatableDataLike(Protocol[S_co]):
    """A saga step whose ``run`` and / or ``compensate`` take the run data."""

    @property
    def run(self) -> Callable[..., Awaitable[tuple[NextState[S_co], Any]]]: ...

    @property
    def compensate(self) -> Callable[..., Awaitable[None]]: ...
