"""Run data: the per-run value a workflow declares with `Workflow.with_run_data`.

Everything here is decided when the workflow is built: `DataCodec` compiles, once per
declared type, how a value becomes a JSON tree (``to_tree``) and back (``from_tree``).
The engine keeps two trees per run: the tree as of the current state's entry (each
attempt restarts from it) and the tree last written to the log; a checkpoint row
carries the *patch* between them (`diff`), and resume folds the patches (`fold`).

Patch format (UTF-8 JSON in ``CheckpointRow.data_patch``)::

    {"t": "<type fingerprint>", "p": [op, ...]}
    op = ["s", path, value]   set (path [] = the whole value)
       | ["d", path]          delete a key
       | ["a", path, items]   extend a list
    path = list of str keys and int indices
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import operator
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from .._errors import ConfigurationError, WorkflowError, WorkflowVersionMismatch

__all__ = [
    "DataCodec",
    "RunDataError",
    "RunDataMismatch",
    "RunResult",
    "apply_ops",
    "decode_patch",
    "diff",
    "encode_patch",
    "fold",
    "format_path",
    "unseen_changes",
]

S_co = TypeVar("S_co")
D_co = TypeVar("D_co")

Tree = Any
Path = list[Any]
Op = list[Any]


class RunDataError(WorkflowError):
    """Run data that cannot be tracked: a value that does not encode to JSON (the message
    names the state and the field), or two split branches that changed the same field
    (the message names the field and both branches). Never retried."""

    category = "run_data"


class RunDataMismatch(WorkflowVersionMismatch):
    """The log's run data was written for another run data type than the workflow
    declares (and the workflow version was not bumped): a `WorkflowVersionMismatch`."""

    def __init__(self, stored: int, expected: int, detail: str) -> None:
        super().__init__(stored, expected)
        self.detail = detail
        self.message = detail

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"RunDataMismatch({self.detail!r})"


@attrs.frozen
class RunResult(Generic[S_co, D_co]):
    """What `Workflow.run` and `Workflow.resume` return: the exit ``state`` and the run's
    final ``data`` (``None`` when the workflow declares no run data)."""

    state: S_co
    data: D_co


# -- paths ---------------------------------------------------------------------------


def format_path(path: Path) -> str:
    """``["items", 2, "price"]`` as ``items[2].price`` (``<root>`` for ``[]``)."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "<root>"


# -- the converter ---------------------------------------------------------------------

_PRIMS = (str, int, float, bool, type(None))


def _copy_tree(tree: Tree) -> Tree:
    """A deep copy of a JSON tree (C speed through the json module)."""
    if isinstance(tree, (dict, list)):
        return json.loads(json.dumps(tree))
    return tree


def _default(obj: Any) -> Any:
    """json.dumps hook: attrs / dataclass instances as dicts, Enum members by name."""
    cls = type(obj)
    if attrs.has(cls):
        return {f.name: getattr(obj, f.name) for f in attrs.fields(cls)}
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{cls.__name__} is not JSON-representable")


# one encoder, built once (``json.dumps`` with options builds one per call)
_ENCODE = json.JSONEncoder(default=_default, allow_nan=False).encode


