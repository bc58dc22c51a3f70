"""`@router` / `RouterTask`: side-effect-free branching (REFERENCE §3.1).

Registered with `Workflow.register_router`, a router writes no checkpoint row and
consumes no sequence number; it still fires ``on_state_enter`` and appears in the
path. Registered with plain `Workflow.register` it behaves as an ordinary task.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol

import attrs

from .._resources import Resources
from .._state import S, S_co
from ._base import NextState, Task
from ._decorate import ModelDecorator, ModelSpec

__all__ = ["RouterLike", "RouterTask", "router"]


def _router_invoker(t: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return t.route, True


ROUTER_SPEC = ModelSpec("router", required=("route",), returns=("route",))


class RouterLike(Protocol[S_co]):
    """What a type checker sees of a router (a `RouterTask` or a `@router` class)."""

    async def route(self, res: Resources, /) -> NextState[S_co]:
        """Choose the next state (routers write no checkpoint row)."""


class RouterTask(Task[S]):
    """A task whose only job is to pick the next state: ``route(res)``. Its default
    config retries like any task (`TaskConfig.default()`)."""

    __cano_model__: ClassVar[ModelSpec] = ROUTER_SPEC
    __cano_injected__: ClassVar[tuple[str, ...]] = ("run",)
    _cano_model_base: ClassVar[bool] = True

    @abc.abstractmethod
    async def route(self, res: Resources) -> NextState[S]:
        """Read the resources and return the next state; keep it free of side effects."""

    async def run(self, res: Resources) -> NextState[S]:
        return await self.route(res)


def _router_data_invoker(t: Any, hooks: Any) -> Callable[..., Awaitable[Any]]:
    return t.route  # type: ignore[no-any-return]


ROUTER_SPEC = attrs.evolve(
    ROUTER_SPEC.bind(RouterTask, _router_invoker),
    data_hooks={"route": 1},
    data_invoker=_router_data_invoker,
)
RouterTask.__cano_model__ = ROUTER_SPEC

router = ModelDecorator(ROUTER_SPEC)
"""``@router`` / ``@router(state=Step, name=...)``: make a class a `RouterTask` with an
async ``route`` choosing the next state (register it with
`Workflow.register_router`). Checked at decoration time."""
