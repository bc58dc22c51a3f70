"""The page: summary, graph, timeline, errors and compensations in one HTML file with
its CSS and a few lines of JavaScript inline."""

from __future__ import annotations

from html import escape
from typing import Any

from ._graph_svg import TIMES, graph_svg
from ._model import RunModel
from ._timeline import duration, timeline_html

__all__ = ["page"]

_PALETTE = (
    "#2563eb",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#4f46e5",
    "#ea580c",
    "#0d9488",
    "#9333ea",
)

_CSS = """
:root { --ok:#16a34a; --fail:#dc2626; --warn:#d97706; --ink:#0f172a; --muted:#64748b;
  --line:#e2e8f0; --bg:#f8fafc; --blue:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",
  Arial,sans-serif; color:var(--ink); background:var(--bg); }
main { max-width:1480px; margin:0 auto; padding:20px 28px 40px; }
h1 { font-size:20px; margin:0 0 2px; }
h2 { font-size:15px; margin:0 0 10px; text-transform:uppercase; letter-spacing:.06em;
  color:var(--muted); }
.sub { color:var(--muted); font-size:13px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px;
  padding:16px 20px; margin-top:16px; }
.banner { display:flex; gap:16px; align-items:center; border-left:8px solid var(--muted); }
.banner.completed { border-left-color:var(--ok); }
.banner.failed, .banner.cancelled { border-left-color:var(--fail); }
.banner.incomplete { border-left-color:var(--warn); }
.banner .icon { font-size:34px; width:44px; text-align:center; }
.banner.completed .icon { color:var(--ok); } .banner.failed .icon,
.banner.cancelled .icon { color:var(--fail); } .banner.incomplete .icon { color:var(--warn); }
.headline { font-size:22px; font-weight:650; }
.errline { margin-top:4px; font-size:15px; }
.cat { display:inline-block; font:600 12px/1 ui-monospace,SFMono-Regular,Menlo,monospace;
  background:#fee2e2; color:#991b1b; border-radius:4px; padding:4px 6px; margin-right:6px; }
.stats { display:flex; gap:28px; margin-left:auto; }
.stat b { display:block; font-size:20px; white-space:nowrap; }
.stat span { color:var(--muted); font-size:12px; }
.spent { display:flex; height:30px; border-radius:6px; overflow:hidden; margin:6px 0 10px;
  background:var(--line); }
.spent div { color:#fff; font-size:12px; font-weight:600; white-space:nowrap; overflow:hidden;
  padding:7px 6px; min-width:2px; }
.spent div.failed { background-image:repeating-linear-gradient(45deg,transparent 0 6px,
  rgba(255,255,255,.25) 6px 12px); }
table { border-collapse:collapse; }
td, th { padding:3px 14px 3px 0; text-align:left; vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; }
.scroll { overflow-x:auto; }
svg.timeline, svg.graph { max-width:100%; height:auto; }
.graph .edge { fill:none; stroke:#cbd5e1; stroke-width:1.4; }
.graph .edge.observed { stroke-dasharray:6 4; }
.graph .edge.join { stroke-width:2.2; }
.graph .edge.taken { stroke:var(--blue); stroke-width:3.2; }
.graph .edge-label { font-size:11px; fill:var(--muted); }
.graph .edge-label.taken { fill:var(--blue); font-weight:600; }
.graph .node-name { font-weight:650; font-size:13px; }
.graph .node-detail { font-size:11px; opacity:.8; }
.graph .node.unvisited { opacity:.75; }
.timeline text { font-size:12px; }
.timeline .stripe { fill:#f8fafc; }
.timeline .grid { stroke:#e2e8f0; }
.timeline .tick { fill:var(--muted); font-size:11px; }
.timeline .row-label { font-weight:600; fill:var(--ink); }
.timeline .row-label.failed, .timeline .row-label.cancelled { fill:var(--fail); }
.timeline .branch-label { fill:var(--muted); }
.timeline .visit { fill:#e2e8f0; }
.timeline .visit.failed, .timeline .visit.cancelled { fill:#fee2e2; }
.timeline .seg.ok { fill:#22c55e; }
.timeline .seg.failed { fill:#ef4444; }
.timeline .seg.open { fill:#f59e0b; }
.timeline .seg.wait { fill:url(#hatch); }
.timeline .seg-label { fill:#fff; font-size:11px; font-weight:700; }
.timeline .dur-label { fill:#334155; }
.timeline .ok-label { fill:var(--ok); font-weight:600; }
.timeline .fail-label { fill:var(--fail); font-weight:600; }
.timeline .warn-label, .timeline .note-label { fill:var(--warn); }
.timeline .exit-mark { fill:var(--ok); }
.legend { display:flex; gap:18px; flex-wrap:wrap; font-size:12px; color:var(--muted);
  margin-top:8px; }
.legend i { display:inline-block; width:18px; height:10px; border-radius:2px;
  margin-right:5px; vertical-align:-1px; }
.steps { list-style:none; padding:0; margin:0; display:flex; flex-wrap:wrap; gap:10px; }
.steps li { border:2px solid #93c5fd; background:#eff6ff; border-radius:8px; padding:8px 12px;
  position:relative; }
.steps li + li::before { content:"→"; position:absolute; left:-11px; top:8px;
  color:var(--muted); }
.steps li.last { border-color:var(--warn); background:#fffbeb; }
.steps .kind { margin-left:8px; font-size:11px; color:var(--muted); }
.steps .rows span { display:block; font:12px ui-monospace,SFMono-Regular,Menlo,monospace;
  color:#334155; }
.errors td.msg { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:13px;
  white-space:pre-wrap; word-break:break-word; }
.comp li { margin:2px 0; }
.notes { color:var(--muted); font-size:13px; }
.hl rect.visit, .hl rect:first-of-type { stroke:#0f172a; stroke-width:2; }
"""

