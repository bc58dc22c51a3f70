"""The timeline: one row per state entered (split branches side by side under their
state), attempts and retry waits as segments on a shared time axis. A log without
timestamps is drawn as an ordered list instead."""

from __future__ import annotations

import math
from html import escape

from ._model import Attempt, Branch, RunModel, Visit

__all__ = ["duration", "timeline_html"]

_LABEL_W = 200
_BAR_W = 860
_TEXT_W = 260
_ROW = 30
_BRANCH_ROW = 24
_TOP = 34
_MAX_ROWS = 400


def duration(seconds: float | None) -> str:
    """A short human duration: ``850 µs``, ``12.3 ms``, ``1.25 s``, ``2 min 5 s``."""
    if seconds is None:
        return "?"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes:.0f} min {rest:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours:.0f} h {minutes:.0f} min"


def _ticks(total: float) -> list[float]:
    if total <= 0:
        return [0.0]
    raw = total / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    count = int(total / step + 1e-9)
    return [i * step for i in range(count + 1)]


class _Svg:
    def __init__(self, total: float) -> None:
        self.total = total if total > 0 else 1e-9
        self.parts: list[str] = []
        self.y = _TOP

    def x(self, t: float) -> float:
        return _LABEL_W + max(0.0, min(t, self.total)) / self.total * _BAR_W

    def rect(self, t0: float, t1: float, y: float, h: float, cls: str, tip: str) -> None:
        x0, x1 = self.x(t0), self.x(t1)
        w = max(x1 - x0, 2.0)
        self.parts.append(
            f'<rect class="{cls}" x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h}" rx="3">'
            f"<title>{escape(tip)}</title></rect>"
        )

    def text(self, x: float, y: float, text: str, cls: str, anchor: str = "start") -> None:
        self.parts.append(
            f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
            f"{escape(text)}</text>"
        )


def _attempt_tip(task_id: str, a: Attempt) -> str:
    outcome = {True: "succeeded", False: "failed", None: "did not finish"}[a.ok]
    tip = f"{task_id} attempt {a.number} {outcome}"
    if a.end is not None:
        tip += f" after {duration(a.end - a.start)}"
    if a.wait_start is not None and not a.wait_known and a.number > 1:
        tip += " (includes the retry delay: pass the workflow to separate them)"
    return tip


def _branch_segments(svg: _Svg, b: Branch, y: float, h: float, end: float) -> None:
    for a in b.attempts:
        a_end = a.end if a.end is not None else end
        if a.wait_start is not None and a.wait_known and a.start > a.wait_start:
            svg.rect(
                a.wait_start,
                a.start,
                y + h * 0.25,
                h * 0.5,
                "seg wait",
                f"{b.task_id}: waited {duration(a.start - a.wait_start)} before attempt {a.number}",
            )
        cls = {True: "seg ok", False: "seg failed", None: "seg open"}[a.ok]
        svg.rect(a.start, a_end, y, h, cls, _attempt_tip(b.task_id, a))
        width = svg.x(a_end) - svg.x(a.start)
        if len(b.attempts) > 1 and width > 26:
            mark = {True: "✔", False: "✘", None: "…"}[a.ok]
            svg.text(
                (svg.x(a.start) + svg.x(a_end)) / 2,
                y + h / 2 + 4,
                f"#{a.number}{mark}",
                "seg-label",
                "middle",
            )
    if b.circuit_open:
        svg.text(svg.x(b.start) + 2, y - 2, "circuit open", "note-label")


def _visit_label(v: Visit, repeats: dict[str, int]) -> str:
    return f"{v.state} #{repeats[v.state]}" if repeats[v.state] > 1 else v.state


def _visit_text(v: Visit, total: float) -> tuple[str, str]:
    d = v.duration or 0.0
    share = f" ({d / total * 100:.0f}%)" if total > 0 and d / total >= 0.01 else ""
    failed = [b for b in v.branches if b.ok is False]
    if v.status == "exit":
        return "exit state reached", "ok-label"
    retries = sum(len(b.retries) for b in v.branches)
    tail = f", {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
    if failed:
        return f"{duration(d)}{tail} ✘ {failed[-1].category}", "fail-label"
    if v.status == "cancelled":
        return f"{duration(d)} ■ cancelled here", "fail-label"
    if v.status == "running":
        return f"{duration(d)}{tail} (no end recorded)", "warn-label"
    return f"{duration(d)}{share}{tail}", "dur-label"


