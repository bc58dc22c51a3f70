"""What a run did, read from recorded observer events and/or a checkpoint log: the
visits to each state, their attempts, retries and split branches, the errors, the
compensation stack and the outcome. The page is drawn from this model."""

from __future__ import annotations

import enum
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .._errors import StateFailure, category_of
from ..stores import CheckpointRow, RowKind
from ..testing._observer import (
    Cancelled,
    CircuitOpen,
    Resume,
    Retry,
    StateEntered,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
)

__all__ = ["Attempt", "Branch", "RunModel", "Visit", "build_model"]


@attrs.define
class Attempt:
    """One attempt of a task: ``start`` / ``end`` in seconds from the run's start;
    ``wait`` is the retry delay before it (``None`` when the delay is not known)."""

    number: int
    start: float
    end: float | None
    ok: bool | None
    """True succeeded, False failed, None unknown (the run ended while it ran)."""
    wait_start: float | None = None
    wait_known: bool = True


@attrs.define
class Branch:
    """A task inside a visit: the single task of a state, or one split branch."""

    task_id: str
    start: float
    end: float | None = None
    ok: bool | None = None
    error: str = ""
    category: str = ""
    retries: list[float] = attrs.Factory(list)
    circuit_open: bool = False
    attempts: list[Attempt] = attrs.Factory(list)


@attrs.define
class Visit:
    """One entry into a state."""

    state: str
    index: int
    """0-based position in the run's path."""
    start: float | None
    end: float | None = None
    branches: list[Branch] = attrs.Factory(list)
    kind: str = ""
    """The registration kind when the workflow is known (``single``, ``split``...)."""
    exit: bool = False
    status: str = "ok"
    """``ok``, ``failed``, ``cancelled``, ``exit``, ``running`` (no end seen) or
    ``logged`` (a checkpoint row without timing)."""
    rows: list[CheckpointRow] = attrs.Factory(list)

    @property
    def duration(self) -> float | None:
        """Seconds spent in the state, when timed."""
        if self.start is None or self.end is None:
            return None
        return max(self.end - self.start, 0.0)

    @property
    def split(self) -> bool:
        """Whether the visit ran split branches."""
        return self.kind == "split" or len(self.branches) > 1


@attrs.define
class RunModel:
    """Everything the page shows."""

    title: str
    workflow_id: str | None
    timed: bool
    has_events: bool
    has_rows: bool
    visits: list[Visit]
    outcome: str
    """``completed``, ``failed``, ``cancelled`` or ``incomplete`` (a log that ends with
    no exit: the run failed, was interrupted, or is still going)."""
    final_state: str | None
    failed_state: str | None
    error_category: str
    error_message: str
    total: float | None
    errors: list[tuple[str, str, str, str]]
    """``(state, task_id, category, message)`` per failed task, in order."""
    compensations: list[tuple[str, str, str]]
    """``(state, task_id, output)`` in the order they are (or were) rolled back:
    the reverse of completion."""
    compensations_inferred: bool
    cursors: dict[str, tuple[int, str]]
    """Per state: how many step/stream cursor rows, and the last cursor."""
    notes: list[str]
    resumed_after: int | None = None
    states_order: list[str] = attrs.Factory(list)
    exits: set[str] = attrs.Factory(set)
    initial: str | None = None

    @property
    def path(self) -> list[str]:
        """The states entered, in order."""
        return [v.state for v in self.visits]

    def transitions(self) -> Counter[tuple[str, str]]:
        """How many times each ``(source, target)`` transition was taken."""
        path = self.path
        return Counter(itertools.pairwise(path))

    def time_by_state(self) -> list[tuple[str, float, int]]:
        """``(state, seconds, visits)`` by descending time (timed runs only)."""
        spent: dict[str, float] = {}
        count: Counter[str] = Counter()
        for v in self.visits:
            d = v.duration
            if d is None or v.status == "exit":
                continue
            spent[v.state] = spent.get(v.state, 0.0) + d
            count[v.state] += 1
        return sorted(((s, t, count[s]) for s, t in spent.items()), key=lambda x: -x[1])

    def retry_wait(self) -> float:
        """Seconds spent waiting between attempts (known delays only)."""
        total = 0.0
        for v in self.visits:
            for b in v.branches:
                for a in b.attempts:
                    if a.wait_start is not None and a.wait_known:
                        total += a.start - a.wait_start
        return total


# -- from the workflow ----------------------------------------------------------------


def _entries(workflow: Any) -> dict[str, Any]:
    if workflow is None:
        return {}
    return {s.name: e for s, e in getattr(workflow, "_entries", {}).items()}


def _nominal_delay(config: Any, failed: int) -> tuple[float | None, bool]:
    """The retry delay after ``failed`` failed attempts, and whether it is exact."""
    mode = getattr(config, "retry_mode", None)
    if mode is None:
        return None, False
    jitter = float(getattr(mode, "jitter", 0.0) or 0.0)
    try:
        nominal = attrs.evolve(mode, jitter=0.0) if jitter else mode
        delay = nominal.delay_for_attempt(failed - 1)
    except Exception:
        return None, False
    return delay, jitter == 0.0