_JS = """
(function () {
  var marked = [];
  function clear() { marked.forEach(function (e) { e.classList.remove('hl'); }); marked = []; }
  document.querySelectorAll('[data-state]').forEach(function (el) {
    el.addEventListener('mouseenter', function () {
      clear();
      var name = el.getAttribute('data-state');
      document.querySelectorAll('[data-state]').forEach(function (other) {
        if (other.getAttribute('data-state') === name) {
          other.classList.add('hl'); marked.push(other);
        }
      });
    });
    el.addEventListener('mouseleave', clear);
  });
})();
"""


def _headline(model: RunModel) -> tuple[str, str]:
    if model.outcome == "completed":
        return "✔", f"Completed in exit state {model.final_state}"
    if model.outcome == "failed":
        where = f" in state {model.failed_state}" if model.failed_state else ""
        return "✘", f"Failed{where}"
    if model.outcome == "cancelled":
        where = f" in state {model.failed_state}" if model.failed_state else ""
        return "■", f"Cancelled{where}"
    if model.failed_state:
        return "■", f"Not finished: the log stops in state {model.failed_state}"
    return "…", "No exit state reached"


def _stat(value: str, label: str) -> str:
    return f"<div class='stat'><b>{escape(value)}</b><span>{escape(label)}</span></div>"


