"""Declared transitions: the states a task may return (``to=`` on a decorator, or a
``Literal[...]`` return annotation), read at decoration and settled at registration.

Rules (docs/transitions.md):

* ``to=`` takes Enum members (one, or an iterable of them), at least one, all of one
  Enum (the one of ``state=`` when given).
* A return annotation ``Literal[Step.B, Step.C]`` (also ``Literal[Step.B] |
  Literal[Step.C]``, ``Optional`` excluded) of the model's returning method declares the
  same: ``run`` / ``run_bare`` (task), ``route`` (router), ``after_wait`` (timer),
  ``finish`` (batch), ``on_close`` (stream), the first element of ``run``'s
  ``tuple[...]`` (compensatable). Any other annotation declares nothing.
* The annotation is evaluated at decoration with the function's globals
  (``typing.get_type_hints``). A name it cannot resolve then (an Enum defined later, or
  local to a function) is retried at registration with the workflow's state Enum added
  under its own name; if it still fails, an annotation that mentions ``Literal`` is a
  `ConfigurationError` and any other one is ignored (the task is undeclared).
* ``to=`` and an annotation that both declare must declare the same set.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, Union

from .._errors import ConfigurationError, TaskDefinitionError

__all__ = ["Declared", "check_to", "declare", "declared_targets", "literal_states"]

_DECLARED = "__cano_declared__"


class Declared:
    """What a task declares: ``to`` (from the decorator), ``annotation`` (a resolved
    Literal set), or ``pending`` (an annotation to resolve at registration)."""

    __slots__ = ("annotation", "pending", "to")

    def __init__(
        self,
        to: frozenset[enum.Enum] | None,
        annotation: frozenset[enum.Enum] | None,
        pending: tuple[Any, dict[str, Any], bool] | None,
    ) -> None:
        self.to = to
        self.annotation = annotation
        self.pending = pending


def check_to(to: Any, where: str, state: type[enum.Enum] | None) -> frozenset[enum.Enum] | None:
    """``to=`` as a frozenset of members; `TaskDefinitionError` when it is not one."""
    if to is None:
        return None
    if isinstance(to, type) and issubclass(to, enum.Enum):
        raise TaskDefinitionError(
            f"{where}: to= takes the states the task may return (Step.B or (Step.B, Step.C)), "
            f"not the Enum class {to.__name__}"
        )
    members = (to,) if isinstance(to, enum.Enum) else to
    if isinstance(members, (str, bytes)) or not isinstance(members, Iterable):
        raise TaskDefinitionError(
            f"{where}: to= takes Enum members (Step.B or (Step.B, Step.C)), got {to!r}"
        )
    out = tuple(members)
    bad = [m for m in out if not isinstance(m, enum.Enum)]
    if bad:
        raise TaskDefinitionError(f"{where}: to= takes Enum members, got {bad[0]!r}")
    if not out:
        raise TaskDefinitionError(f"{where}: to= must name at least one state")
    kinds = {type(m) for m in out}
    if len(kinds) > 1:
        names = ", ".join(sorted(k.__name__ for k in kinds))
        raise TaskDefinitionError(f"{where}: to= mixes states of several Enums ({names})")
    if state is not None and type(out[0]) is not state:
        raise TaskDefinitionError(
            f"{where}: to= names states of {type(out[0]).__name__}, but state={state.__name__}"
        )
    return frozenset(out)


def literal_states(hint: Any, first_of_tuple: bool = False) -> frozenset[enum.Enum] | None:
    """The members of a ``Literal[...]`` of Enum members (or a union of such), else None."""
    origin = typing.get_origin(hint)
    if first_of_tuple:
        if origin is not tuple:
            return None
        args = typing.get_args(hint)
        return literal_states(args[0]) if args else None
    if origin is Literal:
        args = typing.get_args(hint)
        if args and all(isinstance(a, enum.Enum) for a in args):
            return frozenset(args)
        return None
    if origin is Union or origin is types.UnionType:
        out: set[enum.Enum] = set()
        for arg in typing.get_args(hint):
            part = literal_states(arg)
            if part is None:
                return None
            out |= part
        return frozenset(out)
    return None


class _Unresolved(Exception):
    pass


def _return_hint(fn: Any, localns: dict[str, Any] | None) -> Any:
    """``fn``'s return annotation, evaluated with its globals (only that annotation, so
    a parameter annotation that does not resolve does not matter)."""
    func = getattr(fn, "__func__", fn)
    raw = getattr(func, "__annotations__", {}).get("return")
    if raw is None:
        return None
    shim: Callable[[], None] = types.FunctionType(
        (lambda: None).__code__, getattr(func, "__globals__", {})
    )
    shim.__annotations__ = {"return": raw}
    try:
        return typing.get_type_hints(shim, localns=localns)["return"]
    except Exception as exc:
        raise _Unresolved(f"{type(exc).__name__}: {exc}") from exc


def _raw(fn: Any) -> Any:
    func = getattr(fn, "__func__", fn)
    return getattr(func, "__annotations__", {}).get("return")


def declare(
    owner: Any,
    to: frozenset[enum.Enum] | None,
    fn: Any,
    first_of_tuple: bool,
    where: str,
) -> None:
    """Record on ``owner`` (a task class or a `FunctionTask`) what it declares: ``to``
    and the return annotation of ``fn`` (the model's returning method, or None)."""
    annotation: frozenset[enum.Enum] | None = None
    pending: tuple[Any, dict[str, Any], bool] | None = None
    if fn is not None:
        try:
            annotation = literal_states(_return_hint(fn, None), first_of_tuple)
        except _Unresolved:
            pending = (fn, {}, first_of_tuple)
    if to is not None and annotation is not None and to != annotation:
        raise TaskDefinitionError(f"{where}: {_disagree(to, annotation)}")
    setattr(owner, _DECLARED, Declared(to, annotation, pending))


def _names(states: Iterable[enum.Enum]) -> str:
    return "{" + ", ".join(sorted(s.name for s in states)) + "}"


def _disagree(to: frozenset[enum.Enum], annotation: frozenset[enum.Enum]) -> str:
    return (
        f"to={_names(to)} and the return annotation Literal{_names(annotation)} declare "
        "different states; give the same set (or only one of them)"
    )


def _own(task: Any) -> Declared | None:
    found = vars(task).get(_DECLARED) if hasattr(task, "__dict__") else None
    if found is None:
        found = type(task).__dict__.get(_DECLARED)
    return found if isinstance(found, Declared) else None


def declared_targets(
    task: Any,
    returning: Any,
    first_of_tuple: bool,
    state_type: type[enum.Enum],
    where: str,
) -> frozenset[enum.Enum] | None:
    """At registration: the states ``task`` declares (None: undeclared), each checked
    to be a member of ``state_type``. ``returning`` is the task's returning method,
    read for an undecorated subclass (it has no record of its own)."""
    declared = _own(task)
    if declared is None:
        declared = Declared(None, None, None)
        if returning is not None:
            try:
                declared.annotation = literal_states(_return_hint(returning, None), first_of_tuple)
            except _Unresolved:
                declared.pending = (returning, {}, first_of_tuple)
    to, annotation = declared.to, declared.annotation
    if declared.pending is not None:
        fn, _, first = declared.pending
        localns = {state_type.__name__: state_type, "Literal": Literal}
        try:
            annotation = literal_states(_return_hint(fn, localns), first)
        except _Unresolved as exc:
            if "Literal" in str(_raw(fn)):
                raise ConfigurationError(
                    f"{where}: the return annotation {_raw(fn)!r} of "
                    f"{getattr(fn, '__qualname__', fn)} cannot be resolved ({exc}); define "
                    "the names it uses at module level, or declare the states with to="
                ) from None
            annotation = None
        if to is not None and annotation is not None and to != annotation:
            raise ConfigurationError(f"{where}: {_disagree(to, annotation)}")
    result = to if to is not None else annotation
    if result is None:
        return None
    foreign = sorted(repr(s) for s in result if type(s) is not state_type)
    if foreign:
        raise ConfigurationError(
            f"{where}: the task declares {', '.join(foreign)}, not a member of this "
            f"workflow's state Enum {state_type.__name__}"
        )
    return result