def _find_bad(obj: Any, path: Path, seen: set[int]) -> tuple[Path, str] | None:
    """The path of the first value in ``obj`` that does not encode, and why."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return None
    if isinstance(obj, int):
        return None
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return path, f"{obj!r} is not JSON (no NaN or infinity)"
        return None
    if id(obj) in seen:
        return path, "a reference cycle"
    if isinstance(obj, enum.Enum):
        return None
    seen = seen | {id(obj)}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                return path, f"key {k!r} is a {type(k).__name__}; run data keys must be str"
            found = _find_bad(v, [*path, k], seen)
            if found:
                return found
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            found = _find_bad(v, [*path, i], seen)
            if found:
                return found
        return None
    cls = type(obj)
    if attrs.has(cls) or dataclasses.is_dataclass(obj):
        names = (
            [f.name for f in attrs.fields(cls)]
            if attrs.has(cls)
            else [f.name for f in dataclasses.fields(obj)]
        )
        for name in names:
            found = _find_bad(getattr(obj, name), [*path, name], seen)
            if found:
                return found
        return None
    return path, f"a {cls.__name__} is not JSON-representable"


def _structurer(tp: Any, where: str, seen: dict[Any, Callable[[Any], Any]]) -> Any:
    """``tree -> value`` for the declared type ``tp`` (compiled once)."""
    if tp is Any or tp is object or tp in _PRIMS or tp is dict or tp is list:
        if tp is float:
            return lambda v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
        return _copy_tree
    if isinstance(tp, str):
        raise ConfigurationError(
            f"with_run_data: {where} has the unresolved annotation {tp!r}; define the type "
            "at module level so it can be resolved"
        )
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) or (origin is not None and _is_seq(origin)):
        if origin in (set, frozenset):
            raise ConfigurationError(
                f"with_run_data: {where} is a {origin.__name__}; use a list (JSON has no sets)"
            )
        inner = _structurer(args[0], f"{where}[]", seen) if args else _copy_tree
        if origin is tuple:
            return lambda v: tuple(inner(x) for x in v)
        return lambda v: [inner(x) for x in v]
    if origin is dict or (origin is not None and _is_map(origin)):
        key = args[0] if args else str
        if key not in (str, Any):
            raise ConfigurationError(
                f"with_run_data: {where} has {getattr(key, '__name__', key)} keys; run data "
                "mappings must have str keys (JSON object keys are strings)"
            )
        inner = _structurer(args[1], f"{where}{{}}", seen) if len(args) > 1 else _copy_tree
        return lambda v: {k: inner(x) for k, x in v.items()}
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = _structurer(rest[0], where, seen)
            return lambda v: None if v is None else inner(v)
        if all(a in _PRIMS for a in rest):
            return _copy_tree
        raise ConfigurationError(
            f"with_run_data: {where} is a union of {tp}; run data supports Optional[X] and "
            "unions of str / int / float / bool / None"
        )
    if origin is typing.Literal:
        return _copy_tree
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        members = tp.__members__

        def to_enum(v: Any) -> Any:
            if isinstance(v, str) and v in members:
                return members[v]
            return tp(v)

        return to_enum
    if isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp)):
        return _class_structurer(tp, seen)
    raise ConfigurationError(
        f"with_run_data: {where} has type {tp!r}, which run data cannot hold; allowed: "
        "attrs classes, dataclasses, list[X], dict[str, X], Optional[X], Enum, str, int, "
        "float, bool, None, Any"
    )


def _is_seq(origin: Any) -> bool:
    import collections.abc as cabc

    return origin in (cabc.Sequence, cabc.MutableSequence)


def _is_map(origin: Any) -> bool:
    import collections.abc as cabc

    return origin in (cabc.Mapping, cabc.MutableMapping)


def _class_structurer(cls: type, seen: dict[Any, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    if cls in seen:
        return lambda v: seen[cls](v)
    seen[cls] = lambda v: None  # placeholder for recursive types
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        raise ConfigurationError(
            f"with_run_data: cannot resolve the annotations of {cls.__qualname__}: {exc}"
        ) from exc
    if attrs.has(cls):
        names = [(f.name, f.alias or f.name, f.init) for f in attrs.fields(cls)]
    else:
        names = [(f.name, f.name, f.init) for f in dataclasses.fields(cls)]
    fields = [
        (name, alias, _structurer(hints.get(name, Any), f"{cls.__qualname__}.{name}", seen))
        for name, alias, init in names
        if init
    ]

    def build(v: Any) -> Any:
        if not isinstance(v, dict):
            raise TypeError(f"{cls.__qualname__} needs a JSON object, got {v!r}")
        return cls(**{alias: conv(v[name]) for name, alias, conv in fields if name in v})

    seen[cls] = build
    return build


def _fingerprint(tp: Any) -> str:
    """A short hash of the declared type's shape (class names, field names, types)."""
    parts: list[str] = []
    todo = [tp]
    done: set[Any] = set()
    while todo:
        t = todo.pop()
        if t in done:
            continue
        done.add(t)
        if isinstance(t, type) and (attrs.has(t) or dataclasses.is_dataclass(t)):
            try:
                hints = typing.get_type_hints(t)
            except Exception:
                hints = {}
            fields = (
                [f.name for f in attrs.fields(t)]
                if attrs.has(t)
                else [f.name for f in dataclasses.fields(t)]  # type: ignore[arg-type]
            )
            parts.append(t.__qualname__ + "(" + ",".join(f"{f}:{hints.get(f)}" for f in fields))
            todo.extend(hints.get(f, Any) for f in fields)
        else:
            todo.extend(typing.get_args(t))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


