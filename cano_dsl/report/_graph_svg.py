"""The state graph as inline SVG: a layered left-to-right layout computed here (no
JavaScript, no library), with the path the run took drawn over it."""

from __future__ import annotations

import itertools
from collections import Counter, deque
from html import escape
from typing import Any

import attrs

from ._model import RunModel

__all__ = ["graph_svg"]

TIMES = "\u00d7"  # the multiplication sign of counts
_NODE_H = 46
_ROW_GAP = 26
_COL_GAP = 86
_PAD = 40


@attrs.define
class _Node:
    name: str
    kind: str
    detail: str
    width: float = 0.0
    rank: int = 0
    order: float = 0.0
    x: float = 0.0
    y: float = 0.0


@attrs.frozen
class _Edge:
    source: str
    target: str
    join: str = ""
    observed_only: bool = False


def _shape(
    model: RunModel, workflow: Any
) -> tuple[list[_Node], list[_Edge], list[str], Counter[tuple[str, str]]]:
    """Nodes and edges: the workflow's (statically inferred) when it is known, plus
    every transition the run took."""
    nodes: dict[str, _Node] = {}
    edges: dict[tuple[str, str], _Edge] = {}
    notes: list[str] = []
    if workflow is not None:
        from ..cli._graph import build_graph

        graph = build_graph(workflow)
        for n in graph.nodes:
            nodes[n.name] = _Node(n.name, n.kind, n.detail)
        for e in graph.edges:
            edges[(e.source, e.target)] = _Edge(e.source, e.target, e.join)
        notes.extend(graph.notes)
    for v in model.visits:
        if v.state not in nodes:
            kind = "exit" if v.exit else ("split" if v.split else "single")
            nodes[v.state] = _Node(v.state, kind, "")
    taken: Counter[tuple[str, str]] = Counter()
    for (src, dst), times in model.transitions().items():
        if (src, dst) in edges:
            taken[(src, dst)] += times
            continue
        # a checkpoint log has no row for a router: go through routers to connect
        hops = _through_routers(src, dst, edges, nodes) if not model.timed else None
        if hops:
            for hop in hops:
                taken[hop] += times
            continue
        edges[(src, dst)] = _Edge(src, dst, "", observed_only=workflow is not None)
        taken[(src, dst)] += times
    order = {name: i for i, name in enumerate(model.states_order)}
    ordered = sorted(nodes.values(), key=lambda n: order.get(n.name, len(order)))
    return ordered, list(edges.values()), notes, taken