def _colors(model: RunModel) -> dict[str, str]:
    names = list(model.states_order) or []
    for v in model.visits:
        if v.state not in names:
            names.append(v.state)
    return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def _summary(model: RunModel) -> str:
    icon, headline = _headline(model)
    err = ""
    if model.error_message and model.outcome in ("failed", "cancelled"):
        msg = (
            model.error_message
            if len(model.error_message) <= 300
            else model.error_message[:299] + "…"
        )
        err = (
            f"<div class='errline'><span class='cat'>{escape(model.error_category)}</span>"
            f"{escape(msg)}</div>"
        )
    elif model.outcome == "incomplete" and not model.has_events:
        err = (
            "<div class='errline sub'>A checkpoint log is kept only for a run that failed, "
            "was interrupted or is still running; it does not record the error.</div>"
        )
    retries = sum(len(b.retries) for v in model.visits for b in v.branches)
    stats = [
        _stat(duration(model.total) if model.total is not None else "n/a", "total time"),
        _stat(str(len(model.visits)), "states entered"),
        _stat(str(retries) if model.has_events else "n/a", "retries"),
        _stat(str(len(model.errors)) if model.has_events else "n/a", "failed tasks"),
    ]
    source = []
    if model.has_events:
        source.append("recorded observer events")
    if model.has_rows:
        rows = sum(len(v.rows) for v in model.visits) or "its"
        source.append(f"checkpoint log ({rows} rows)" if model.has_rows else "")
    src = " + ".join(s for s in source if s) or "nothing recorded"
    resumed = (
        f" · resumed after row {model.resumed_after}" if model.resumed_after is not None else ""
    )
    wid = f"workflow id {escape(model.workflow_id)} · " if model.workflow_id else ""
    banner = (
        f"<section id='summary' class='banner {model.outcome}'>"
        f"<div class='icon'>{icon}</div><div><h1>{escape(model.title)}</h1>"
        f"<div class='headline'>{escape(headline)}</div>{err}"
        f"<div class='sub'>{wid}from {escape(src)}{escape(resumed)}</div></div>"
        f"<div class='stats'>{''.join(stats)}</div></section>"
    )
    return banner + _where_time_went(model)


