"""Drawing a workflow: its states, the split → join edges, the transitions a task
declares (``to=`` / ``Literal``, drawn bold) and, for an undeclared task, the ones read
statically from its source (drawn thin), as Mermaid or Graphviz DOT.

A task's possible next states are the members of the workflow's state Enum that
its code mentions: for a class, every method but ``compensate`` (across the user
classes of its MRO), for a function task its body; plus states held in the task
object's attributes or a function's closure (``Forward(Step.B)``, factories). It is
an over-approximation of what the task can return, which is what a diagram wants.
"""

from __future__ import annotations

import ast
import builtins
import enum
import inspect
import sys
import textwrap
from collections.abc import Iterable
from typing import Any

import attrs

from ..workflow import Workflow
from ._load import state_enum

__all__ = ["Graph", "build_graph", "render_dot", "render_mermaid"]

_SKIPPED_METHODS = frozenset({"compensate"})


@attrs.frozen
class Node:
    name: str
    kind: str
    """``single``, ``router``, ``split``, ``stepped``, ``stream``, ``compensatable``,
    ``exit`` or ``unknown`` (referenced, but neither registered nor an exit state)."""
    detail: str = ""


@attrs.frozen
class Edge:
    source: str
    target: str
    join: str = ""
    """The join strategy for a split → join edge; empty for an inferred transition."""
    declared: bool = False
    """A transition the task declares (``to=`` / ``Literal``): drawn bold, like a
    join; an inferred one is drawn thin."""


@attrs.frozen
class Graph:
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    notes: tuple[str, ...] = ()


# -- static inference ---------------------------------------------------------------------


def _members_in(value: Any, states: type[enum.Enum], depth: int = 0) -> set[enum.Enum]:
    if isinstance(value, states):
        return {value}
    found: set[enum.Enum] = set()
    if depth < 2:
        if isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                found |= _members_in(item, states, depth + 1)
        elif isinstance(value, dict):
            for item in value.values():
                found |= _members_in(item, states, depth + 1)
    return found