def _config_for(entry: Any, task_id: str) -> Any:
    if entry is None:
        return None
    if entry.kind == "split":
        _, _, rest = task_id.rpartition("[")
        try:
            index = int(rest.rstrip("]"))
            return entry.configs[index]
        except (ValueError, IndexError):
            return None
    return entry.config


# -- from events ------------------------------------------------------------------------


def _attempts(branch: Branch, config: Any, run_end: float) -> None:
    """Split a task's span into attempts at its retry marks."""
    marks = branch.retries
    attempts: list[Attempt] = []
    start = branch.start
    wait_start: float | None = None
    known = True
    for n, mark in enumerate(marks, start=1):
        attempts.append(Attempt(n, start, mark, False, wait_start, known))
        delay, exact = _nominal_delay(config, n) if config is not None else (None, False)
        nxt = marks[n] if n < len(marks) else (branch.end if branch.end is not None else run_end)
        if delay is None:
            wait_start, known, start = mark, False, mark
        else:
            wait_start, known, start = mark, exact, min(mark + delay, nxt)
    end = branch.end
    attempts.append(Attempt(len(marks) + 1, start, end, branch.ok, wait_start, known))
    branch.attempts = attempts


def _from_events(
    events: Sequence[Any], entries: dict[str, Any]
) -> tuple[list[Visit], dict[str, Any]]:
    timed = [e for e in events if hasattr(e, "at")]
    t0 = min((e.at for e in timed), default=0.0)
    visits: list[Visit] = []
    info: dict[str, Any] = {"cancelled": None, "resumed": None, "end": 0.0}
    current: Visit | None = None
    open_tasks: dict[str, Branch] = {}
    for e in events:
        at = (e.at - t0) if hasattr(e, "at") else 0.0
        info["end"] = max(info["end"], at)
        if isinstance(e, StateEntered):
            if current is not None:
                current.end = at
            entry = entries.get(e.state)
            current = Visit(e.state, len(visits), at, kind=entry.kind if entry else "")
            visits.append(current)
            open_tasks = {}
            continue
        if isinstance(e, Resume):
            info["resumed"] = e.last_sequence
            continue
        if isinstance(e, Cancelled):
            info["cancelled"] = e.state
            continue
        if current is None:
            continue
        task_id = getattr(e, "task_id", None)
        if task_id is None:
            continue
        if isinstance(e, TaskStarted):
            branch = Branch(task_id, at)
            current.branches.append(branch)
            open_tasks[task_id] = branch
            continue
        branch_or_none = open_tasks.get(task_id)
        if branch_or_none is None:
            branch_or_none = Branch(task_id, at)
            current.branches.append(branch_or_none)
            open_tasks[task_id] = branch_or_none
        branch = branch_or_none
        if isinstance(e, Retry):
            branch.retries.append(at)
        elif isinstance(e, CircuitOpen):
            branch.circuit_open = True
        elif isinstance(e, TaskSucceeded):
            branch.end, branch.ok = at, True
        elif isinstance(e, TaskFailed):
            branch.end, branch.ok = at, False
            branch.error, branch.category = e.error, e.category
    return visits, info


# -- from a checkpoint log ----------------------------------------------------------------


def _blob_text(row: CheckpointRow, limit: int = 200) -> str:
    if row.output_blob is None:
        return ""
    text = row.output_blob.decode("utf-8", "replace")
    try:
        text = json.dumps(json.loads(text), separators=(", ", ": "))
    except ValueError:
        pass
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_rows(rows: Sequence[CheckpointRow], entries: dict[str, Any]) -> list[Visit]:
    visits: list[Visit] = []
    for row in sorted(rows, key=lambda r: r.sequence):
        if row.kind == RowKind.STATE_ENTRY or not visits or visits[-1].state != row.state:
            entry = entries.get(row.state)
            visit = Visit(row.state, len(visits), None, kind=entry.kind if entry else "")
            visit.status = "logged"
            visits.append(visit)
        visits[-1].rows.append(row)
    return visits


# -- the model ------------------------------------------------------------------------------


def _label(value: Any) -> str | None:
    if value is None:
        return None
    return value.name if isinstance(value, enum.Enum) else str(value)