def _where_time_went(model: RunModel) -> str:
    spent = model.time_by_state()
    total = model.total or 0.0
    if not spent or total <= 0:
        return ""
    colors = _colors(model)
    failed = model.failed_state if model.outcome in ("failed", "cancelled") else None
    bar: list[str] = []
    for v in model.visits:
        d = v.duration or 0.0
        pct = d / total * 100
        if pct < 0.05:
            continue
        cls = " class='failed'" if v.state == failed and v is model.visits[-1] else ""
        bar.append(
            f"<div{cls} data-state='{escape(v.state)}' style='width:{pct:.2f}%;"
            f"background:{colors[v.state]}' title='{escape(v.state)}: {duration(d)} "
            f"({pct:.0f}%)'>{escape(v.state) if pct > 6 else ''}</div>"
        )
    rows: list[str] = []
    wait = model.retry_wait()
    for state, seconds, visits in spent[:8]:
        pct = seconds / total * 100
        mark = " <b style='color:var(--fail)'>✘ failed here</b>" if state == failed else ""
        rows.append(
            f"<tr data-state='{escape(state)}'><td><span class='swatch' "
            f"style='background:{colors[state]}'></span>{escape(state)}{mark}</td>"
            f"<td class='num'>{duration(seconds)}</td><td class='num'>{pct:.0f}%</td>"
            f"<td class='num'>{visits}{TIMES}</td></tr>"
        )
    top, top_s, _ = spent[0]
    lead = f"Most of the time went to <b>{escape(top)}</b> ({top_s / total * 100:.0f}%)."
    if wait > 0:
        lead += f" Waiting between retries: {duration(wait)} ({wait / total * 100:.0f}%)."
    return (
        "<section id='time'><h2>Where the time went</h2>"
        f"<div>{lead}</div><div class='spent'>{''.join(bar)}</div>"
        "<table><tr><th>state</th><th>time</th><th>share</th><th>entered</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _errors(model: RunModel) -> str:
    if not model.errors:
        if model.has_events or model.outcome == "completed":
            return ""
        return (
            "<section id='errors'><h2>Errors</h2><p class='notes'>A checkpoint log does not "
            "record errors; render from a RecordingObserver (or run with "
            "<code>cano-dsl run --report</code>) to see them.</p></section>"
        )
    rows = "".join(
        f"<tr data-state='{escape(s)}'><td><b>{escape(s)}</b></td><td>{escape(t or '-')}</td>"
        f"<td><span class='cat'>{escape(c)}</span></td><td class='msg'>{escape(m)}</td></tr>"
        for s, t, c, m in model.errors
    )
    return (
        "<section id='errors' class='errors'><h2>Errors</h2><table>"
        "<tr><th>state</th><th>task</th><th>category</th><th>message</th></tr>"
        f"{rows}</table></section>"
    )


def _compensations(model: RunModel) -> str:
    if not model.compensations and not model.cursors:
        return ""
    parts = ["<section id='compensations' class='comp'>"]
    if model.compensations:
        how = (
            "rolled back in this order (the reverse of completion; inferred from the "
            "compensatable steps that succeeded — observers get no compensation events)"
            if model.compensations_inferred
            else "the compensation stack in the checkpoint log, in the order a rollback "
            "runs it (the reverse of completion)"
        )
        items = "".join(
            f"<li data-state='{escape(s)}'>↩ <b>{escape(t)}</b> (state {escape(s)})"
            + (f" <code>{escape(o)}</code>" if o else "")
            + "</li>"
            for s, t, o in model.compensations
        )
        parts.append(f"<h2>Compensation</h2><p class='notes'>{how}</p><ol>{items}</ol>")
    if model.cursors:
        items = "".join(
            f"<li data-state='{escape(s)}'><b>{escape(s)}</b>: {n} cursor row"
            f"{'s' if n != 1 else ''}, last <code>{escape(c)}</code></li>"
            for s, (n, c) in model.cursors.items()
        )
        parts.append(f"<h2>Step progress</h2><ul>{items}</ul>")
    parts.append("</section>")
    return "".join(parts)


_LEGEND = (
    "<div class='legend'><span><i style='background:#22c55e'></i>attempt succeeded</span>"
    "<span><i style='background:#ef4444'></i>attempt failed</span>"
    "<span><i style='background:repeating-linear-gradient(45deg,#fef3c7 0 3px,#d97706 3px 5px)'>"
    "</i>waiting before a retry</span>"
    "<span><i style='background:#f59e0b'></i>no end recorded</span>"
    "<span><i style='background:#e2e8f0'></i>time in the state outside its task</span></div>"
)

_GRAPH_LEGEND = (
    "<div class='legend'><span><i style='background:#2563eb'></i>transition taken</span>"
    "<span><i style='background:#dbeafe;border:1px solid #1d4ed8'></i>state entered</span>"
    "<span><i style='background:#bbf7d0;border:1px solid #15803d'></i>exit reached</span>"
    "<span><i style='background:#fecaca;border:1px solid #b91c1c'></i>failed here</span>"
    "<span><i style='background:#f8fafc;border:1px solid #cbd5e1'></i>not entered</span>"
    "</div>"
)


def page(model: RunModel, workflow: Any) -> str:
    """The whole HTML document."""
    graph, graph_notes = graph_svg(model, workflow)
    source = (
        "edges read statically from each task's source (as `cano-dsl graph` draws them); "
        "dashed: taken by the run but not found in the source"
        if workflow is not None
        else "only the states and transitions this run took (render with the workflow to "
        "draw all of its states)"
    )
    notes = graph_notes
    notes_html = (
        "<section class='notes'><ul>"
        + "".join(f"<li>{escape(n)}</li>" for n in notes)
        + "</ul></section>"
        if notes
        else ""
    )
    timeline_title = "Timeline" if model.timed else "Order of the logged states"
    legend = _LEGEND if model.timed else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(model.title)}</title><style>{_CSS}</style></head><body><main>"
        f"{_summary(model)}"
        f"<section id='graph-section'><h2>State graph</h2><div class='sub'>{escape(source)}</div>"
        f"<div class='scroll'>{graph}</div>{_GRAPH_LEGEND}</section>"
        f"<section id='timeline-section'><h2>{timeline_title}</h2>"
        + "".join(f"<p class='notes'>{escape(n)}</p>" for n in model.notes)
        + f"<div class='scroll'>{timeline_html(model)}</div>{legend}</section>"
        f"{_errors(model)}{_compensations(model)}{notes_html}"
        f"</main><script>{_JS}</script></body></html>\n"
    )