class DataCodec:
    """The converter of one declared run data type, compiled at registration."""

    __slots__ = ("fingerprint", "name", "structure", "type")

    def __init__(self, tp: Any) -> None:
        if tp is dict:
            self.structure: Callable[[Any], Any] = _copy_tree
        elif isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp)):
            self.structure = _class_structurer(tp, {})
        else:
            raise ConfigurationError(
                f"with_run_data takes an attrs class, a dataclass or dict (a plain JSON "
                f"mapping), got {tp!r}"
            )
        self.type = tp
        self.name = getattr(tp, "__qualname__", repr(tp))
        self.fingerprint = _fingerprint(tp) if tp is not dict else "dict"

    def check_value(self, value: Any, what: str) -> None:
        if not isinstance(value, self.type):
            raise ConfigurationError(
                f"{what}: data must be a {self.name} (the workflow's with_run_data type), "
                f"got {type(value).__name__}"
            )

    def default(self, what: str) -> Any:
        """``Type()`` (``{}`` for dict); `ConfigurationError` when it needs arguments."""
        try:
            return self.structure({})
        except Exception as exc:
            raise ConfigurationError(
                f"{what}: this workflow declares run data {self.name}, which cannot be built "
                f"without arguments ({exc}); pass data={self.name}(...)"
            ) from exc

    def to_tree(self, value: Any, state: str) -> Tree:
        """``value`` as a fresh JSON tree; `RunDataError` naming the state and field."""
        return json.loads(self.encode(value, state))

    def encode(self, value: Any, state: str) -> str:
        """``value`` as JSON text; `RunDataError` naming the state and field."""
        try:
            return _ENCODE(value)
        except (TypeError, ValueError, RecursionError) as exc:
            found = _find_bad(value, [], set())
            where, why = found if found else ([], str(exc))
            raise RunDataError(
                f"run data after state {state}: field `{format_path(where)}` cannot be "
                f"encoded: {why}"
            ) from None

    def update(self, old: Tree, value: Any, state: str) -> Tree:
        """The tree of ``value``, given ``old``, the tree it had before the task ran.

        Returns ``old`` itself when nothing changed; otherwise a new tree that shares
        every unchanged subtree with ``old`` (trees are never modified in place, so the
        sharing is safe and a later `diff` short-circuits on ``is``). Only the parts
        that differ are walked and only new parts are encoded; a value the fast walk
        cannot judge (non-str keys, a container subclass, a reference cycle, very deep
        nesting) falls back to the full encode, so the result and the errors
        (`RunDataError` naming the state and field) are those of `to_tree`.
        """
        try:
            return _update(old, value, [], state)
        except (_Slow, RecursionError):
            tree = self.to_tree(value, state)
            return old if tree == old and _strict_equal(tree, old) else tree

    def from_tree(self, tree: Tree) -> Any:
        """A fresh value built from ``tree`` (the tree is not shared)."""
        return self.structure(tree)


# -- the incremental converter (live value against the tree it had) ------------------


class _Slow(Exception):
    """The fast walk cannot judge this value: use the full encode."""


_MISSING: Any = object()
_LEAF_TYPES = frozenset({str, int, bool, type(None)})

# how `_update` treats a value, per exact type (decided once per type, then a dict hit)
_LEAF, _FLOAT, _DICT, _LIST, _TUPLE, _ENUM, _SLOW = range(7)
_KINDS: dict[type, Any] = {
    str: _LEAF,
    int: _LEAF,
    bool: _LEAF,
    type(None): _LEAF,
    float: _FLOAT,
    dict: _DICT,
    list: _LIST,
    tuple: _TUPLE,
}


