"""`Task`: the root of every processing model (REFERENCE §2.2)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, Protocol, Union

import attrs

from .._config import TaskConfig
from .._errors import ConfigurationError
from .._resources import Resources
from .._state import S, S_co, TaskResult
from ._decorate import ModelSpec, _own_or_inherited, check_class

__all__ = [
    "TASK_SPEC",
    "NextState",
    "SupportsRun",
    "SupportsRunBare",
    "Task",
    "TaskLike",
    "default_name",
]

NextState = Union[S, TaskResult[S]]


class SupportsRun(Protocol[S_co]):
    """What a type checker sees of a plain task that uses the resources: ``run(res)``."""

    async def run(self, res: Resources, /) -> NextState[S_co]:
        """Run the state with the workflow's resources; return the next state."""


class SupportsRunBare(Protocol[S_co]):
    """What a type checker sees of a plain task without resources: ``run_bare()``."""

    async def run_bare(self) -> NextState[S_co]:
        """Run the state without resources; return the next state."""


#: A plain task moving to states of ``S``: a `Task` subclass, a `@task` class or function.
TaskLike = Union[SupportsRun[S_co], SupportsRunBare[S_co]]
"""What a type checker sees of a plain task: a `run(res)` or a `run_bare()` method."""


def default_name(obj: Any) -> str:
    """``module.qualname`` of the object's class."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _task_invoker(task: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    cls = type(task)
    if _own_or_inherited(cls, "run", Task) is not None:
        return task.run, True
    return task.run_bare, False


TASK_SPEC = ModelSpec("task", one_of=("run", "run_bare"), returns=("run", "run_bare"))


class Task(abc.ABC, Generic[S]):
    """A unit of work bound to a state: ``run(res)`` (or ``run_bare()``) returns the next
    state. Subclass it and define exactly one of them, or decorate a class or an async
    function with `@task`. ``config()`` and ``name()`` have defaults."""

    __cano_model__: ClassVar[ModelSpec] = TASK_SPEC
    _cano_model_base: ClassVar[bool] = True

    def config(self) -> TaskConfig:
        """How the engine runs this task; read once, at registration."""
        return TaskConfig.default()

    def name(self) -> str:
        """Identifier in observer events, checkpoint rows and compensation lookups."""
        return default_name(self)

    async def run(self, res: Resources) -> NextState[S]:
        """Do the work with access to the workflow's resources; return the next state."""
        return await self.run_bare()

    async def run_bare(self) -> NextState[S]:
        """Do the work without resources; return the next state."""
        raise ConfigurationError(
            f"Task<{type(self).__qualname__}>: neither `run` nor `run_bare` was "
            "implemented; override one of them"
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_cano_model_base") or cls.__dict__.get("__cano_abstract__"):
            return
        check_class(cls.__cano_model__, cls, register=False)


def _task_data_invoker(task: Any, hooks: Any) -> Callable[..., Awaitable[Any]]:
    return task.run  # type: ignore[no-any-return]


TASK_SPEC = attrs.evolve(
    TASK_SPEC.bind(Task, _task_invoker),
    data_hooks={"run": 1},
    data_invoker=_task_data_invoker,
)
Task.__cano_model__ = TASK_SPEC
