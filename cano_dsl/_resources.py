"""`Resources`: the dependency dictionary handed to tasks, and resource lifecycle
(REFERENCE §5)."""

from __future__ import annotations

import datetime
import enum
import inspect
import logging
import math
import typing
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, overload, runtime_checkable

import anyio
import attrs

from ._config import as_seconds
from ._errors import (
    ConfigurationError,
    ResourceDuplicateKey,
    ResourceNotFound,
    ResourceTypeMismatch,
    TaskDefinitionError,
)
from ._observer import notify

__all__ = [
    "DEFAULT_TEARDOWN_TIMEOUT",
    "FromResources",
    "HealthStatus",
    "Key",
    "Res",
    "Resource",
    "ResourceBase",
    "Resources",
    "from_resources",
    "resource",
]

_log = logging.getLogger("cano_dsl.resources")

T = TypeVar("T")
C = TypeVar("C", bound=type)

ResourceKey = typing.Union[str, enum.Enum]

DEFAULT_TEARDOWN_TIMEOUT = 30.0
"""Seconds each resource's ``teardown`` may take before it is abandoned."""


def teardown_limit(value: float | datetime.timedelta | None, what: str) -> float | None:
    """A teardown bound as float seconds: ``> 0`` and finite, or ``None`` (unbounded)."""
    if value is None:
        return None
    out = as_seconds(value, what, "float seconds, a datetime.timedelta or None (no bound)")
    if not math.isfinite(out) or out <= 0:
        raise ConfigurationError(
            f"{what} must be a finite number of seconds > 0, or None for no bound; got {out!r}"
        )
    return out


class Key(str, Generic[T]):
    """A string key that also carries the type of its value, for the type checker:
    ``NUMBERS: Key[list[int]] = Key("numbers")``.

    A `Key` *is* its string (equal, same hash), so ``store.get(NUMBERS)`` and
    ``store.get("numbers")`` reach the same value; the first is typed ``list[int]``,
    the second ``Any``. Works with `Resources` (``insert``, ``get``) and `MemoryStore`
    (``put``, ``get``, ``get_or``, ``append``). Nothing is checked at run time: pass
    ``kind`` to ``get`` for an ``isinstance`` check.
    """

    __slots__ = ()


@attrs.frozen
class HealthStatus:
    """A resource's health: `healthy()`, `degraded(reason)` or `unhealthy(reason)`."""

    kind: Literal["healthy", "degraded", "unhealthy"] = "healthy"
    reason: str = ""

    _RANK: ClassVar[dict[str, int]] = {"healthy": 0, "degraded": 1, "unhealthy": 2}

    @classmethod
    def healthy(cls) -> HealthStatus:
        """Working normally."""
        return cls("healthy", "")

    @classmethod
    def degraded(cls, reason: str) -> HealthStatus:
        """Working, but impaired for ``reason``."""
        return cls("degraded", reason)

    @classmethod
    def unhealthy(cls, reason: str) -> HealthStatus:
        """Not working, for ``reason``."""
        return cls("unhealthy", reason)

    def is_healthy(self) -> bool:
        """Whether this is `healthy()`."""
        return self.kind == "healthy"

    @property
    def rank(self) -> int:
        """Severity for aggregation: 0 healthy, 1 degraded, 2 unhealthy (the worst wins)."""
        return self._RANK[self.kind]


@runtime_checkable
class Resource(Protocol):
    """A value with an async lifecycle. Every hook is optional when a resource is
    inserted into `Resources` (they are found by duck typing); subclass this (or use
    `@resource`) to get no-op defaults."""

    async def setup(self) -> None:
        """Called once per run before the first state (FIFO across resources)."""

    async def teardown(self) -> None:
        """Called once per run after the last state (LIFO), whatever the outcome."""

    async def health(self) -> HealthStatus:
        """Report health for `Resources.check_all_health`; never called by the engine."""
        return HealthStatus.healthy()