def _kind_of(cls: type) -> Any:
    """`_KINDS` entry of ``cls``: an attrs / dataclass class maps to ``(getter, names)``,
    ``getter(obj)`` returning its field values as a tuple in one call."""
    kind: Any
    if attrs.has(cls) or dataclasses.is_dataclass(cls):
        fields: Any = attrs.fields(cls) if attrs.has(cls) else dataclasses.fields(cls)  # type: ignore[arg-type]
        names = tuple(f.name for f in fields)
        if len(names) == 1:
            one = operator.attrgetter(names[0])
            kind = (lambda obj: (one(obj),), names)
        elif names:
            kind = (operator.attrgetter(*names), names)
        else:
            kind = (lambda obj: (), names)
    elif issubclass(cls, (str, int, float, dict, list, tuple)):
        kind = _SLOW  # a subclass (IntEnum, ...): encoded as the json module does
    elif issubclass(cls, enum.Enum):
        kind = _ENUM
    else:
        kind = _SLOW
    _KINDS[cls] = kind
    return kind


def _fresh(value: Any, path: Path, state: str) -> Tree:
    """A new subtree for ``value`` at ``path`` (encoded through the JSON module)."""
    try:
        return json.loads(_ENCODE(value))
    except (TypeError, ValueError, RecursionError) as exc:
        found = _find_bad(value, [], set())
        where, why = found if found else ([], str(exc))
        raise RunDataError(
            f"run data after state {state}: field `{format_path([*path, *where])}` cannot "
            f"be encoded: {why}"
        ) from None


def _strict_equal(a: Tree, b: Tree) -> bool:
    """``a == b`` between two JSON trees, also telling ``1``, ``1.0`` and ``True`` apart
    (Python's ``==`` does not)."""
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is dict:
        return all(_strict_equal(v, b[k]) for k, v in a.items())
    if ta is list:
        return all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return True


_NUMBERS = frozenset({int, float})


def unseen_changes(new: Tree, old: Tree, path: Path, out: list[Path]) -> list[Path]:
    """The paths where two trees that ``==`` calls equal still differ in a way that
    matters: a bool where the other has a number (``True == 1``). ``1`` against ``1.0``
    is not reported (a ``float`` field takes either)."""
    tn, to = type(new), type(old)
    if tn is not to:
        if not (tn in _NUMBERS and to in _NUMBERS):
            out.append(path)
        return out
    if tn is dict:
        for k, v in new.items():
            if k in old:
                unseen_changes(v, old[k], [*path, k], out)
    elif tn is list:
        for i, (x, y) in enumerate(zip(new, old, strict=False)):
            unseen_changes(x, y, [*path, i], out)
    return out


def _update(old: Tree, value: Any, path: Path, state: str) -> Tree:
    """The tree of ``value`` given its old tree ``old`` (see `DataCodec.update`)."""
    tv = type(value)
    kind = _KINDS.get(tv)
    if kind is None:
        kind = _kind_of(tv)
    if kind is _LEAF:
        if type(old) is tv and old == value:
            return old
        return value
    if kind is _DICT:
        if type(old) is not dict:
            return _fresh(value, path, state)
        if value == old:
            return old
        out: dict[str, Any] = {}
        changed = len(value) != len(old)
        for k, v in value.items():
            if type(k) is not str:
                raise _Slow
            o = old.get(k, _MISSING)
            if v is o:
                n = o
            elif o is _MISSING:
                n = _fresh(v, [*path, k], state)
                changed = True
            else:
                n = _update(o, v, [*path, k], state)
                if n is not o:
                    changed = True
            out[k] = n
        return out if changed else old
    if kind is _LIST:
        if type(old) is not list:
            return _fresh(value, path, state)
        if value == old:
            return old
        return _update_items(old, value, path, state)
    if type(kind) is tuple:
        if type(old) is not dict:
            return _fresh(value, path, state)
        getter, names = kind
        out = {}
        changed = len(names) != len(old)
        for name, v in zip(names, getter(value), strict=True):
            o = old.get(name, _MISSING)
            if v is o:
                n = o
            elif o is _MISSING:
                n = _fresh(v, [*path, name], state)
                changed = True
            else:
                tv = type(v)
                if (tv is type(o) and tv in _LEAF_TYPES and v == o) or (
                    _KINDS.get(tv) is _ENUM and o == v._name_
                ):
                    n = o  # an unchanged leaf or Enum member: no call
                else:
                    n = _update(o, v, [*path, name], state)
                    if n is not o:
                        changed = True
            out[name] = n
        return out if changed else old
    if kind is _ENUM:
        name = value._name_
        return old if old == name else name
    if kind is _FLOAT:
        if type(old) is float and old == value:
            return old
        if value != value or value in (math.inf, -math.inf):
            return _fresh(value, path, state)  # raises, naming the field
        return value
    if kind is _TUPLE:
        if type(old) is not list:
            return _fresh(value, path, state)
        return _update_items(old, value, path, state)
    raise _Slow