def _through_routers(
    src: str, dst: str, edges: dict[tuple[str, str], _Edge], nodes: dict[str, _Node]
) -> list[tuple[str, str]] | None:
    """The shortest path ``src`` → routers → ``dst`` in the drawn edges, if any."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    previous: dict[str, str] = {}
    queue = deque([src])
    while queue:
        cur = queue.popleft()
        for nxt in succ.get(cur, []):
            if nxt in previous or nxt == src:
                continue
            previous[nxt] = cur
            if nxt == dst:
                path = [dst]
                while path[-1] != src:
                    path.append(previous[path[-1]])
                path.reverse()
                return list(itertools.pairwise(path))
            node = nodes.get(nxt)
            if node is not None and node.kind == "router":
                queue.append(nxt)
    return None


def _ranks(names: list[str], succ: dict[str, list[str]], initial: str | None) -> dict[str, int]:
    """Longest-path layers: the edges that close a cycle (found by a depth-first walk
    from the initial state, then from every state left) are set aside, and each state
    sits one column right of its furthest predecessor."""
    order = ([initial] if initial in succ else []) + names
    seen: set[str] = set()
    on_stack: set[str] = set()
    back: set[tuple[str, str]] = set()
    topo: list[str] = []
    for root in order:
        if root is None or root in seen:
            continue
        stack = [(root, iter(succ[root]))]
        seen.add(root)
        on_stack.add(root)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_stack.discard(node)
                topo.append(node)
            elif nxt in on_stack:
                back.add((node, nxt))
            elif nxt not in seen:
                seen.add(nxt)
                on_stack.add(nxt)
                stack.append((nxt, iter(succ[nxt])))
    rank = dict.fromkeys(names, 0)
    for node in reversed(topo):
        for nxt in succ[node]:
            if (node, nxt) not in back:
                rank[nxt] = max(rank[nxt], rank[node] + 1)
    # a state with no edge at all (an exit no task names) goes to the last column
    linked = {n for n, out in succ.items() if out} | {m for out in succ.values() for m in out}
    last = max(rank.values(), default=0)
    for name in names:
        if name not in linked and name != initial:
            rank[name] = last
    return rank


def _layout(nodes: list[_Node], edges: list[_Edge], initial: str | None) -> tuple[float, float]:
    by_name = {n.name: n for n in nodes}
    succ: dict[str, list[str]] = {n.name: [] for n in nodes}
    for e in edges:
        if e.source in succ and e.target in by_name and e.target not in succ[e.source]:
            succ[e.source].append(e.target)
    rank = _ranks([n.name for n in nodes], succ, initial)
    for n in nodes:
        n.rank = rank[n.name]
        n.width = max(112.0, 8.4 * len(n.name) + 36, 7.0 * len(n.detail) + 28)
    columns: dict[int, list[_Node]] = {}
    for i, n in enumerate(nodes):
        n.order = float(i)
        columns.setdefault(n.rank, []).append(n)
    pred: dict[str, list[str]] = {n.name: [] for n in nodes}
    for e in edges:
        if e.target in pred and e.source in by_name and rank[e.source] < rank[e.target]:
            pred[e.target].append(e.source)
    # one barycentre sweep, left to right, keeps crossings down
    for r in sorted(columns):
        col = columns[r]
        for i, n in enumerate(col):
            n.order = float(i)
        if r > 0:
            for n in col:
                ps = [by_name[p].order for p in pred[n.name]]
                if ps:
                    n.order = sum(ps) / len(ps) + n.order * 1e-3
            col.sort(key=lambda n: n.order)
            for i, n in enumerate(col):
                n.order = float(i)
    tallest = max((len(c) for c in columns.values()), default=1)
    height = tallest * (_NODE_H + _ROW_GAP) - _ROW_GAP
    x: float = _PAD
    for r in sorted(columns):
        col = columns[r]
        width = max(n.width for n in col)
        col_h = len(col) * (_NODE_H + _ROW_GAP) - _ROW_GAP
        top = _PAD + (height - col_h) / 2
        for i, n in enumerate(col):
            n.x = x + (width - n.width) / 2
            n.y = top + i * (_NODE_H + _ROW_GAP)
        x += width + _COL_GAP
    back = any(
        e.source in by_name and e.target in by_name and rank[e.target] <= rank[e.source]
        for e in edges
    )
    return x - _COL_GAP + _PAD, height + 2 * _PAD + (70 if back else 0)


def _status(model: RunModel) -> dict[str, str]:
    status: dict[str, str] = {}
    for v in model.visits:
        status[v.state] = "visited"
    if model.outcome == "completed" and model.final_state:
        status[model.final_state] = "final"
    if model.failed_state:
        status[model.failed_state] = "failed" if model.outcome != "incomplete" else "stopped"
    return status


def _edge_path(a: _Node, b: _Node) -> tuple[str, float, float]:
    """An SVG path from ``a`` to ``b`` and where to put its label."""
    if a is b:
        x, y = a.x + a.width / 2, a.y
        d = (
            f"M {x - 14:.1f} {y:.1f} C {x - 34:.1f} {y - 46:.1f} "
            f"{x + 34:.1f} {y - 46:.1f} {x + 14:.1f} {y:.1f}"
        )
        return d, x, y - 40
    if b.rank > a.rank:
        x1, y1 = a.x + a.width, a.y + _NODE_H / 2
        x2, y2 = b.x, b.y + _NODE_H / 2
        dx = max((x2 - x1) / 2, 30)
        d = f"M {x1:.1f} {y1:.1f} C {x1 + dx:.1f} {y1:.1f} {x2 - dx:.1f} {y2:.1f} {x2:.1f} {y2:.1f}"
        return d, (x1 + x2) / 2, (y1 + y2) / 2 - 6
    # back (or same-column) edge: an arc under the nodes
    x1, y1 = a.x + a.width / 2, a.y + _NODE_H
    x2, y2 = b.x + b.width / 2, b.y + _NODE_H
    depth = 40 + 16 * abs(a.rank - b.rank)
    low = max(y1, y2) + depth
    d = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {low:.1f} {x2:.1f} {low:.1f} {x2:.1f} {y2:.1f}"
    return d, (x1 + x2) / 2, low - depth / 4


_FILL = {
    "visited": ("#dbeafe", "#1d4ed8", "#0f172a"),
    "final": ("#bbf7d0", "#15803d", "#052e16"),
    "failed": ("#fecaca", "#b91c1c", "#450a0a"),
    "stopped": ("#fef3c7", "#b45309", "#451a03"),
    "": ("#f8fafc", "#cbd5e1", "#94a3b8"),
}


def graph_svg(model: RunModel, workflow: Any) -> tuple[str, list[str]]:
    """The graph's SVG and notes about what it could not read."""
    nodes, edges, notes, taken = _shape(model, workflow)
    if not nodes:
        return "", notes
    width, height = _layout(nodes, edges, model.initial)
    by_name = {n.name: n for n in nodes}
    status = _status(model)
    for source, target in taken:  # a router a log passes through was entered too
        status.setdefault(source, "visited")
        status.setdefault(target, "visited")
    visits: dict[str, int] = {}
    for v in model.visits:
        visits[v.state] = visits.get(v.state, 0) + 1
    out = [
        f'<svg id="graph" class="graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" '
        f'aria-label="state graph" xmlns="http://www.w3.org/2000/svg">',
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker>',
        '<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#2563eb"/></marker>',
        "</defs>",
    ]
    # untaken edges first, the path on top
    ordered = sorted(edges, key=lambda e: (e.source, e.target) in taken)
    for e in ordered:
        a, b = by_name.get(e.source), by_name.get(e.target)
        if a is None or b is None:
            continue
        d, lx, ly = _edge_path(a, b)
        count = taken.get((e.source, e.target), 0)
        cls = "edge taken" if count else "edge"
        if e.observed_only:
            cls += " observed"
        if e.join:
            cls += " join"
        marker = "arrow-taken" if count else "arrow"
        tip = f"{e.source} → {e.target}"
        if count:
            tip += f": taken {count}{TIMES}"
        if e.observed_only:
            tip += " (taken, but not found in the task's source)"
        out.append(
            f'<path class="{cls}" d="{d}" marker-end="url(#{marker})">'
            f"<title>{escape(tip)}</title></path>"
        )
        label = f"join: {e.join}" if e.join else ""
        if count > 1:
            label = f"{label} {TIMES}{count}".strip()
        if label:
            out.append(
                f'<text class="edge-label{" taken" if count else ""}" x="{lx:.1f}" '
                f'y="{ly:.1f}" text-anchor="middle">{escape(label)}</text>'
            )
    for n in nodes:
        st = status.get(n.name, "")
        fill, stroke, text = _FILL[st]
        rx = _NODE_H / 2 if n.kind == "exit" else 8
        dash = ' stroke-dasharray="5 4"' if n.kind == "unknown" else ""
        width_attr = 3 if st in ("failed", "final", "stopped") else (2 if st else 1.2)
        cls = f"node {st or 'unvisited'}"
        tip = f"{n.name} ({n.kind})"
        if n.name in visits:
            tip += f": entered {visits[n.name]}{TIMES}"
        else:
            tip += ": not entered"
        out.append(f'<g class="{cls}" data-state="{escape(n.name)}"><title>{escape(tip)}</title>')
        if n.kind == "split":
            out.append(
                f'<rect x="{n.x + 5:.1f}" y="{n.y - 5:.1f}" width="{n.width:.1f}" '
                f'height="{_NODE_H}" rx="{rx}" fill="{fill}" stroke="{stroke}" '
                f'stroke-width="1.2" opacity="0.7"/>'
            )
        out.append(
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{n.width:.1f}" height="{_NODE_H}" '
            f'rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="{width_attr}"{dash}/>'
        )
        if n.kind == "router":
            cx, cy = n.x + 12, n.y + 12
            out.append(
                f'<path d="M {cx} {cy - 6} L {cx + 6} {cy} L {cx} {cy + 6} L {cx - 6} {cy} z" '
                f'fill="{stroke}" opacity="0.6"/>'
            )
        detail = n.detail or ("" if n.kind in ("single", "exit") else n.kind)
        if n.kind == "exit" and not n.detail:
            detail = "exit"
        mark = {"failed": "✘ ", "final": "✔ ", "stopped": "■ "}.get(st, "")
        ty = n.y + (_NODE_H / 2 - 2 if detail else _NODE_H / 2 + 5)
        out.append(
            f'<text x="{n.x + n.width / 2:.1f}" y="{ty:.1f}" text-anchor="middle" '
            f'class="node-name" fill="{text}">{escape(mark + n.name)}</text>'
        )
        if detail:
            out.append(
                f'<text x="{n.x + n.width / 2:.1f}" y="{n.y + _NODE_H / 2 + 13:.1f}" '
                f'text-anchor="middle" class="node-detail" fill="{text}">{escape(detail)}</text>'
            )
        if visits.get(n.name, 0) > 1:
            out.append(
                f'<g class="badge"><circle cx="{n.x + n.width:.1f}" cy="{n.y:.1f}" r="11" '
                f'fill="#1d4ed8"/><text x="{n.x + n.width:.1f}" y="{n.y + 4:.1f}" '
                f'text-anchor="middle" fill="#fff" font-size="11">'
                f"{visits[n.name]}{TIMES}</text></g>"
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out), notes
