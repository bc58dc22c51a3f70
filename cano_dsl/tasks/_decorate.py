"""The one piece of machinery behind every processing model's decorator.

Each model is described by a `ModelSpec` (required async hooks, optional constant
members with their defaults, the explicit base class). `check_class` validates a
class against a spec at decoration (or subclass-definition) time, injects the missing
defaults and registers the class as a virtual subclass of the model's base, so
``isinstance(obj, BatchTask)`` holds for a decorated plain class. `model_decorator`
turns a spec into a decorator usable as ``@batch`` and ``@batch(state=Step)``.
"""

from __future__ import annotations

import difflib
import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload

import attrs

from .._errors import TaskDefinitionError
from ._targets import check_to, declare

__all__ = [
    "ModelSpec",
    "data_params",
    "check_class",
    "driver_data_invoker",
    "constant",
    "ModelDecorator",
    "model_of",
    "returning_method",
]

C = TypeVar("C", bound=type)

# Names every model may define besides its hooks (never flagged as near-misses).
_ALWAYS_ALLOWED = frozenset({"config", "name"})

# members the decorator machinery or the base classes add themselves
_INTERNAL = frozenset({"run", "run_bare"})


@attrs.frozen
class ModelSpec:
    """The shape of one processing model.

    ``required``: async methods the class must define. ``one_of``: exactly one of these
    async methods must be defined (``run`` / ``run_bare``). ``constants``: optional
    members that may be sync methods or plain attributes, with the base class providing
    defaults. ``generator_ok``: required hooks that may also be async generator
    functions. ``base``: the explicit base class (set once the base is defined).
    """

    decorator: str
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    constants: tuple[str, ...] = ("config", "name")
    generator_ok: frozenset[str] = frozenset()
    base: Any = attrs.field(default=None, eq=False)
    invoker: Callable[[Any], tuple[Callable[..., Any], bool]] | None = attrs.field(
        default=None, eq=False
    )
    default_config: Any = attrs.field(default=None, eq=False)
    checks: Any = attrs.field(factory=dict, eq=False)
    """Constant name -> ``check(value) -> error text | None``, applied at decoration to
    a constant written as a plain attribute (methods are checked when read)."""
    returns: tuple[str, ...] = ()
    """The method(s) whose return annotation may declare the next states (a
    ``Literal[...]``; see `cano_dsl.tasks._targets`); the first one defined counts."""
    returns_tuple: bool = False
    """The returning method returns ``tuple[state, output]`` (compensatable)."""
    data_hooks: Any = attrs.field(factory=dict, eq=False)
    """Hook name -> its positional parameters without the run data (``self`` excluded):
    a hook with one more positional parameter takes the run data last."""
    data_invoker: Any = attrs.field(default=None, eq=False)
    """``data_invoker(task, hooks) -> call(res, data)`` for a task whose ``hooks`` take
    the run data; ``None`` for a model whose hooks never do."""

    @property
    def hooks(self) -> tuple[str, ...]:
        return self.required + self.one_of + self.constants

    def bind(
        self, base: Any, invoker: Callable[[Any], tuple[Callable[..., Any], bool]]
    ) -> ModelSpec:
        """This spec with its base class and invoker filled in."""
        return attrs.evolve(self, base=base, invoker=invoker)


def driver_data_invoker(
    run: Callable[..., Awaitable[Any]],
) -> Callable[[Any, Any], Callable[..., Awaitable[Any]]]:
    """A `ModelSpec.data_invoker` for a model whose driver ``run(task, res, data, hooks)``
    hands the run data to the hooks named in ``hooks`` (a frozenset)."""

    def invoker(task: Any, hooks: Any) -> Callable[..., Awaitable[Any]]:
        flags = frozenset(hooks)
        return lambda res, data: run(task, res, data, flags)

    return invoker


def _is_async(fn: Any, allow_generator: bool) -> bool:
    func = getattr(fn, "__func__", fn)
    if inspect.iscoroutinefunction(func):
        return True
    return allow_generator and inspect.isasyncgenfunction(func)