def build_model(
    events: Iterable[Any] | None,
    rows: Sequence[CheckpointRow] | None,
    workflow: Any,
    workflow_id: str | None,
    error: BaseException | None,
    final_state: Any,
    title: str | None,
) -> RunModel:
    """Put events, rows and the workflow's shape together."""
    entries = _entries(workflow)
    exits = {s.name for s in workflow.exit_states} if workflow is not None else set()
    event_list = list(events) if events is not None else []
    row_list = list(rows) if rows is not None else []
    notes: list[str] = []
    errors: list[tuple[str, str, str, str]] = []
    info: dict[str, Any] = {"cancelled": None, "resumed": None, "end": 0.0}
    if event_list:
        visits, info = _from_events(event_list, entries)
        timed = True
    else:
        visits = _from_rows(row_list, entries)
        timed = False
        if row_list:
            notes.append(
                "Checkpoint rows carry no timestamps: this timeline shows the order of "
                "the logged states, not their durations. Routers write no row, so they do "
                "not appear. Record a run with a RecordingObserver (or `cano-dsl run "
                "--report FILE`) for timings."
            )
    run_end = float(info["end"])
    final = _label(final_state)
    failed_state: str | None = None
    error_category = ""
    error_message = ""
    for v in visits:
        entry = entries.get(v.state)
        v.exit = v.state in exits or (entry is None and not v.branches and timed)
        for b in v.branches:
            _attempts(b, _config_for(entry, b.task_id), run_end)
            if b.ok is False:
                errors.append((v.state, b.task_id, b.category or "task_execution", b.error))
    if timed and visits:
        last = visits[-1]
        if last.end is None:
            last.end = run_end
        for v in visits:
            failed = [b for b in v.branches if b.ok is False]
            if failed:
                v.status = "failed"
            elif v.exit and v is last and not v.branches:
                v.status = "exit"
            elif any(b.ok is None for b in v.branches):
                v.status = "running"
    cancelled = info["cancelled"]
    outcome = "incomplete"
    if error is not None:
        outcome = "cancelled" if category_of(error) == "cancelled" else "failed"
        error_category = category_of(error)
        error_message = str(error.error if isinstance(error, StateFailure) else error)
    elif cancelled is not None:
        outcome = "cancelled"
    elif timed and visits and visits[-1].status == "failed":
        outcome = "failed"
    elif final is not None or (timed and visits and visits[-1].status == "exit"):
        outcome = "completed"
        final = final or visits[-1].state
    if outcome in ("failed", "cancelled"):
        if cancelled is not None:
            failed_state = cancelled
            for v in reversed(visits):
                if v.state == cancelled:
                    v.status = "cancelled" if v.status != "failed" else v.status
                    break
        elif isinstance(error, StateFailure):
            failed_state = _label(error.state)
        elif visits:
            failed_state = visits[-1].state
            if visits[-1].status not in ("failed",):
                visits[-1].status = "failed"
        if not error_message and errors:
            _, _, error_category, error_message = errors[-1]
        if outcome == "cancelled" and not error_category:
            error_category = "cancelled"
    if outcome == "incomplete" and visits and not timed:
        failed_state = visits[-1].state
    if outcome == "failed" and not errors and failed_state and error_message:
        errors.append((failed_state, "", error_category, error_message))
    # compensation: the logged stack, else (a failed run) the compensatable steps done
    compensations: list[tuple[str, str, str]] = []
    inferred = False
    for row in reversed(sorted(row_list, key=lambda r: r.sequence)):
        if row.kind == RowKind.COMPENSATION_COMPLETION:
            compensations.append((row.state, row.task_id, _blob_text(row)))
    if not compensations and timed and outcome in ("failed", "cancelled"):
        for v in reversed(visits):
            if v.kind == "compensatable" and any(b.ok for b in v.branches):
                name = next(b.task_id for b in v.branches if b.ok)
                compensations.append((v.state, name, ""))
                inferred = True
    cursors: dict[str, tuple[int, str]] = {}
    for row in sorted(row_list, key=lambda r: r.sequence):
        if row.kind == RowKind.STEP_CURSOR:
            count, _ = cursors.get(row.state, (0, ""))
            cursors[row.state] = (count + 1, _blob_text(row))
    if event_list and not any(hasattr(e, "at") for e in event_list):
        notes.append("These events carry no timestamps; durations are not shown.")
        timed = False
    if not event_list and not row_list:
        notes.append("Nothing was recorded for this run.")
    states_order: list[str] = []
    if workflow is not None:
        enum_type = getattr(workflow, "_state_type", None)
        if enum_type is not None:
            states_order = [m.name for m in enum_type]
    initial = visits[0].state if visits else None
    return RunModel(
        title=title or _default_title(workflow, workflow_id),
        workflow_id=workflow_id,
        timed=timed,
        has_events=bool(event_list),
        has_rows=bool(row_list),
        visits=visits,
        outcome=outcome,
        final_state=final,
        failed_state=failed_state,
        error_category=error_category,
        error_message=error_message,
        total=run_end if timed and visits else None,
        errors=errors,
        compensations=compensations,
        compensations_inferred=inferred,
        cursors=cursors,
        notes=notes,
        resumed_after=info["resumed"],
        states_order=states_order,
        exits=exits,
        initial=initial,
    )


def _default_title(workflow: Any, workflow_id: str | None) -> str:
    name = ""
    enum_type = getattr(workflow, "_state_type", None) if workflow is not None else None
    if enum_type is not None:
        name = f"{enum_type.__name__} workflow"
    if workflow_id:
        return f"{name} run {workflow_id}".strip()
    return name or "Workflow run"
