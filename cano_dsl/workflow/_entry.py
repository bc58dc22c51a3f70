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
        "fast",
        "invoke",
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
        # the engine may call the task inline (no timeout, no breaker)
        self.fast = kind in (SINGLE, ROUTER) and self.config.is_plain
        # raced against the cancellation token and the total-timeout deadline
        self.raced = kind not in (COMPENSATABLE, STREAM)
        # split branches: how to call each one, worked out once at registration
        self.invokers = [invoker_of(t) for t in tasks]

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


class Run:
    """Mutable state of one orchestrate / resume_from call."""

    __slots__ = (
        "cancel_reported",
        "comp_budget",
        "cursors",
        "deadline",
        "in_flight",
        "limit",
        "path",
        "sequence",
        "span_name",
        "stack",
        "started",
        "token",
        "tracer",
        "workflow_id",
    )

    def __init__(self, workflow_id: str | None, token: Any) -> None:
        self.workflow_id = workflow_id
        self.sequence = 0
        self.path: list[enum.Enum] = []
        # compensation stack: (task_id, JSON blob) in push order
        self.stack: list[tuple[str, bytes]] = []
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