def _own_or_inherited(cls: type, name: str, base: type | None) -> Any:
    """The member ``name`` as the user defined it (ignoring the model base's default)."""
    for klass in cls.__mro__:
        if klass is object or (base is not None and klass in base.__mro__):
            continue
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _raw_member(cls: type, name: str, base: type | None) -> tuple[bool, Any]:
    """Whether the user's classes define ``name`` (even as ``None``), and its value."""
    for klass in cls.__mro__:
        if klass is object or (base is not None and klass in base.__mro__):
            continue
        if name in klass.__dict__:
            return True, klass.__dict__[name]
    return False, None


def check_class(spec: ModelSpec, cls: type, *, register: bool = True) -> None:
    """Validate ``cls`` against ``spec``; raise `TaskDefinitionError` naming the class and
    what is wrong. With ``register``, inject defaults and register it with the base."""
    where = f"@{spec.decorator} {cls.__qualname__}"
    base = spec.base
    missing = [n for n in spec.required if _own_or_inherited(cls, n, base) is None]
    if missing:
        # a typo of a hook is the likeliest cause: say so first
        _check_near_misses(spec, cls, where)
        names = ", ".join(f"`{n}`" for n in missing)
        raise TaskDefinitionError(f"{where}: missing required async method(s) {names}")
    for name in spec.required:
        member = _own_or_inherited(cls, name, base)
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if not _is_async(member, name in spec.generator_ok):
            kind = (
                "`async def` (or an async generator)"
                if name in spec.generator_ok
                else "`async def`"
            )
            raise TaskDefinitionError(f"{where}: `{name}` must be {kind}, not a sync function")
    if spec.one_of:
        present = [n for n in spec.one_of if _own_or_inherited(cls, n, base) is not None]
        options = " or ".join(f"`{n}`" for n in spec.one_of)
        if not present:
            raise TaskDefinitionError(f"{where}: define exactly one of {options}; neither found")
        if len(present) > 1:
            raise TaskDefinitionError(f"{where}: define exactly one of {options}, not both")
        member = _own_or_inherited(cls, present[0], base)
        if not _is_async(member, False):
            raise TaskDefinitionError(
                f"{where}: `{present[0]}` must be `async def`, not a sync function"
            )
    for name in spec.constants:
        member = _own_or_inherited(cls, name, base)
        check = spec.checks.get(name)
        if check is not None and not callable(member) and not isinstance(member, property):
            has, raw = _raw_member(cls, name, base)
            problem = check(raw) if has else None
            if problem is not None:
                raise TaskDefinitionError(f"{where}: `{name}` {problem}")
        if member is not None and _is_async(member, True):
            raise TaskDefinitionError(
                f"{where}: `{name}` must be a plain method or attribute returning a "
                "constant, not `async def`"
            )
        if member is not None and not callable(member) and not isinstance(member, property):
            # `concurrency = 4` is the same as `def concurrency(self): return 4`
            _set_constant(cls, where, name, member, replace=True)
    _check_near_misses(spec, cls, where)
    if register and base is not None and not issubclass(cls, base):
        for name in (*spec.constants, *_injected(spec)):
            if _own_or_inherited(cls, name, base) is None:
                setattr(cls, name, base.__dict__.get(name) or getattr(base, name))
        base.register(cls)
    if register:
        cls.__cano_model__ = spec  # type: ignore[attr-defined]


def _injected(spec: ModelSpec) -> tuple[str, ...]:
    extra = getattr(spec.base, "__cano_injected__", ())
    return tuple(extra)


def _check_near_misses(spec: ModelSpec, cls: type, where: str) -> None:
    known = set(spec.hooks) | _ALWAYS_ALLOWED | _INTERNAL
    candidates = sorted(known)
    for klass in cls.__mro__:
        if klass is object or (spec.base is not None and klass in spec.base.__mro__):
            continue
        for attr in klass.__dict__:
            if attr.startswith("_") or attr in known:
                continue
            close = difflib.get_close_matches(attr, candidates, n=1, cutoff=0.86)
            if close:
                raise TaskDefinitionError(
                    f"{where}: `{attr}` is not a hook of @{spec.decorator}; "
                    f"did you mean `{close[0]}`?"
                )


def returning_method(spec: ModelSpec, cls: type) -> Any:
    """The user's method of ``cls`` whose return annotation declares the next states."""
    for name in spec.returns:
        member = _own_or_inherited(cls, name, spec.base)
        if member is not None:
            return getattr(member, "__func__", member)
    return None