ResourceBase = Resource

_HOOKS = ("setup", "teardown", "health")


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__func__", None)
    )


@overload
def resource(cls: C) -> C: ...
@overload
def resource(cls: None = None) -> typing.Callable[[C], C]: ...
def resource(cls: C | None = None) -> C | typing.Callable[[C], C]:
    """Mark a class as a `Resource`: check that its ``setup`` / ``teardown`` / ``health``
    hooks (each optional) are async, and add no-op defaults for the missing ones."""

    def wrap(target: C) -> C:
        if not isinstance(target, type):
            raise TaskDefinitionError(f"@resource decorates a class, got {target!r}")
        for hook in _HOOKS:
            fn = getattr(target, hook, None)
            if fn is None:
                setattr(target, hook, getattr(Resource, hook))
            elif not _is_async(fn):
                raise TaskDefinitionError(
                    f"@resource {target.__qualname__}: `{hook}` must be `async def`"
                )
        return target

    return wrap if cls is None else wrap(cls)


class Resources:
    """A dictionary of named resources shared by every task of a workflow.

    Keys are strings or Enum members. `insert` mutates and returns the same `Resources`
    for chaining; a taken key raises `ResourceDuplicateKey`. `get(key, T)` checks
    ``isinstance``. Lifecycle hooks run in insertion order (setup) and reverse (teardown).
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[Any, Any] = {}

    @classmethod
    def empty(cls) -> Resources:
        """A `Resources` with nothing in it (the same as ``Resources()``)."""
        return cls()

    @overload
    def insert(self, key: Key[T], value: T) -> Resources: ...
    @overload
    def insert(self, key: ResourceKey, value: Any) -> Resources: ...
    def insert(self, key: ResourceKey, value: Any) -> Resources:
        """Add ``value`` under ``key``; raise `ResourceDuplicateKey` if taken."""
        self.try_insert(key, value)
        return self

    @overload
    def try_insert(self, key: Key[T], value: T) -> None: ...
    @overload
    def try_insert(self, key: ResourceKey, value: Any) -> None: ...
    def try_insert(self, key: ResourceKey, value: Any) -> None:
        """Add ``value`` under ``key``; raise `ResourceDuplicateKey` if taken."""
        if not isinstance(key, (str, enum.Enum)):
            raise TypeError(f"resource keys are str or Enum members, got {key!r}")
        if key in self._items:
            raise ResourceDuplicateKey(
                f"duplicate resource key {_key_text(key)} inserted into Resources; "
                "use a different key or build a new Resources"
            )
        self._items[key] = value

    @overload
    def get(self, key: Key[T]) -> T: ...
    @overload
    def get(self, key: ResourceKey) -> Any: ...
    # a bare container class (``get(key, list)``) gives ``list[Any]``, not a list of
    # unknowns, so pyright's strict mode accepts it
    @overload
    def get(self, key: ResourceKey, kind: type[list[Any]]) -> list[Any]: ...
    @overload
    def get(self, key: ResourceKey, kind: type[dict[Any, Any]]) -> dict[Any, Any]: ...
    @overload
    def get(self, key: ResourceKey, kind: type[set[Any]]) -> set[Any]: ...
    @overload
    def get(self, key: ResourceKey, kind: type[T]) -> T: ...
    def get(self, key: ResourceKey, kind: type[T] | None = None) -> Any:
        """The resource under ``key``; with ``kind``, checked with ``isinstance``."""
        try:
            value = self._items[key]
        except KeyError:
            wanted = f" (requested type: {kind.__qualname__})" if kind is not None else ""
            raise ResourceNotFound(f"no resource found for key {_key_text(key)}{wanted}") from None
        if kind is not None and not isinstance(value, kind):
            raise ResourceTypeMismatch(
                f"resource {_key_text(key)} is a {type(value).__qualname__}, "
                f"not the requested type {kind.__qualname__}"
            )
        return value

    @overload
    def __getitem__(self, key: Key[T]) -> T: ...
    @overload
    def __getitem__(self, key: ResourceKey) -> Any: ...
    def __getitem__(self, key: ResourceKey) -> Any:
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def keys(self) -> list[Any]:
        """The keys, in insertion order."""
        return list(self._items)

    def is_empty(self) -> bool:
        """Whether nothing has been inserted."""
        return not self._items

    def __repr__(self) -> str:
        return f"Resources(<{len(self._items)} resource(s)>)"

    async def setup_all(self) -> None:
        """Set up every resource in insertion order. If one fails, tear down the ones
        already set up in reverse order (each bounded by `DEFAULT_TEARDOWN_TIMEOUT`),
        then raise its error."""
        await self._setup(DEFAULT_TEARDOWN_TIMEOUT, ())

    async def teardown_all(
        self, timeout: float | datetime.timedelta | None = DEFAULT_TEARDOWN_TIMEOUT
    ) -> None:
        """Tear down every resource in reverse insertion order. Each ``teardown`` is
        shielded from outside cancellation and bounded by ``timeout`` seconds (``None``:
        unbounded); one that overruns is cancelled, abandoned and logged. A failing
        teardown is logged and never stops the others; a `KeyboardInterrupt` or
        `SystemExit` raised by one is re-raised after the others ran. Never raises an
        `Exception` (a bad ``timeout`` is a `ConfigurationError`, raised first)."""
        limit = teardown_limit(timeout, "teardown timeout")
        await self._teardown(limit, ())

    async def _setup(self, limit: float | None, observers: typing.Sequence[Any]) -> None:
        done: list[tuple[Any, Any]] = []
        for key, value in list(self._items.items()):
            hook = getattr(value, "setup", None)
            if hook is not None:
                try:
                    await hook()
                except BaseException:
                    await _teardown_values(reversed(done), limit, observers)
                    raise
            done.append((key, value))

    async def _teardown(self, limit: float | None, observers: typing.Sequence[Any]) -> None:
        """`teardown_all` with an already checked bound and the observers to tell."""
        await _teardown_values(reversed(list(self._items.items())), limit, observers)

    async def check_all_health(self) -> dict[Any, HealthStatus]:
        """Every resource's `health()` (healthy when it has none), in insertion order."""
        out: dict[Any, HealthStatus] = {}
        for key, value in list(self._items.items()):
            hook = getattr(value, "health", None)
            status = HealthStatus.healthy()
            if hook is not None:
                try:
                    got = await hook()
                except Exception as exc:  # a probe that raises is unhealthy
                    got = HealthStatus.unhealthy(f"health check raised: {exc!r}")
                if isinstance(got, HealthStatus):
                    status = got
            out[key] = status
        return out

    async def aggregate_health(self) -> HealthStatus:
        """The worst status (first worst wins); healthy when there are none."""
        worst = HealthStatus.healthy()
        for status in (await self.check_all_health()).values():
            if status.rank > worst.rank:
                worst = status
        return worst


