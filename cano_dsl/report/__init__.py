"""A run report: one self-contained HTML file (no server, no network; the CSS, the SVG
and a few lines of JavaScript are inline) showing what a run did.

At the top, the outcome (exit state, or the state it failed in with the error's
category and message), the total time and where the time went; then the state graph
with the path taken drawn over it, a timeline of states, attempts, retry waits and
split branches side by side, the errors, and the compensation stack.

Two sources, alone or together:

- a `RecordingObserver` (or its events): every event carries a monotonic timestamp,
  so the timeline has durations;
- a checkpoint store's log for a run id (`render_run`): states entered, compensation
  rows and step cursors, in order; rows carry no timestamps, and the page says so.

Pass the `Workflow` to draw all of its states and statically inferred edges (as
``cano-dsl graph`` does) and to separate retry delays from attempts. The command line
writes the same page: ``cano-dsl runs report ID --store URL -o run.html`` and
``cano-dsl run ... --report run.html``. See docs/report.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..stores import CheckpointRow
from ..testing._observer import RecordingObserver
from ._model import build_model
from ._page import page

__all__ = ["render", "render_run"]


def render(
    events: RecordingObserver | Iterable[Any] | None = None,
    *,
    rows: Sequence[CheckpointRow] | None = None,
    workflow: Any = None,
    workflow_id: str | None = None,
    error: BaseException | None = None,
    final_state: Any = None,
    title: str | None = None,
) -> str:
    """The report as one HTML document (a ``str``; write it to a ``.html`` file).

    ``events`` is a `RecordingObserver` or its ``events``; ``rows`` a run's checkpoint
    rows (``await store.load_run(workflow_id)``). ``workflow`` (the `Workflow` that
    ran) adds the states the run did not enter and the edges read from the tasks'
    source. ``error`` is the exception the run raised, ``final_state`` the exit state
    it returned: both make the outcome exact (without them it is read from the events).
    """
    if isinstance(events, RecordingObserver):
        events = list(events.events)
    model = build_model(events, rows, workflow, workflow_id, error, final_state, title)
    return page(model, workflow)


async def render_run(
    store: Any,
    workflow_id: str,
    *,
    workflow: Any = None,
    events: RecordingObserver | Iterable[Any] | None = None,
    title: str | None = None,
) -> str:
    """`render` from ``store``'s checkpoint log for ``workflow_id`` (and, when given,
    the events recorded for the same run)."""
    rows = await store.load_run(workflow_id)
    return render(events, rows=rows, workflow=workflow, workflow_id=workflow_id, title=title)