def data_params(task: Any, hooks: dict[str, int]) -> dict[str, Any]:
    """The hooks of ``task`` that take the run data, with the data parameter's
    annotation (``inspect.Parameter.empty`` when it has none): a hook takes it when it
    has exactly one required positional parameter more than the model passes."""
    found: dict[str, Any] = {}
    for name, base in hooks.items():
        fn = getattr(task, name, None)
        if fn is None:
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        params = [
            p
            for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is inspect.Parameter.empty
        ]
        if len(params) == base + 1:
            found[name] = params[-1].annotation
    return found


def constant(obj: Any, name: str) -> Any:
    """Read an optional constant member written as a method or as a plain attribute."""
    value = getattr(obj, name)
    return value() if callable(value) and not isinstance(value, type) else value


def model_of(obj: Any) -> ModelSpec | None:
    """The model spec of a task instance (``None`` for anything that is not one)."""
    if isinstance(obj, type):
        return None
    spec = getattr(type(obj), "__cano_model__", None)
    return spec if isinstance(spec, ModelSpec) else None


def _set_constant(cls: type, where: str, name: str, value: Any, replace: bool = False) -> None:
    if name in cls.__dict__ and not replace:
        raise TaskDefinitionError(
            f"{where}: `{name}` is given both to the decorator and in the class body"
        )

    def getter(self: Any) -> Any:
        return value

    getter.__name__ = name
    getter.__qualname__ = f"{cls.__qualname__}.{name}"
    setattr(cls, name, getter)


class ModelDecorator:
    """A processing model's decorator: ``@batch`` or ``@batch(state=Step, name=...)``.

    ``to=`` (a state or an iterable of states) declares the states the task may move
    to; a ``Literal[...]`` return annotation of its returning method declares the same
    (see docs/transitions.md)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.__name__ = spec.decorator
        self.__qualname__ = spec.decorator
        self.__doc__ = (
            f"Make a class a `{getattr(spec.base, '__name__', spec.decorator)}`: check its "
            f"hooks at decoration time and inject the defaults of the missing optional "
            f"members ({', '.join(spec.constants)})."
        )

    @overload
    def __call__(self, target: C) -> C: ...
    @overload
    def __call__(
        self,
        target: None = None,
        *,
        state: type[enum.Enum] | None = None,
        config: Any = None,
        name: str | None = None,
        to: Iterable[enum.Enum] | enum.Enum | None = None,
    ) -> Callable[[C], C]: ...
    def __call__(
        self,
        target: C | None = None,
        *,
        state: type[enum.Enum] | None = None,
        config: Any = None,
        name: str | None = None,
        to: Iterable[enum.Enum] | enum.Enum | None = None,
    ) -> C | Callable[[C], C]:
        if state is not None and not (isinstance(state, type) and issubclass(state, enum.Enum)):
            raise TaskDefinitionError(
                f"@{self.spec.decorator}(state=...) takes an Enum class, got {state!r}"
            )

        def wrap(cls: C) -> C:
            out: C = self._apply(cls, state, config, name, to)
            return out

        return wrap if target is None else wrap(target)

    def _apply(
        self,
        cls: Any,
        state: type[enum.Enum] | None,
        config: Any,
        name: str | None,
        to: Any = None,
    ) -> Any:
        spec = self.spec
        if not isinstance(cls, type):
            raise TaskDefinitionError(
                f"@{spec.decorator} decorates a class, got {cls!r}"
                + ("; use @task for an async function" if callable(cls) else "")
            )
        where = f"@{spec.decorator} {cls.__qualname__}"
        if config is not None:
            _set_constant(cls, where, "config", config)
        if name is not None:
            _set_constant(cls, where, "name", name)
        declared = check_to(to, where, state)
        check_class(spec, cls)
        declare(cls, declared, returning_method(spec, cls), spec.returns_tuple, where)
        if state is not None:
            cls.__cano_state__ = state  # type: ignore[attr-defined]
        return cls

    def __repr__(self) -> str:
        return f"<cano_dsl decorator @{self.spec.decorator}>"