# A teardown may get up to this fraction of its bound on top of it: the deadline of the
# shared cancel scope is re-armed only when a previous teardown used more than that, so
# a run of quick teardowns costs one timer, not one per resource.
_SLACK = 0.01


async def _teardown_values(
    items: typing.Iterable[tuple[Any, Any]],
    limit: float | None,
    observers: typing.Sequence[Any],
) -> None:
    """Run each value's ``teardown`` shielded from outside cancellation and bounded by
    ``limit`` seconds (each gets at least ``limit``, at most 1 % more); log failures and
    overruns, tell observers of overruns, and re-raise the first `BaseException` that
    is not an `Exception` only after every teardown ran."""
    pending = [(k, v, h) for k, v in items if (h := getattr(v, "teardown", None)) is not None]
    deferred: BaseException | None = None
    i, n = 0, len(pending)
    while i < n:
        overrun: Any = _NONE
        with anyio.CancelScope(shield=True) as scope:
            armed = -math.inf
            while i < n:
                key, value, hook = pending[i]
                i += 1
                if limit is not None:
                    now = anyio.current_time()
                    if now - armed > limit * _SLACK:
                        armed = now
                        scope.deadline = now + limit * (1 + _SLACK)
                try:
                    await hook()
                except Exception:
                    _log.exception(
                        "teardown of resource %s (%r) failed; continuing", _key_text(key), value
                    )
                except BaseException as exc:
                    if scope.cancel_called and isinstance(exc, anyio.get_cancelled_exc_class()):
                        overrun = key
                        raise  # to this scope, which absorbs its own cancellation
                    if deferred is None:  # KeyboardInterrupt, SystemExit: finish first
                        deferred = exc
                    else:
                        _log.error(
                            "teardown of resource %s raised %r while %r was pending; dropped",
                            _key_text(key),
                            exc,
                            deferred,
                        )
                if limit is not None and scope.cancel_called:  # overran, swallowed the cancel
                    overrun = key
                    break
        if overrun is not _NONE:
            assert limit is not None
            _log.error(
                "teardown of resource %s did not finish within %gs; abandoned (raise the "
                "bound with Workflow.with_teardown_timeout)",
                _key_text(overrun),
                limit,
            )
            if observers:
                notify(observers, "on_teardown_timeout", _key_label(overrun), limit)
    if deferred is not None:
        raise deferred


