"""What the builder stores per state, and the per-run context the engine threads
through every dispatch."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any

from .._config import TaskConfig

__all__ = [
    "Entry",
    "Run",
    "invoker_of",
    "SINGLE",
    "ROUTER",
    "SPLIT",
    "COMPENSATABLE",
    "STEPPED",
    "STREAM",
]

SINGLE = "single"
ROUTER = "router"
SPLIT = "split"
COMPENSATABLE = "compensatable"
STEPPED = "stepped"
STREAM = "stream"


class Entry:
    """One registered state: its kind, task(s), captured config(s) and how to call it."""

    __slots__ = (
        "config",
        "configs",
        "data_hooks",
        "data_invokers",
        "fast",
        "invoke",
        "invoke_data",
        "invokers",
        "join",
        "kind",
        "pass_res",
        "raced",
        "task",
        "task_id",
        "tasks",
        "to",
    )

    def __init__(
        self,
        kind: str,
        task: Any = None,
        config: TaskConfig | None = None,
        task_id: str = "",
        invoke: Callable[..., Awaitable[Any]] | None = None,
        pass_res: bool = True,
        tasks: tuple[Any, ...] = (),
        configs: tuple[TaskConfig, ...] = (),
        join: Any = None,
        to: frozenset[Any] | None = None,
        data_hooks: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.task = task
        self.config = config if config is not None else TaskConfig.default()
        self.task_id = task_id
        self.invoke = invoke
        self.pass_res = pass_res
        self.tasks = tasks
        self.configs = configs
        self.join = join
        # declared targets (`@task(to=...)`, a Literal return annotation), or None
        self.to = to
        # hooks taking the run data (name -> annotation), worked out at registration
        self.data_hooks = data_hooks or {}
        self.invoke_data = data_invoker_of(task, self.data_hooks) if self.data_hooks else None
        # the engine may call the task inline (no timeout, no breaker, no run data)
        self.fast = kind in (SINGLE, ROUTER) and self.config.is_plain and not self.data_hooks
        # raced against the cancellation token and the total-timeout deadline
        self.raced = kind not in (COMPENSATABLE, STREAM)
        # split branches: how to call each one, worked out once at registration
        self.invokers = [invoker_of(t) for t in tasks]
        self.data_invokers = [
            data_invoker_of(t, h) if h else None for t, h in ((t, data_hooks_of(t)) for t in tasks)
        ]

    @property
    def wants_data(self) -> bool:
        """Whether the task (or a split branch) takes the run data."""
        return bool(self.data_hooks) or any(d is not None for d in self.data_invokers)

    def call(self, res: Any) -> Callable[[], Awaitable[Any]]:
        """A zero-argument thunk running the task once (for the retry loop)."""
        invoke = self.invoke
        assert invoke is not None
        if self.pass_res:
            return lambda: invoke(res)
        return invoke

    def in_flight_ids(self) -> list[str]:
        """Task ids reported as failed when this dispatch is cut by cancel or timeout."""
        if self.kind == SPLIT:
            return [f"{name}[{i}]" for i, name in enumerate(self.branch_names())]
        return [self.task_id]

    def branch_names(self) -> list[str]:
        from ..tasks._decorate import constant

        return [str(constant(t, "name")) for t in self.tasks]


def invoker_of(task: Any) -> tuple[Callable[..., Awaitable[Any]], bool]:
    """How the engine calls ``task``: ``(callable, takes_resources)``."""
    from ..tasks._decorate import model_of

    spec = model_of(task)
    assert spec is not None and spec.invoker is not None
    return spec.invoker(task)


def data_hooks_of(task: Any) -> dict[str, Any]:
    """The hooks of ``task`` that take the run data (name -> the parameter's annotation)."""
    from ..tasks._decorate import data_params, model_of

    spec = model_of(task)
    if spec is None or not spec.data_hooks:
        return {}
    return data_params(task, spec.data_hooks)


def data_invoker_of(task: Any, hooks: dict[str, Any]) -> Callable[..., Awaitable[Any]] | None:
    """``call(res, data)`` running ``task`` once with the run data (None for a model whose
    data hooks need the engine's own driver: compensatable and register_stepped)."""
    from ..tasks._decorate import model_of

    spec = model_of(task)
    assert spec is not None and spec.data_invoker is not None
    fn: Callable[..., Awaitable[Any]] = spec.data_invoker(task, hooks)
    return fn


class Run:
    """Mutable state of one orchestrate / resume_from call."""

    __slots__ = (
        "cancel_reported",
        "codec",
        "comp_budget",
        "cursors",
        "data",
        "deadline",
        "in_flight",
        "limit",
        "logged",
        "path",
        "sequence",
        "span_name",
        "stack",
        "started",
        "token",
        "tracer",
        "tree",
        "workflow_id",
    )

    def __init__(self, workflow_id: str | None, token: Any) -> None:
        self.workflow_id = workflow_id
        self.sequence = 0
        self.path: list[enum.Enum] = []
        # compensation stack: (task_id, JSON blob[, run data tree]) in push order
        self.stack: list[tuple[Any, ...]] = []
        # latest step / stream cursor per state label (consumed on first use)
        self.cursors: dict[str, bytes] = {}
        self.token = token
        self.deadline: float | None = None
        self.started = 0.0
        self.limit: float | None = None
        self.comp_budget: float | None = None
        self.in_flight: Entry | None = None
        self.cancel_reported = False
        # decided once at the start (cano_dsl._spans.tracer): None = not traced
        self.tracer: Any = None
        # the root span's name when the run is traced or has a custom span, else None
        self.span_name: str | None = None
        # run data: the codec (None: the workflow declares none), the live value, its
        # tree as of the current state's entry, and the tree last written to the log
        self.codec: Any = None
        self.data: Any = None
        self.tree: Any = None
        self.logged: Any = None
