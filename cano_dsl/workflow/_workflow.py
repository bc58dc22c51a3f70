"""`Workflow`: the immutable builder and its entry points (REFERENCE §1)."""

from __future__ import annotations

import datetime
import enum
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Union, overload

import anyio

from .. import _metrics, _spans
from .._cancel import CancellationToken
from .._config import TaskConfig, optional_seconds
from .._errors import ConfigurationError
from .._ids import check_workflow_id
from .._observer import check_observer, notify
from .._resources import DEFAULT_TEARDOWN_TIMEOUT, Resources, teardown_limit
from .._state import S
from ..stores._claim import claim_run
from ..tasks._decorate import ModelSpec, constant, model_of, returning_method
from ..tasks._targets import declared_targets
from ._data import DataCodec, RunResult
from ._engine import drain, fsm
from ._entry import (
    COMPENSATABLE,
    ROUTER,
    SINGLE,
    SPLIT,
    STEPPED,
    STREAM,
    Entry,
    Run,
    data_hooks_of,
)
from ._split import JoinConfig, join_config_error
from ._transitions import transition_problems, unreachable

__all__ = ["Unbound", "Workflow"]

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..tasks._base import TaskLike
    from ..tasks._data_protocols import (
        BatchDataLike,
        CompensatableDataLike,
        PollDataLike,
        RouterDataLike,
        SteppedDataLike,
        SupportsRunData,
        TimerDataLike,
    )
    from ..tasks.batch import BatchLike
    from ..tasks.compensatable import CompensatableLike
    from ..tasks.poll import PollLike
    from ..tasks.router import RouterLike
    from ..tasks.stepped import SteppedLike
    from ..tasks.stream import StreamLike
    from ..tasks.timer import TimerLike

    #: Anything `Workflow.register` takes, moving to states of ``S``.
    Registrable = Union[
        TaskLike[S],
        RouterLike[S],
        PollLike[S],
        TimerLike[S],
        BatchLike[S],
        SteppedLike[S],
        StreamLike[S],
        SupportsRunData[S],
        RouterDataLike[S],
        PollDataLike[S],
        TimerDataLike[S],
        BatchDataLike[S],
        SteppedDataLike[S],
    ]
    #: A router, with or without the run data.
    AnyRouter = Union[RouterLike[S], RouterDataLike[S]]
    #: A stepped task, with or without the run data.
    AnyStepped = Union[SteppedLike[S], SteppedDataLike[S]]
    #: A saga step, with or without the run data.
    AnyCompensatable = Union[CompensatableLike[S], CompensatableDataLike[S]]
    #: A task of a split state: what it returns is kept in the `SplitResult`, not used
    #: as a state, so any return type goes.
    SplitBranch = Registrable[Any]

E = TypeVar("E", bound=enum.Enum)


class Unbound(enum.Enum):
    """The state type of a `Workflow` that has not seen a state yet: ``Workflow(res)``
    is a ``Workflow[Unbound]`` until the first ``register*`` or ``add_exit_state*``
    call fixes it to the Enum of that state (a type-checking device; no member)."""


_log = logging.getLogger("cano_dsl.workflow")


def _shown(entry: Entry) -> str:
    if entry.kind == SPLIT:
        return f"a split of {len(entry.tasks)}"
    return entry.task_id or type(entry.task).__qualname__


def _state_name(state: Any) -> str:
    return f"{type(state).__name__}.{state.name}" if isinstance(state, enum.Enum) else "initial"


def _run_on_fresh_loop(fn: Callable[[], Awaitable[Any]], backend: str, initial: Any) -> Any:
    """``anyio.run(fn)``; inside a running event loop, an error that says what to do."""
    started = []

    async def go() -> Any:
        started.append(True)
        return await fn()

    try:
        return anyio.run(go, backend=backend)
    except RuntimeError as exc:
        if started:
            raise
        raise RuntimeError(
            f"run_sync cannot start an event loop inside a running one ({exc}); in "
            f"async code use `await workflow.orchestrate({_state_name(initial)})`"
        ) from exc


_NO_DATA: Any = object()
D = TypeVar("D")

# Which task models each registration method takes.
_COMPANION_MODELS = frozenset({"task", "router", "poll", "timer", "batch", "stepped", "stream"})
_MODELS_FOR = {
    "register": _COMPANION_MODELS,
    "register_router": frozenset({"router"}),
    "register_split": _COMPANION_MODELS,
    "register_stepped": frozenset({"stepped"}),
    "register_stream": frozenset({"stream"}),
    "register_with_compensation": frozenset({"compensatable"}),
}
_KIND_FOR = {
    "register": SINGLE,
    "register_router": ROUTER,
    "register_stepped": STEPPED,
    "register_stream": STREAM,
    "register_with_compensation": COMPENSATABLE,
}