_NONE: Any = object()


def _key_text(key: object) -> str:
    if isinstance(key, enum.Enum):
        return f"{type(key).__name__}.{key.name}"
    return repr(key)


def _key_label(key: object) -> str:
    """A resource key as observers see it: the str itself, or ``Enum.NAME``."""
    if isinstance(key, enum.Enum):
        return f"{type(key).__name__}.{key.name}"
    return str(key)


@attrs.frozen
class Res:
    """Marks a field of a `@from_resources` class: ``Annotated[T, Res("key")]``."""

    key: ResourceKey


class FromResources:
    """An optional, empty base for a `from_resources` class, so a type checker sees the
    ``from_resources(res)`` classmethod the decorator adds (a class decorator cannot
    show a new member to mypy or pyright)::

        @from_resources
        @attrs.frozen
        class Deps(FromResources):
            store: Annotated[MemoryStore, Res("store")]

        deps = Deps.from_resources(res)  # typed Deps
    """

    __slots__ = ()

    if typing.TYPE_CHECKING:

        @classmethod
        def from_resources(cls: type[T], res: Resources) -> T:
            """An instance with every ``Annotated[T, Res(key)]`` field filled from ``res``."""
            ...


def from_resources(cls: C) -> C:
    """Give an attrs class or dataclass a ``from_resources(res)`` classmethod that fills
    every ``Annotated[T, Res(key)]`` field with ``res.get(key, T)``."""
    if not isinstance(cls, type):
        raise TaskDefinitionError(f"@from_resources decorates a class, got {cls!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[tuple[str, ResourceKey, Any]] = []
    for name, hint in hints.items():
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        base, *extras = typing.get_args(hint)
        marks = [e for e in extras if isinstance(e, Res)]
        if not marks:
            continue
        check = typing.get_origin(base) or base
        fields.append((name, marks[0].key, check if isinstance(check, type) else None))
    if not fields:
        raise TaskDefinitionError(
            f"@from_resources {cls.__qualname__}: no field is annotated `Annotated[T, Res(key)]`"
        )

    def _build(klass: type[T], res: Resources) -> T:
        kwargs = {
            name: (res.get(key, kind) if kind is not None else res.get(key))
            for name, key, kind in fields
        }
        return klass(**kwargs)

    cls.from_resources = classmethod(_build)  # type: ignore[attr-defined]
    return cls