class _Finder(ast.NodeVisitor):
    """Collects ``Enum.MEMBER`` / ``Enum["MEMBER"]`` references to ``states``."""

    def __init__(self, states: type[enum.Enum], namespace: dict[str, Any]) -> None:
        self.states = states
        self.namespace = namespace
        self.found: set[enum.Enum] = set()

    def _is_enum(self, node: ast.expr) -> bool:
        value = self._resolve(node)
        if value is self.states:
            return True
        # an Enum the namespace cannot see (defined in a function): trust its name
        return value is None and isinstance(node, ast.Name) and node.id == self.states.__name__

    def _resolve(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            if node.id in self.namespace:
                return self.namespace[node.id]
            return getattr(builtins, node.id, None)
        if isinstance(node, ast.Attribute):
            base = self._resolve(node.value)
            return None if base is None else getattr(base, node.attr, None)
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        members = self.states.__members__
        if node.attr in members and self._is_enum(node.value):
            self.found.add(members[node.attr])
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = node.slice
        if (
            isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and key.value in self.states.__members__
            and self._is_enum(node.value)
        ):
            self.found.add(self.states.__members__[key.value])
        self.generic_visit(node)


def _parse(obj: Any) -> ast.Module | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    try:
        return ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None


def _function_refs(fn: Any, states: type[enum.Enum]) -> set[enum.Enum] | None:
    tree = _parse(fn)
    if tree is None:
        return None
    namespace = dict(getattr(fn, "__globals__", {}))
    found: set[enum.Enum] = set()
    try:
        closure = inspect.getclosurevars(fn)
    except (TypeError, ValueError):
        closure = None
    if closure is not None:
        namespace.update(closure.globals)
        namespace.update(closure.nonlocals)
        for value in closure.nonlocals.values():
            found |= _members_in(value, states)
    finder = _Finder(states, namespace)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in node.body:  # the body only, not the decorators
                finder.visit(stmt)
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    finder.visit(default)
            break
    return found | finder.found


def _user_classes(cls: type) -> Iterable[type]:
    for klass in cls.__mro__:
        module = getattr(klass, "__module__", "")
        if klass is object or module in ("builtins", "typing", "abc"):
            continue
        if module == "cano_dsl" or module.startswith("cano_dsl."):
            continue
        yield klass


def _class_refs(cls: type, states: type[enum.Enum]) -> set[enum.Enum] | None:
    found: set[enum.Enum] = set()
    readable = False
    for klass in _user_classes(cls):
        tree = _parse(klass)
        if tree is None:
            continue
        readable = True
        module = sys.modules.get(klass.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        namespace.update(vars(klass))
        finder = _Finder(states, namespace)
        body = tree.body[0] if tree.body else None
        if not isinstance(body, ast.ClassDef):
            continue
        for stmt in body.body:
            if (
                isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                and stmt.name in _SKIPPED_METHODS
            ):
                continue
            finder.visit(stmt)
        found |= finder.found
    return found if readable else None


def task_targets(task: Any, states: type[enum.Enum]) -> set[enum.Enum] | None:
    """The states ``task``'s code or attributes mention; None if its source cannot be
    read (and no attribute names a state)."""
    fn = getattr(task, "fn", None)
    if fn is not None and callable(fn):
        return _function_refs(fn, states)
    found = _class_refs(type(task), states)
    try:
        attributes = vars(task)
    except TypeError:
        attributes = {}
    held: set[enum.Enum] = set()
    for value in attributes.values():
        held |= _members_in(value, states)
    if found is None:
        return held or None
    return found | held


# -- the graph ---------------------------------------------------------------------------


def entry_targets(entry: Any, states: type[enum.Enum]) -> tuple[set[enum.Enum] | None, bool]:
    """The states a registered task may move to and whether they are declared (``to=``
    or a ``Literal`` return annotation: exact) or inferred from its source (a guess;
    None when the source cannot be read)."""
    declared = getattr(entry, "to", None)
    if declared is not None:
        return set(declared), True
    return task_targets(entry.task, states), False


def _task_label(task: Any) -> str:
    name = getattr(task, "name", None)
    try:
        value = name() if callable(name) else name
    except Exception:
        value = None
    return str(value) if value else type(task).__qualname__


def build_graph(wf: Workflow[Any]) -> Graph:
    """The nodes and edges of ``wf``."""
    states = state_enum(wf)
    entries: dict[Any, Any] = dict(getattr(wf, "_entries", {}))
    exits = set(wf.exit_states)
    edges: list[Edge] = []
    notes: list[str] = []
    kinds: dict[Any, tuple[str, str]] = {}
    for state, entry in entries.items():
        kind = entry.kind
        if kind == "split":
            n = len(entry.tasks)
            kinds[state] = ("split", f"split x{n}")
            edges.append(Edge(state.name, entry.join.join_state.name, str(entry.join.strategy)))
            continue
        kinds[state] = (kind, "" if kind in ("single", "router") else kind)
        targets, declared = entry_targets(entry, states)
        if targets is None:
            notes.append(f"{state.name}: source of {_task_label(entry.task)} not readable")
            continue
        for target in sorted(targets, key=_order(states)):
            edges.append(Edge(state.name, target.name, declared=declared))
    for state in exits:
        kinds.setdefault(state, ("exit", ""))
    mentioned = {e.target for e in edges}
    nodes = []
    for member in states:
        if member in kinds:
            kind, detail = kinds[member]
            if member in exits and kind != "exit":
                detail = f"{detail}, exit" if detail else "exit"
            nodes.append(Node(member.name, kind, detail))
        elif member.name in mentioned:
            nodes.append(Node(member.name, "unknown", "not registered"))
    return Graph(states.__name__, tuple(nodes), tuple(edges), tuple(notes))


def _order(states: type[enum.Enum]) -> Any:
    index = {m: i for i, m in enumerate(states)}
    return lambda m: index.get(m, len(index))


# -- renderers ---------------------------------------------------------------------------


def _mermaid_id(name: str) -> str:
    return f"{name}_" if name.lower() in ("end", "graph", "subgraph", "class", "style") else name


_MERMAID_SHAPES = {
    "router": ('{"', '"}'),
    "split": ('[["', '"]]'),
    "exit": ('(["', '"])'),
    "unknown": ('["', '"]'),
}


def render_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: routers are diamonds, splits subroutine boxes, exit states
    stadiums; a bold edge is a split's join or a declared transition, a thin one a
    transition inferred from the task's source."""
    lines = ["flowchart TD", f"    %% {graph.title}"]
    lines.extend(f"    %% {note}" for note in graph.notes)
    classes: dict[str, list[str]] = {}
    for node in graph.nodes:
        ident = _mermaid_id(node.name)
        left, right = _MERMAID_SHAPES.get(node.kind, ('["', '"]'))
        label = f"{node.name}<br/><i>{node.detail}</i>" if node.detail else node.name
        lines.append(f"    {ident}{left}{label}{right}")
        if node.kind in ("router", "split", "exit", "unknown"):
            classes.setdefault(node.kind, []).append(ident)
        elif "exit" in node.detail:
            classes.setdefault("exit", []).append(ident)
    for edge in graph.edges:
        src, dst = _mermaid_id(edge.source), _mermaid_id(edge.target)
        if edge.join:
            lines.append(f'    {src} ==>|"join: {edge.join}"| {dst}')
        elif edge.declared:
            lines.append(f"    {src} ==> {dst}")
        else:
            lines.append(f"    {src} --> {dst}")
    styles = {
        "exit": "fill:#d4f4dd,stroke:#2e7d32",
        "router": "fill:#fff4cc,stroke:#b58900",
        "split": "fill:#dbe9ff,stroke:#1e5bb8",
        "unknown": "fill:#fff,stroke:#c62828,stroke-dasharray:4",
    }
    for kind, idents in classes.items():
        lines.append(f"    classDef {kind} {styles[kind]}")
        lines.append(f"    class {','.join(idents)} {kind}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


_DOT_ATTRS = {
    "router": 'shape=diamond, style=filled, fillcolor="#fff4cc"',
    "split": 'shape=box3d, style=filled, fillcolor="#dbe9ff"',
    "exit": 'shape=doublecircle, style=filled, fillcolor="#d4f4dd"',
    "unknown": 'shape=box, style=dashed, color="#c62828"',
}


def render_dot(graph: Graph) -> str:
    """A Graphviz digraph: routers are diamonds, splits 3-D boxes, exit states double
    circles; a bold edge is a split's join or a declared transition, a plain one a
    transition inferred from the task's source."""
    lines = [f"digraph {_dot_quote(graph.title)} {{", "    rankdir=LR;"]
    lines.extend(f"    // {note}" for note in graph.notes)
    lines.append("    node [shape=box, style=rounded];")
    for node in graph.nodes:
        attrs_ = [_DOT_ATTRS[node.kind]] if node.kind in _DOT_ATTRS else []
        if node.kind != "exit" and "exit" in node.detail:
            attrs_.append("peripheries=2")
        if node.detail:
            label = f"{_dot_escape(node.name)}\\n({_dot_escape(node.detail)})"
            attrs_.append(f'label="{label}"')
        suffix = f" [{', '.join(attrs_)}]" if attrs_ else ""
        lines.append(f"    {_dot_quote(node.name)}{suffix};")
    for edge in graph.edges:
        arrow = f"    {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}"
        if edge.join:
            arrow += f" [style=bold, label={_dot_quote('join: ' + edge.join)}]"
        elif edge.declared:
            arrow += " [style=bold]"
        lines.append(arrow + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"