def _update_items(old: list[Any], value: Any, path: Path, state: str) -> Tree:
    items: list[Any] = []
    n_old = len(old)
    changed = len(value) != n_old
    for i, v in enumerate(value):
        if i < n_old:
            o = old[i]
            if v is o:
                n = o
            else:
                n = _update(o, v, [*path, i], state)
                if n is not o:
                    changed = True
        else:
            n = _fresh(v, [*path, i], state)
        items.append(n)
    return items if changed else old


# -- diff / patch / fold ------------------------------------------------------------------


def diff(old: Tree, new: Tree, path: Path | None = None, out: list[Op] | None = None) -> list[Op]:
    """The ops turning tree ``old`` into tree ``new`` (``old is None``: the whole value)."""
    if out is None:
        out = []
    if path is None:
        path = []
        if old is None:
            out.append(["s", [], new])
            return out
    if old is new or (type(old) is type(new) and old == new):
        return out
    if isinstance(old, dict) and isinstance(new, dict):
        for k, v in new.items():
            if k not in old:
                out.append(["s", [*path, k], v])
            else:
                diff(old[k], v, [*path, k], out)
        for k in old:
            if k not in new:
                out.append(["d", [*path, k]])
        return out
    if isinstance(old, list) and isinstance(new, list):
        n = len(old)
        if len(new) == n:
            for i in range(n):
                diff(old[i], new[i], [*path, i], out)
            return out
        if len(new) > n and new[:n] == old:
            out.append(["a", path, new[n:]])
            return out
    out.append(["s", path, new])
    return out


def apply_ops(tree: Tree, ops: list[Op]) -> Tree:
    """``tree`` with ``ops`` applied (``tree`` is modified in place where it can be)."""
    for op in ops:
        kind, path = op[0], op[1]
        if not path:
            if kind == "s":
                tree = _copy_tree(op[2])
            elif kind == "a":
                tree.extend(_copy_tree(op[2]))
            continue
        parent = tree
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if kind == "s":
            parent[last] = _copy_tree(op[2])
        elif kind == "d":
            del parent[last]
        else:
            parent[last].extend(_copy_tree(op[2]))
    return tree


def encode_patch(fingerprint: str, ops: list[Op]) -> bytes:
    """The ``data_patch`` blob of a row."""
    return f'{{"t":{_PATCH_ENCODE(fingerprint)},"p":{_PATCH_ENCODE(ops)}}}'.encode()


# built once: ``json.dumps`` with options builds an encoder per call
_PATCH_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def decode_patch(blob: bytes, where: str) -> tuple[str, list[Op]]:
    """``(fingerprint, ops)`` of a ``data_patch`` blob; `RunDataError` naming the row."""
    try:
        doc = json.loads(blob)
        return str(doc["t"]), list(doc["p"])
    except (ValueError, TypeError, KeyError) as exc:
        raise RunDataError(f"undecodable run data patch at {where}: {exc}") from exc


def fold(patches: list[tuple[int, bytes]]) -> tuple[str | None, Tree]:
    """Fold ``(sequence, blob)`` patches in order: ``(last fingerprint, tree)``; ``(None,
    None)`` when there are none (a log written without run data)."""
    tree: Tree = None
    fp: str | None = None
    for seq, blob in patches:
        fp, ops = decode_patch(blob, f"sequence={seq}")
        try:
            tree = apply_ops(tree, ops)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RunDataError(
                f"run data patch at sequence={seq} does not apply to the rows before it: {exc}"
            ) from exc
    return fp, tree


def overlapping(a: Path, b: Path) -> bool:
    """Whether one path is a prefix of the other (the same field or a field inside)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]