def _timed(model: RunModel) -> str:
    total = model.total or 0.0
    svg = _Svg(total)
    repeats: dict[str, int] = {}
    rows: list[tuple[Visit, str]] = []
    seen: dict[str, int] = {}
    for v in model.visits:
        seen[v.state] = seen.get(v.state, 0) + 1
    omitted = 0
    visits = model.visits
    if len(visits) > _MAX_ROWS:
        half = _MAX_ROWS // 2
        omitted = len(visits) - _MAX_ROWS
        visits = [*visits[:half], *visits[-half:]]
    for v in visits:
        repeats[v.state] = repeats.get(v.state, 0) + 1
        label = f"{v.state} #{repeats[v.state]}" if seen[v.state] > 1 else v.state
        rows.append((v, label))
    body: list[str] = []
    svg.parts = body
    y = float(_TOP)
    for i, (v, label) in enumerate(rows):
        if omitted and i == _MAX_ROWS // 2:
            svg.text(_LABEL_W, y + 18, f"… {omitted} state visits not drawn …", "note-label")
            y += _ROW
        start = v.start or 0.0
        end = v.end if v.end is not None else total
        h = _ROW - 10
        status = v.status
        body.append(f'<g class="row {status}" data-state="{escape(v.state)}">')
        if i % 2 == 0:
            body.append(
                f'<rect class="stripe" x="0" y="{y:.1f}" width="{_LABEL_W + _BAR_W + _TEXT_W}" '
                f'height="{_ROW}"/>'
            )
        svg.text(_LABEL_W - 10, y + _ROW / 2 + 5, label, f"row-label {status}", "end")
        if v.status == "exit":
            x = svg.x(start)
            body.append(
                f'<path class="exit-mark" d="M {x:.1f} {y + 5:.1f} L {x + 9:.1f} {y + 15:.1f} '
                f'L {x:.1f} {y + 25:.1f} L {x - 9:.1f} {y + 15:.1f} z">'
                f"<title>{escape(v.state)}: exit state, entered at {duration(start)}</title></path>"
            )
            text, cls = _visit_text(v, total)
            svg.text(x + 14, y + _ROW / 2 + 5, text, cls)
            body.append("</g>")
            y += _ROW
            continue
        svg.rect(
            start,
            end,
            y + 3,
            _ROW - 6,
            f"visit {status}",
            f"{v.state}: entered at {duration(start)}, left at {duration(end)} "
            f"({duration(end - start)})",
        )
        if not v.split:
            for b in v.branches:
                _branch_segments(svg, b, y + 5, h, end)
        text, cls = _visit_text(v, total)
        svg.text(max(svg.x(end), svg.x(start) + 2) + 8, y + _ROW / 2 + 5, text, cls)
        body.append("</g>")
        y += _ROW
        if v.split:
            for b in v.branches:
                b_status = {True: "ok", False: "failed", None: "running"}[b.ok]
                body.append(f'<g class="row branch {b_status}" data-state="{escape(v.state)}">')
                svg.text(
                    _LABEL_W - 10, y + _BRANCH_ROW / 2 + 4, f"↳ {b.task_id}", "branch-label", "end"
                )
                _branch_segments(svg, b, y + 4, _BRANCH_ROW - 8, end)
                b_end = b.end if b.end is not None else end
                note = ""
                if b.ok is False:
                    msg = b.error if len(b.error) <= 28 else b.error[:27] + "…"
                    note = f"✘ {msg}"
                elif b.retries:
                    note = f"{len(b.retries)} retr{'y' if len(b.retries) == 1 else 'ies'}"
                if note:
                    svg.text(
                        svg.x(b_end) + 8,
                        y + _BRANCH_ROW / 2 + 4,
                        note,
                        "fail-label" if b.ok is False else "dur-label",
                    )
                body.append("</g>")
                y += _BRANCH_ROW
    height = y + 12
    width = _LABEL_W + _BAR_W + _TEXT_W
    axis: list[str] = []
    for t in _ticks(total):
        x = svg.x(t)
        axis.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_TOP - 6}" x2="{x:.1f}" y2="{height - 8:.1f}"/>'
        )
        axis.append(
            f'<text class="tick" x="{x:.1f}" y="{_TOP - 12}" text-anchor="middle">'
            f"{escape(duration(t) if t else '0')}</text>"
        )
    head = (
        f'<svg id="timeline" class="timeline" viewBox="0 0 {width} {height:.0f}" width="{width}" '
        f'height="{height:.0f}" role="img" aria-label="timeline" '
        f'xmlns="http://www.w3.org/2000/svg">'
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fef3c7"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#d97706" stroke-width="2.5"/></pattern></defs>'
    )
    return head + "\n".join(axis) + "\n".join(body) + "</svg>"


def _untimed(model: RunModel) -> str:
    items: list[str] = []
    last = len(model.visits) - 1
    for i, v in enumerate(model.visits):
        cls = "step"
        if i == last and model.outcome != "completed":
            cls += " last"
        bits: list[str] = []
        for row in v.rows:
            kind = row.kind.name.lower()
            what = f"#{row.sequence} {kind}"
            if row.task_id:
                what += f" · {row.task_id}"
            bits.append(f"<span class='row-kind {kind}'>{escape(what)}</span>")
        cursor = model.cursors.get(v.state)
        if cursor is not None:
            bits.append(
                f"<span class='cursor'>progress: {cursor[0]} cursor row"
                f"{'s' if cursor[0] != 1 else ''}, last {escape(cursor[1])}</span>"
            )
        kind = f"<span class='kind'>{escape(v.kind)}</span>" if v.kind else ""
        items.append(
            f"<li class='{cls}' data-state='{escape(v.state)}'><b>{escape(v.state)}</b>{kind}"
            f"<div class='rows'>{''.join(bits)}</div></li>"
        )
    return f"<ol id='timeline' class='timeline steps'>{''.join(items)}</ol>"


def timeline_html(model: RunModel) -> str:
    """The timeline block (an SVG when timed, else an ordered list)."""
    if not model.visits:
        return "<p id='timeline' class='empty'>No state was entered.</p>"
    if model.timed:
        return _timed(model)
    return _untimed(model)
