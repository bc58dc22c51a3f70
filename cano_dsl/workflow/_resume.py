"""`Workflow.resume_from`: continue a run from its checkpoint log (REFERENCE §9.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .._cancel import CancellationToken
from .._errors import (
    CheckpointStoreError,
    ConfigurationError,
    WorkflowError,
    WorkflowVersionMismatch,
)
from .._ids import check_workflow_id
from .._observer import notify
from ..stores._claim import claim_run
from ..stores._row import CheckpointRow, RowKind
from ._engine import message_of

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["resume_from"]


async def resume_from(wf: Workflow[Any], workflow_id: str, cancel: CancellationToken | None) -> Any:
    """Resume ``workflow_id``: preflight errors are raw (a run claimed elsewhere is
    `RunClaimedError`, before any resource is set up); the resumed state re-runs."""
    store = wf._store
    if store is None:
        raise ConfigurationError(
            "resume_from requires a checkpoint store (call with_checkpoint_store)"
        )
    workflow_id = check_workflow_id(workflow_id, "resume_from")
    if wf._workflow_id is not None and wf._workflow_id != workflow_id:
        raise ConfigurationError(
            f"resume_from({workflow_id!r}) on a workflow built with_workflow_id"
            f"({wf._workflow_id!r}); resume runs and writes under the id it is given, so "
            "build the workflow without an id or with the same one"
        )
    wf.validate()
    claim = await claim_run(store, workflow_id)
    try:
        return await _resume_claimed(wf, store, workflow_id, cancel)
    finally:
        if claim is not None:
            with anyio.CancelScope(shield=True):
                await claim.release()


async def _resume_claimed(
    wf: Workflow[Any], store: Any, workflow_id: str, cancel: CancellationToken | None
) -> Any:
    res = wf._resources
    await res._setup(wf._teardown_timeout, wf._observers)
    try:
        try:
            rows = list(await store.load_run(workflow_id))
        except Exception as exc:
            raise CheckpointStoreError(
                f"load checkpoint run {workflow_id}: {message_of(exc)}"
            ) from exc
        rows.sort(key=lambda r: r.sequence)
        if not rows:
            raise CheckpointStoreError(f"no checkpoint rows for workflow id {workflow_id}")
        last: CheckpointRow = rows[-1]
        if last.workflow_version != wf._version:
            raise WorkflowVersionMismatch(last.workflow_version, wf._version)
        by_label = {s.name: s for s in (*wf._entries, *wf._exits)}
        resume_state = by_label.get(last.state)
        if resume_state is None:
            raise WorkflowError(
                f"checkpoint state {last.state} is not a registered or exit state of this workflow"
            )
        run = wf._new_run(workflow_id, cancel, "workflow_resume")
        entries_of_label = [
            r.sequence for r in rows if r.kind == RowKind.STATE_ENTRY and r.state == last.state
        ]
        cutoff = max(entries_of_label) if entries_of_label else last.sequence + 1
        for row in rows:
            if row.kind == RowKind.COMPENSATION_COMPLETION:
                if row.sequence != last.sequence:
                    run.stack.append((row.task_id, row.output_blob or b""))
            elif row.kind == RowKind.STEP_CURSOR:
                if row.output_blob is not None:
                    run.cursors[row.state] = row.output_blob
            elif row.sequence < cutoff:
                state = by_label.get(row.state)
                if state is None:
                    notify(
                        wf._observers,
                        "on_unknown_resume_state",
                        workflow_id,
                        row.sequence,
                        row.state,
                    )
                else:
                    run.path.append(state)
        notify(wf._observers, "on_resume", workflow_id, last.sequence)
        run.sequence = last.sequence + 1
        return await wf._drive_measured(run, resume_state)
    finally:
        with anyio.CancelScope(shield=True):
            await res._teardown(wf._teardown_timeout, wf._observers)