class Workflow(Generic[S]):
    """A finite state machine over one Enum: a task per state, exit states, and how to
    run it. Every builder method returns a new `Workflow` and leaves the receiver
    unchanged, so a built workflow can be shared and run concurrently.

    ```python
    wf = (Workflow(resources)
          .register(Step.FETCH, fetch)
          .register(Step.PARSE, parse)
          .add_exit_state(Step.DONE))
    final = await wf.orchestrate(Step.FETCH)
    ```
    """

    @overload
    def __init__(self: Workflow[Unbound], resources: Resources | None = None) -> None: ...
    @overload
    def __init__(self, resources: Resources | None = None, *, state: type[S]) -> None: ...
    @overload
    def __init__(self, resources: Resources | None = None) -> None: ...
    def __init__(self, resources: Resources | None = None, *, state: type[S] | None = None) -> None:
        if resources is None:
            resources = Resources()
        if not isinstance(resources, Resources):
            raise ConfigurationError(
                f"Workflow(resources) takes a cano_dsl.Resources, got {type(resources).__name__}"
            )
        if state is not None and not (isinstance(state, type) and issubclass(state, enum.Enum)):
            raise ConfigurationError(f"Workflow(state=...) takes an Enum class, got {state!r}")
        self._resources = resources
        self._state_type: type[S] | None = state
        self._entries: dict[S, Entry] = {}
        self._exits: tuple[S, ...] = ()
        self._exit_set: frozenset[S] = frozenset()
        self._observers: tuple[Any, ...] = ()
        self._total_timeout: float | None = None
        self._comp_timeout: float | None = None
        self._teardown_timeout: float | None = DEFAULT_TEARDOWN_TIMEOUT
        self._store: Any = None
        self._workflow_id: str | None = None
        self._version = 0
        self._compensators: dict[str, Any] = {}
        self._comp_data: frozenset[str] = frozenset()
        self._codec: DataCodec | None = None
        self._validated: BaseException | bool | None = None
        self._tracing_span: Any = None
        self._replaced: tuple[str, ...] = ()

    @classmethod
    def bare(cls) -> Workflow[Unbound]:
        """A workflow with empty `Resources`."""
        return cls(Resources())

    # -- builder plumbing -------------------------------------------------------
    def _evolve(self, **changes: Any) -> Workflow[S]:
        new: Workflow[S] = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        new._validated = None
        return new

    def _check_state(self, state: Any, what: str) -> type[S]:
        if not isinstance(state, enum.Enum):
            raise ConfigurationError(f"{what}: a state must be an Enum member, got {state!r}")
        expected = self._state_type
        if expected is None:
            return type(state)  # type: ignore[return-value]
        if type(state) is not expected:
            raise ConfigurationError(
                f"{what}: {state!r} is not a member of this workflow's state Enum "
                f"{expected.__name__}"
            )
        return expected

    def _check_task(self, method: str, state: Any, task: Any, state_type: type[S]) -> ModelSpec:
        where = f"{method}({state.name}, ...)"
        spec = model_of(task)
        if spec is None:
            if isinstance(task, (list, tuple, set, frozenset)) and method != "register_split":
                raise ConfigurationError(
                    f"{where}: got a {type(task).__name__} of tasks; to run several tasks "
                    f"in parallel in one state use register_split({state.name}, [a, b], "
                    "JoinConfig(JoinStrategy.all(), NEXT_STATE))"
                )
            if isinstance(task, type):
                if getattr(task, "__cano_model__", None) is not None:
                    raise ConfigurationError(
                        f"{where}: got the class {task.__qualname__}; "
                        f"did you mean `{task.__qualname__}()`?"
                    )
                raise ConfigurationError(
                    f"{where}: got the class {task.__qualname__}, which is not a task; "
                    "decorate it (@task, @batch, ...) and pass an instance"
                )
            if callable(task):
                name = getattr(task, "__qualname__", repr(task))
                raise ConfigurationError(
                    f"{where}: {name} is a plain function; decorate it with @task"
                )
            raise ConfigurationError(f"{where}: {task!r} is not a task")
        allowed = _MODELS_FOR[method]
        if spec.decorator not in allowed:
            wanted = " or ".join(f"@{m}" for m in sorted(allowed))
            hint = {
                "compensatable": "; use register_with_compensation",
                "stepped": "",
                "stream": "",
            }.get(spec.decorator, "")
            raise ConfigurationError(
                f"{where}: expected a {wanted} task, got a @{spec.decorator} task "
                f"{type(task).__qualname__}{hint}"
            )
        declared = getattr(task, "__cano_state__", None)
        if declared is not None and declared is not state_type:
            raise ConfigurationError(
                f"{where}: {type(task).__qualname__} was declared for states of "
                f"{declared.__name__}, not {state_type.__name__}"
            )
        return spec

    def _captured(self, method: str, task: Any) -> tuple[TaskConfig, str]:
        config = constant(task, "config")
        if not isinstance(config, TaskConfig):
            raise ConfigurationError(
                f"{method}: {type(task).__qualname__}.config must give a TaskConfig, got {config!r}"
            )
        name = constant(task, "name")
        if not isinstance(name, str):
            raise ConfigurationError(
                f"{method}: {type(task).__qualname__}.name must give a str, got {name!r}"
            )
        return config, name

    def _with_entry(self, state: S, entry: Entry, state_type: type[S]) -> Workflow[S]:
        entries = dict(self._entries)
        compensators = dict(self._compensators)
        comp_data = set(self._comp_data)
        old = entries.get(state)
        if old is not None and old.kind == COMPENSATABLE:
            compensators.pop(old.task_id, None)
            comp_data.discard(old.task_id)
        if entry.kind == COMPENSATABLE:
            compensators[entry.task_id] = entry.task
            if "compensate" in entry.data_hooks:
                comp_data.add(entry.task_id)
        entries[state] = entry
        replaced = self._replaced
        if old is not None:  # allowed (cano replaces), but often a slip: say so
            what = f"{state.name} was registered twice: {_shown(old)} replaced by {_shown(entry)}"
            _log.debug("%s", what)
            replaced = (*replaced, what)
        return self._evolve(
            _entries=entries,
            _compensators=compensators,
            _comp_data=frozenset(comp_data),
            _state_type=state_type,
            _replaced=replaced,
        )

    def _register_one(self, method: str, state: S, task: Any) -> Workflow[S]:
        state_type = self._check_state(state, method)
        spec = self._check_task(method, state, task, state_type)
        config, name = self._captured(method, task)
        assert spec.invoker is not None
        invoke, pass_res = spec.invoker(task)
        to = declared_targets(
            task,
            returning_method(spec, type(task)),
            spec.returns_tuple,
            state_type,
            f"{method}({state.name}, ...)",
        )
        hooks = data_hooks_of(task)
        if method == "register_stream":
            hooks = {}
        entry = Entry(
            _KIND_FOR[method],
            task,
            config,
            name,
            invoke=invoke,
            pass_res=pass_res,
            to=to,
            data_hooks=hooks,
        )
        return self._with_entry(state, entry, state_type)

    # -- registration -----------------------------------------------------------
    @overload
    def register(self: Workflow[Unbound], state: E, task: Registrable[E]) -> Workflow[E]: ...
    @overload
    def register(self, state: S, task: Registrable[S]) -> Workflow[S]: ...
    def register(self, state: Any, task: Any) -> Workflow[Any]:
        """Run ``task`` in ``state`` (any model but compensatable: plain tasks, routers,
        batches, pollers, timers, and stepped or stream tasks without persistence).
        Replaces a previous handler. The task's config is read once, now."""
        return self._register_one("register", state, task)

    @overload
    def register_router(self: Workflow[Unbound], state: E, task: AnyRouter[E]) -> Workflow[E]: ...
    @overload
    def register_router(self, state: S, task: AnyRouter[S]) -> Workflow[S]: ...
    def register_router(self, state: Any, task: Any) -> Workflow[Any]:
        """Run a `@router` in ``state``: it writes no checkpoint row."""
        return self._register_one("register_router", state, task)

    @overload
    def register_stepped(self: Workflow[Unbound], state: E, task: AnyStepped[E]) -> Workflow[E]: ...
    @overload
    def register_stepped(self, state: S, task: AnyStepped[S]) -> Workflow[S]: ...
    def register_stepped(self, state: Any, task: Any) -> Workflow[Any]:
        """Run a `@stepped` task with per-step retries and a persisted cursor."""
        return self._register_one("register_stepped", state, task)

    @overload
    def register_stream(self: Workflow[Unbound], state: E, task: StreamLike[E]) -> Workflow[E]: ...
    @overload
    def register_stream(self, state: S, task: StreamLike[S]) -> Workflow[S]: ...
    def register_stream(self, state: Any, task: Any) -> Workflow[Any]:
        """Run a `@stream` task with windows, a cooperative cancel drain and a persisted
        cursor."""
        return self._register_one("register_stream", state, task)

    @overload
    def register_with_compensation(
        self: Workflow[Unbound], state: E, task: AnyCompensatable[E]
    ) -> Workflow[E]: ...
    @overload
    def register_with_compensation(self, state: S, task: AnyCompensatable[S]) -> Workflow[S]: ...
    def register_with_compensation(self, state: Any, task: Any) -> Workflow[Any]:
        """Run a `@compensatable` saga step; its output is kept for rollback. Names must
        be unique per workflow (the compensator is found by ``name()``)."""
        return self._register_one("register_with_compensation", state, task)

    @overload
    def register_split(
        self: Workflow[Unbound],
        state: E,
        tasks: Iterable[SplitBranch],
        join_config: JoinConfig[E],
    ) -> Workflow[E]: ...
    @overload
    def register_split(
        self, state: S, tasks: Iterable[SplitBranch], join_config: JoinConfig[S]
    ) -> Workflow[S]: ...
    def register_split(
        self, state: Any, tasks: Iterable[Any], join_config: JoinConfig[Any]
    ) -> Workflow[Any]:
        """Run every task of ``tasks`` in parallel in ``state``; ``join_config`` decides
        whether the run continues to its ``join_state``."""
        method = "register_split"
        state_type = self._check_state(state, method)
        if not isinstance(join_config, JoinConfig):
            raise ConfigurationError(
                f"{method}({state.name}, ...): join_config must be a JoinConfig, "
                f"got {join_config!r}"
            )
        join_state = join_config.join_state
        if not isinstance(join_state, enum.Enum) or type(join_state) is not state_type:
            raise ConfigurationError(
                f"{method}({state.name}, ...): join_state {join_state!r} is not a member of "
                f"this workflow's state Enum {state_type.__name__}"
            )
        if model_of(tasks) is not None or not isinstance(tasks, Iterable):
            raise ConfigurationError(
                f"{method}({state.name}, ...): tasks must be a list of tasks, got {tasks!r}"
            )
        task_list = list(tasks)
        configs = []
        for t in task_list:
            self._check_task(method, state, t, state_type)
            configs.append(self._captured(method, t)[0])
        entry = Entry(
            SPLIT, None, None, "", tasks=tuple(task_list), configs=tuple(configs), join=join_config
        )
        return self._with_entry(state, entry, state_type)

    @overload
    def add_exit_state(self: Workflow[Unbound], state: E) -> Workflow[E]: ...
    @overload
    def add_exit_state(self, state: S) -> Workflow[S]: ...
    def add_exit_state(self, state: Any) -> Workflow[Any]:
        """Mark ``state`` as terminal (it needs no handler); duplicates are ignored."""
        state_type = self._check_state(state, "add_exit_state")
        if state in self._exit_set:
            return self._evolve(_state_type=state_type)
        exits = (*self._exits, state)
        return self._evolve(_exits=exits, _exit_set=frozenset(exits), _state_type=state_type)

    @overload
    def add_exit_states(self: Workflow[Unbound], states: Iterable[E]) -> Workflow[E]: ...
    @overload
    def add_exit_states(self, states: Iterable[S]) -> Workflow[S]: ...
    def add_exit_states(self, states: Iterable[Any]) -> Workflow[Any]:
        """`add_exit_state` for each of ``states``, in order."""
        if isinstance(states, (enum.Enum, str)) or not isinstance(states, Iterable):
            raise ConfigurationError(
                f"add_exit_states takes an iterable of states, got {states!r}; "
                "use add_exit_state for one state"
            )
        wf = self
        for s in states:
            wf = wf.add_exit_state(s)
        return wf

    def with_observer(self, observer: Any) -> Workflow[S]:
        """Add an observer; observers are called in the order they were added.

        ``observer`` must be an instance with at least one `WorkflowObserver` hook, and
        its hooks must be synchronous; anything else is a `ConfigurationError` now."""
        check_observer(observer, "with_observer")
        return self._evolve(_observers=(*self._observers, observer))

    def with_tracing_span(self, span: Span) -> Workflow[S]:
        """Run under ``span`` (an OpenTelemetry span): it replaces the default
        ``workflow_orchestrate`` / ``workflow_resume`` span as the parent of the run's
        state spans, and is current while the run's tasks execute (so spans they open
        are its descendants). The span is the caller's: the run does not end it.
        Scheduler runs (``execute_flow``) do not use it."""
        return self._evolve(_tracing_span=_spans.check_span(span, "with_tracing_span"))

    def with_total_timeout(self, timeout: float | datetime.timedelta) -> Workflow[S]:
        """Bound every run (from the first state to the exit) by ``timeout`` seconds."""
        return self._evolve(_total_timeout=optional_seconds(timeout, "total timeout"))

    def with_compensation_timeout(self, timeout: float | datetime.timedelta) -> Workflow[S]:
        """Bound the compensation drain after a failure of a run that has a total
        timeout (default ``min(total / 2, 30)``). Without a total timeout the drain is
        unbounded; each compensator is still bounded by its own ``attempt_timeout``."""
        return self._evolve(_comp_timeout=optional_seconds(timeout, "compensation timeout"))

    def with_teardown_timeout(self, timeout: float | datetime.timedelta | None) -> Workflow[S]:
        """Bound each resource's ``teardown`` at the end of a run (default 30 s).

        A teardown that overruns is cancelled and abandoned: the run logs an error
        naming the resource, calls the observers' ``on_teardown_timeout(key, limit)``
        and goes on with the next resource. ``timeout`` is float seconds or a
        ``timedelta``, finite and > 0; ``None`` removes the bound."""
        return self._evolve(_teardown_timeout=teardown_limit(timeout, "teardown timeout"))

    def with_checkpoint_store(self, store: Any) -> Workflow[S]:
        """Write a checkpoint log to ``store`` (needs `with_workflow_id`)."""
        if isinstance(store, type):
            raise ConfigurationError(
                f"with_checkpoint_store: got the class {store.__qualname__}; pass an "
                f"instance (`{store.__qualname__}(...)`)"
            )
        for method in ("append", "load_run", "clear"):
            if not callable(getattr(store, method, None)):
                raise ConfigurationError(
                    f"with_checkpoint_store: {type(store).__qualname__} has no `{method}` "
                    "method; a store implements append, load_run and clear"
                )
        return self._evolve(_store=store)

    def with_workflow_id(self, workflow_id: str) -> Workflow[S]:
        """The id under which runs write their checkpoint log."""
        workflow_id = check_workflow_id(workflow_id, "with_workflow_id")
        return self._evolve(_workflow_id=workflow_id)

    def with_run_data(self, data_type: type[Any]) -> Workflow[S]:
        """Give every run a value of ``data_type`` that its tasks can read and change and
        that the checkpoint log carries, so a resumed run gets it back (docs/run-data.md).

        ``data_type`` is an attrs class, a dataclass (fields: nested attrs classes or
        dataclasses, ``list[X]``, ``dict[str, X]``, ``Optional[X]``, Enum, str, int,
        float, bool, None, Any) or ``dict`` (a plain JSON mapping). The converter is
        compiled now; a type it cannot hold is a `ConfigurationError`. A task takes the
        data as one more positional parameter after the ones its model passes, e.g.
        ``async def price(res, data: Order)``."""
        return self._evolve(_codec=DataCodec(data_type))

    @property
    def run_data_type(self) -> type[Any] | None:
        """The type given to `with_run_data`, or None."""
        return self._codec.type if self._codec is not None else None

    def with_workflow_version(self, version: int) -> Workflow[S]:
        """Stamp checkpoint rows with ``version``; resume refuses a log of another one."""
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**31:
            raise ConfigurationError(
                f"workflow version must be an int in [0, 2**31), got {version!r}"
            )
        return self._evolve(_version=version)

    # -- introspection ----------------------------------------------------------
    def registered_states(self) -> list[S]:
        """States that have a handler (exit-only states excluded)."""
        return list(self._entries)

    @property
    def exit_states(self) -> tuple[S, ...]:
        """The exit states, in the order they were added."""
        return self._exits

    @property
    def resources(self) -> Resources:
        """The `Resources` every run sets up, passes to tasks and tears down."""
        return self._resources

    @property
    def workflow_id(self) -> str | None:
        """The id checkpoint rows are stored under (`with_workflow_id`), or None."""
        return self._workflow_id

    @property
    def workflow_version(self) -> int:
        """The version stamped on checkpoint rows (`with_workflow_version`, default 0)."""
        return self._version

    def entry_kind(self, state: S) -> str | None:
        """How ``state`` is registered (``"single"``, ``"router"``, ``"split"``, ...)."""
        entry = self._entries.get(state)
        return entry.kind if entry is not None else None

    def __repr__(self) -> str:
        st = self._state_type.__name__ if self._state_type is not None else "?"
        return f"Workflow[{st}](states={len(self._entries)}, exits={[s.name for s in self._exits]})"

    # -- validation -------------------------------------------------------------
    def _is_known(self, state: Any) -> bool:
        return state in self._entries or state in self._exit_set

    def validate(self) -> None:
        """Check the workflow's shape; raise `ConfigurationError` (REFERENCE §1.3).

        With declared transitions (``to=``, ``Literal`` return annotations; see
        docs/transitions.md) it also reports, in one error listing every problem, a
        declared target that is neither registered nor an exit state and a state with
        no path to an exit state. An undeclared task counts as "may go anywhere". The
        first call also logs each of `warnings` on the ``cano_dsl.workflow`` logger."""
        cached = self._validated
        if cached is True:
            return
        if isinstance(cached, BaseException):
            raise cached
        err = self._validation_error()
        self._validated = err if err is not None else True
        for warning in self.warnings():
            _log.warning("%s", warning)
        if err is not None:
            raise err

    def warnings(self) -> list[str]:
        """Things that are allowed but usually a slip: a state registered twice (the
        last registration wins) and a state both registered and an exit state (it is
        never run: the run stops there). `validate` never raises for them."""
        found = list(self._replaced)
        for state in self._exits:
            if state in self._entries:
                found.append(
                    f"{state.name} is both registered and an exit state: a run stops when "
                    "it enters it and its task never runs"
                )
        return found

    def _validation_error(self) -> ConfigurationError | None:
        if not self._entries:
            return ConfigurationError("Workflow has no registered state handlers")
        if not self._exits:
            return ConfigurationError(
                "Workflow has no exit states defined — orchestration may loop forever"
            )
        for state, entry in self._entries.items():
            if entry.kind == SPLIT:
                err = join_config_error(entry.join, self._is_known)
                if err is not None:
                    return err
            err = self._data_error(state, entry)
            if err is not None:
                return err
        problems = transition_problems(self._entries, self._exit_set)
        if problems:
            listed = "".join(f"\n  - {p}" for p in problems)
            return ConfigurationError(
                f"Workflow declared transitions: {len(problems)} problem(s):{listed}"
            )
        return None

    def _data_error(self, state: Any, entry: Entry) -> ConfigurationError | None:
        """A task taking the run data on a workflow that declares none, or whose data
        parameter is annotated with another type."""
        tasks = entry.tasks if entry.kind == SPLIT else (entry.task,)
        for task in tasks:
            hooks = entry.data_hooks if entry.kind != SPLIT else data_hooks_of(task)
            if not hooks:
                continue
            name = constant(task, "name")
            hook = next(iter(hooks))
            codec = self._codec
            if codec is None:
                return ConfigurationError(
                    f"state {state.name}: task {name} takes run data (the extra parameter of "
                    f"`{hook}`), but the workflow declares none: call with_run_data(Type)"
                )
            for hook, ann in hooks.items():
                if ann is inspect.Parameter.empty or ann is Any or ann == "Any":
                    continue
                ok = ann is codec.type or getattr(ann, "__origin__", None) is codec.type
                if isinstance(ann, str):
                    bare = ann.strip("'\"").split("[", 1)[0].rsplit(".", 1)[-1]
                    ok = bare in (codec.type.__name__, codec.type.__qualname__)
                if not ok:
                    shown = ann if isinstance(ann, str) else getattr(ann, "__qualname__", ann)
                    return ConfigurationError(
                        f"state {state.name}: the run data parameter of {name}.{hook} is "
                        f"annotated {shown}, but the workflow's run data is {codec.name}"
                    )
        return None

    def validate_initial_state(self, state: S) -> None:
        """``state`` must be registered or an exit state, and with declared transitions
        every registered state must be reachable from it (a `ConfigurationError` lists
        the ones that are not). `orchestrate` checks only the first part: a workflow
        may be entered at several states."""
        self._check_initial(state)
        missed = unreachable(self._entries, self._exit_set, state)
        if missed:
            names = ", ".join(m.name for m in missed)
            raise ConfigurationError(
                f"Workflow declared transitions: from initial state {state.name} no run "
                f"can enter {names} (their tasks never run); declare a transition into "
                "them or remove them"
            )

    def _check_initial(self, state: S) -> None:
        if not self._is_known(state):
            shown = state.name if isinstance(state, enum.Enum) else repr(state)
            raise ConfigurationError(
                f"Initial state {shown} is neither registered nor an exit state"
            )

    # -- running ----------------------------------------------------------------
    def _new_run(
        self,
        workflow_id: str | None,
        cancel: CancellationToken | None,
        span_name: str = "workflow_orchestrate",
    ) -> Run:
        if cancel is not None and not isinstance(cancel, CancellationToken):
            raise ConfigurationError(f"cancel must be a CancellationToken, got {cancel!r}")
        if cancel is not None and cancel.is_disabled:
            cancel = None  # never fires: skip the race entirely
        run = Run(workflow_id, cancel)
        # tracing is decided here, once per run (cano_dsl._spans)
        tracer = run.tracer = _spans.tracer()
        if tracer is not None or (self._tracing_span is not None and span_name != "execute_flow"):
            run.span_name = span_name
        limit = self._total_timeout
        if limit is not None:
            run.started = anyio.current_time()
            run.limit = limit
            run.deadline = run.started + limit
            run.comp_budget = (
                self._comp_timeout if self._comp_timeout is not None else min(limit / 2, 30.0)
            )
        # without a total timeout the drain is unbounded (cano's rule), even when a
        # compensation timeout is set: only per-compensator attempt timeouts apply
        return run

    def _start_data(self, data: Any, what: str) -> tuple[Any, Any]:
        """``(value, tree)`` a new run starts with: a private copy of ``data`` (or of the
        declared type's default), checked now."""
        codec = self._codec
        if codec is None:
            if data is not _NO_DATA:
                raise ConfigurationError(
                    f"{what}(data=...): this workflow declares no run data; call "
                    "with_run_data(Type) first"
                )
            return None, None
        value = codec.default(what) if data is _NO_DATA else data
        codec.check_value(value, what)
        tree = codec.to_tree(value, "(initial data)")
        return codec.from_tree(tree), tree

    def _attach_data(self, run: Run, start: tuple[Any, Any]) -> Run:
        if self._codec is not None:
            run.codec = self._codec
            run.data, run.tree = start
        return run

    async def orchestrate(
        self, initial: S, cancel: CancellationToken | None = None, *, data: Any = _NO_DATA
    ) -> S:
        """Run from ``initial`` to an exit state and return it.

        Raises the validation `ConfigurationError` or a resource's setup error raw;
        every failure inside the machine as `StateFailure` (or `CompensationFailed` for
        a dirty rollback). ``cancel`` ends the run with a wrapped `WorkflowCancelled`.
        ``data`` is the run data the run starts with (`with_run_data`; default: the
        type built without arguments); the run works on its own copy, which `run`
        returns at the end. With a checkpoint store the run is claimed first (when the
        store can claim): `RunClaimedError`, raw, if it is being run elsewhere.
        """
        state, _ = await self._orchestrate(initial, cancel, data, "orchestrate")
        return state

    @overload
    async def run(
        self, initial: S, *, data: D, cancel: CancellationToken | None = None
    ) -> RunResult[S, D]: ...
    @overload
    async def run(
        self, initial: S, *, cancel: CancellationToken | None = None
    ) -> RunResult[S, Any]: ...
    async def run(
        self, initial: S, *, data: Any = _NO_DATA, cancel: CancellationToken | None = None
    ) -> RunResult[S, Any]:
        """`orchestrate`, returning a `RunResult`: the exit state and the final run data
        (``None`` without `with_run_data`). Raises what `orchestrate` raises. Typed: with
        ``data=Order(...)`` the result is a ``RunResult[S, Order]``."""
        state, run = await self._orchestrate(initial, cancel, data, "run")
        return RunResult(state, run.data)

    async def _orchestrate(
        self, initial: S, cancel: CancellationToken | None, data: Any, what: str
    ) -> tuple[S, Run]:
        self.validate()
        self._check_initial(initial)
        if self._store is not None and self._workflow_id is None:
            raise ConfigurationError(
                "a checkpoint store is attached but no workflow id: call "
                "with_workflow_id(...) before orchestrate"
            )
        start = self._start_data(data, what)
        claim = None
        if self._store is not None and self._workflow_id is not None:
            claim = await claim_run(self._store, self._workflow_id)
        try:
            return await self._orchestrate_claimed(initial, cancel, start)
        finally:
            if claim is not None:
                with anyio.CancelScope(shield=True):
                    await claim.release()

    async def _orchestrate_claimed(
        self, initial: S, cancel: CancellationToken | None, start: tuple[Any, Any]
    ) -> tuple[S, Run]:
        """`orchestrate` once the run is claimed: set up, drive, tear down."""
        res = self._resources
        await res._setup(self._teardown_timeout, self._observers)
        try:
            run = self._attach_data(self._new_run(self._workflow_id, cancel), start)
            return await self._drive_measured(run, initial), run
        finally:  # each teardown is shielded and bounded on its own
            await res._teardown(self._teardown_timeout, self._observers)

    async def execute_flow(self, initial: S, cancel: CancellationToken | None = None) -> S:
        """Run the machine without validation and without resource setup/teardown: the
        scheduler's entry point (it validates and sets resources up once per
        scheduler). Honours the total timeout, the token and the checkpoint store."""
        run = self._new_run(self._workflow_id, cancel, "execute_flow")
        if self._codec is not None:
            self._attach_data(run, self._start_data(_NO_DATA, "execute_flow"))
        return await self._drive(run, initial)

    async def _drive(self, run: Run, initial: S) -> S:
        """The loop, with enclosing-scope cancellation reported once and drained."""
        if run.span_name is not None:
            return await self._drive_traced(run, initial)
        try:
            result: S = await fsm(self, run, initial)
            return result
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._on_foreign_cancel(run, initial)
            raise

    async def _drive_traced(self, run: Run, initial: S) -> S:
        """`_drive` inside the run's root span (`cano_dsl._spans.workflow_span`)."""
        name = run.span_name
        assert name is not None
        run.span_name = None
        custom = self._tracing_span if name != "execute_flow" else None
        with _spans.workflow_span(run.tracer, custom, name, run.workflow_id) as span:
            result = await self._drive(run, initial)
            if span is not None and custom is None:
                span.set_attribute("final_state", result.name)
            return result

    async def _drive_measured(self, run: Run, initial: S) -> S:
        """`_drive` for orchestrate / resume_from: the run counter, the duration histogram
        and the active gauge (REFERENCE §11.3), only when a metrics sink is installed."""
        sink = _metrics.SINK
        if sink is None:
            return await self._drive(run, initial)
        sink.gauge_add(_metrics.WORKFLOW_ACTIVE, 1, _metrics.NO_LABELS)
        started = time.perf_counter()
        ok = False
        try:
            result = await self._drive(run, initial)
            ok = True
            return result
        finally:
            labels = _metrics.outcome(ok)
            sink.counter(_metrics.WORKFLOW_RUNS_TOTAL, 1, labels)
            sink.histogram(
                _metrics.WORKFLOW_DURATION_SECONDS, time.perf_counter() - started, labels
            )
            sink.gauge_add(_metrics.WORKFLOW_ACTIVE, -1, _metrics.NO_LABELS)

    async def _on_foreign_cancel(self, run: Run, initial: S) -> None:
        """An enclosing cancel scope cancelled the run: report it once and drain."""
        from .._errors import WorkflowCancelled

        observers = self._observers
        state = run.path[-1] if run.path else initial
        entry = run.in_flight
        if observers and entry is not None:
            err = WorkflowCancelled()
            for task_id in entry.in_flight_ids():
                notify(observers, "on_task_failure", task_id, err)
        if not run.cancel_reported:
            run.cancel_reported = True
            notify(observers, "on_cancelled", state.name)
        if run.stack:
            await drain(self, run)

    async def resume_from(self, workflow_id: str, cancel: CancellationToken | None = None) -> S:
        """Resume the run logged under ``workflow_id`` from its last checkpoint. The run
        is claimed first (when the store can claim): `RunClaimedError`, before any
        resource is set up, if another process or task is running it."""
        from ._resume import resume_from

        result: S = (await resume_from(self, workflow_id, cancel))[0]
        return result

    async def resume(
        self, workflow_id: str, *, cancel: CancellationToken | None = None
    ) -> RunResult[S, Any]:
        """`resume_from`, returning a `RunResult`: the exit state and the final run data
        (restored from the log, then changed by the states that ran after the resume)."""
        from ._resume import resume_from

        state, run = await resume_from(self, workflow_id, cancel)
        return RunResult(state, run.data)

    def run_sync(
        self,
        initial: S,
        *,
        backend: Literal["asyncio", "trio"] | str = "asyncio",
        cancel: CancellationToken | None = None,
        data: Any = _NO_DATA,
    ) -> S:
        """`orchestrate` from synchronous code, on a fresh event loop (``data``: the run
        data to start with; `run_sync_result` also returns the final run data). In async
        code, ``await workflow.orchestrate(initial)`` instead."""
        result: S = _run_on_fresh_loop(
            functools.partial(self.orchestrate, initial, cancel, data=data), backend, initial
        )
        return result

    @overload
    def run_sync_result(
        self,
        initial: S,
        *,
        backend: Literal["asyncio", "trio"] | str = "asyncio",
        cancel: CancellationToken | None = None,
        data: D,
    ) -> RunResult[S, D]: ...
    @overload
    def run_sync_result(
        self,
        initial: S,
        *,
        backend: Literal["asyncio", "trio"] | str = "asyncio",
        cancel: CancellationToken | None = None,
    ) -> RunResult[S, Any]: ...
    def run_sync_result(
        self,
        initial: S,
        *,
        backend: Literal["asyncio", "trio"] | str = "asyncio",
        cancel: CancellationToken | None = None,
        data: Any = _NO_DATA,
    ) -> RunResult[S, Any]:
        """`run` from synchronous code, on a fresh event loop."""
        result: RunResult[S, Any] = _run_on_fresh_loop(
            functools.partial(self.run, initial, data=data, cancel=cancel), backend, initial
        )
        return result
