"""`@task`: plain tasks from classes or async functions."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar, overload

import attrs

from .._config import TaskConfig
from .._errors import TaskDefinitionError
from .._resources import Resources
from .._state import S
from ._base import TASK_SPEC, NextState, Task
from ._decorate import ModelDecorator
from ._targets import check_to, declare

__all__ = ["FunctionTask", "task"]

C = TypeVar("C", bound=type)
E = TypeVar("E", bound=enum.Enum)

#: ``async def f(res: Resources) -> Step`` (or ``-> TaskResult[Step]``)
TaskFunction = Callable[[Resources], Awaitable[NextState[E]]]
#: ``async def f() -> Step``
BareTaskFunction = Callable[[], Awaitable[NextState[E]]]


class FunctionTask(Task[S], Generic[S]):
    """A `Task` made from an ``async def`` by `@task`: with no parameter it is the task's
    ``run_bare``, with one parameter (the `Resources`) its ``run``. Calling it calls the
    function."""

    _cano_model_base = True

    def __init__(
        self,
        fn: Callable[..., Awaitable[NextState[S]]],
        *,
        takes_resources: bool,
        config: TaskConfig | None = None,
        name: str | None = None,
        state: type[enum.Enum] | None = None,
    ) -> None:
        self.fn = fn
        self.takes_resources = takes_resources
        self._config = config if config is not None else TaskConfig.default()
        self._name = name if name is not None else f"{fn.__module__}.{fn.__qualname__}"
        self.__cano_state__ = state
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def config(self) -> TaskConfig:
        return self._config

    def name(self) -> str:
        return self._name

    async def run(self, res: Resources) -> NextState[S]:
        if self.takes_resources:
            return await self.fn(res)
        return await self.fn()

    async def run_bare(self) -> NextState[S]:
        if self.takes_resources:
            raise TaskDefinitionError(f"task {self._name} needs resources; call run(res)")
        return await self.fn()

    def __call__(self, *args: Any) -> Awaitable[NextState[S]]:
        return self.fn(*args)

    def __repr__(self) -> str:
        return f"<FunctionTask {self._name}>"


def _function_invoker(t: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    return t.fn, t.takes_resources


def _function_data_invoker(t: Any, hooks: Any) -> Callable[..., Awaitable[Any]]:
    return t.fn  # type: ignore[no-any-return]


FunctionTask.__cano_model__ = attrs.evolve(
    TASK_SPEC.bind(Task, _function_invoker),
    data_hooks={"fn": 1},
    data_invoker=_function_data_invoker,
)


def _from_function(
    fn: Callable[..., Any],
    config: TaskConfig | None,
    name: str | None,
    state: type[enum.Enum] | None,
    to: Any = None,
) -> FunctionTask[Any]:
    qual = getattr(fn, "__qualname__", repr(fn))
    if not inspect.iscoroutinefunction(fn):
        raise TaskDefinitionError(f"@task {qual}: a task function must be `async def`")
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is inspect.Parameter.empty
    ]
    if len(params) > 2:
        raise TaskDefinitionError(
            f"@task {qual}: a task function takes no parameter (run_bare), one (the "
            f"Resources) or two (the Resources and the run data); it takes {len(params)}"
        )
    if config is not None and not isinstance(config, TaskConfig):
        raise TaskDefinitionError(f"@task {qual}: config must be a TaskConfig, got {config!r}")
    where = f"@task {qual}"
    declared = check_to(to, where, state)
    out: FunctionTask[Any] = FunctionTask(
        fn, takes_resources=bool(params), config=config, name=name, state=state
    )
    declare(out, declared, fn, False, where)
    return out


class _TaskWrap(Protocol):
    """What ``@task(config=..., name=...)`` returns: a decorator inferring the state type
    from the function's return annotation."""

    @overload
    def __call__(self, target: C, /) -> C: ...
    @overload
    def __call__(self, target: TaskFunction[E], /) -> FunctionTask[E]: ...
    @overload
    def __call__(self, target: BareTaskFunction[E], /) -> FunctionTask[E]: ...
    @overload
    def __call__(self, target: Callable[..., Awaitable[object]], /) -> FunctionTask[Any]: ...


class _TaskWrapFor(Protocol[E]):
    """What ``@task(state=Step)`` returns: the function must return ``Step`` (or a
    ``TaskResult[Step]``); another Enum is a type error."""

    @overload
    def __call__(self, target: C, /) -> C: ...
    @overload
    def __call__(self, target: TaskFunction[E], /) -> FunctionTask[E]: ...
    @overload
    def __call__(self, target: BareTaskFunction[E], /) -> FunctionTask[E]: ...


class _TaskDecorator(ModelDecorator):
    """``@task`` on a class (instances become tasks) or on an async function (returns a
    `Task`). Also reachable: ``task.router``, ``task.poll``, ``task.timer``,
    ``task.batch``, ``task.stepped``, ``task.stream``, ``task.compensatable``."""

    router: ModelDecorator
    poll: ModelDecorator
    timer: ModelDecorator
    batch: ModelDecorator
    stepped: ModelDecorator
    stream: ModelDecorator
    compensatable: ModelDecorator

    @overload  # type: ignore[override]
    def __call__(self, target: C) -> C: ...
    @overload
    def __call__(self, target: TaskFunction[E]) -> FunctionTask[E]: ...
    @overload
    def __call__(self, target: BareTaskFunction[E]) -> FunctionTask[E]: ...
    @overload
    def __call__(self, target: Callable[..., Awaitable[object]]) -> FunctionTask[Any]: ...
    @overload
    def __call__(
        self,
        target: None = None,
        *,
        state: type[E],
        config: TaskConfig | None = None,
        name: str | None = None,
        to: Iterable[enum.Enum] | enum.Enum | None = None,
    ) -> _TaskWrapFor[E]: ...
    @overload
    def __call__(
        self,
        target: None = None,
        *,
        state: None = None,
        config: TaskConfig | None = None,
        name: str | None = None,
        to: Iterable[enum.Enum] | enum.Enum | None = None,
    ) -> _TaskWrap: ...
    def __call__(
        self,
        target: Any = None,
        *,
        state: type[enum.Enum] | None = None,
        config: TaskConfig | None = None,
        name: str | None = None,
        to: Iterable[enum.Enum] | enum.Enum | None = None,
    ) -> Any:
        if state is not None and not (isinstance(state, type) and issubclass(state, enum.Enum)):
            raise TaskDefinitionError(f"@task(state=...) takes an Enum class, got {state!r}")

        def wrap(obj: Any) -> Any:
            if isinstance(obj, type):
                return self._apply(obj, state, config, name, to)
            if callable(obj):
                return _from_function(obj, config, name, state, to)
            raise TaskDefinitionError(f"@task decorates a class or an async function, got {obj!r}")

        return wrap if target is None else wrap(target)


task = _TaskDecorator(TASK_SPEC)
"""``@task`` / ``@task(config=..., name=..., state=..., to=...)``: make a class a `Task`
(it defines ``run`` or ``run_bare``) or an async function a `FunctionTask`. ``to=``
(or a ``Literal[...]`` return annotation) declares the states it may return
(docs/transitions.md). The other models' decorators are reachable from it too
(``task.router``, ``task.batch``, ...). Checked at decoration time."""
