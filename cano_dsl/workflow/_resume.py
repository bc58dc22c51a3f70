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
from ._data import RunDataError, RunDataMismatch, _copy_tree, apply_ops, decode_patch
from ._engine import message_of
from ._entry import Run

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["resume_from"]


def _restore_data(wf: Workflow[Any], run: Run, rows: list[CheckpointRow]) -> list[Any]:
    """Fold the rows' run data patches: the data as of the resume point (a trailing
    completion row's change is left out: its state re-runs), and the data as of each
    earlier completion row (what its compensator sees). Returns those trees, in order."""
    codec = wf._codec
    last = rows[-1]
    tree: Any = None
    resume_tree: Any = None
    fp: str | None = None
    completions: list[Any] = []
    for row in rows:
        blob = row.data_patch
        if row is last and row.kind == RowKind.COMPENSATION_COMPLETION:
            resume_tree = _copy_tree(tree)
        if blob is not None:
            fp, ops = decode_patch(blob, f"workflow_id={run.workflow_id} sequence={row.sequence}")
            try:
                tree = apply_ops(tree, ops)
            except (KeyError, IndexError, TypeError, AttributeError) as exc:
                raise RunDataError(
                    f"run data patch at workflow_id={run.workflow_id} sequence={row.sequence} "
                    f"does not apply to the rows before it: {exc!r}"
                ) from exc
        if row.kind == RowKind.COMPENSATION_COMPLETION and row is not last:
            completions.append(_copy_tree(tree))
    if last.kind != RowKind.COMPENSATION_COMPLETION:
        resume_tree = tree
    if codec is None:
        if fp is not None:
            raise RunDataMismatch(
                last.workflow_version,
                wf._version,
                f"the checkpoint log of {run.workflow_id} carries run data, but this workflow "
                "declares none (with_run_data); bump with_workflow_version when the run data "
                "type changes",
            )
        return completions
    if fp is not None and fp != codec.fingerprint:
        raise RunDataMismatch(
            last.workflow_version,
            wf._version,
            f"the checkpoint log of {run.workflow_id} was written for another run data type "
            f"(fingerprint {fp}) than this workflow's {codec.name} ({codec.fingerprint}); "
            "bump with_workflow_version when the run data type changes",
        )
    run.codec = codec
    if tree is None or resume_tree is None:
        # a log written without run data (or whose data starts only with the completion
        # row being re-run): start from the default value
        run.tree = codec.to_tree(codec.default("resume_from"), "(initial data)")
        run.logged = None
        completions = [run.tree if t is None else t for t in completions]
    else:
        run.tree = resume_tree
        run.logged = tree
    try:
        run.data = codec.from_tree(run.tree)
    except Exception as exc:
        raise RunDataMismatch(
            last.workflow_version,
            wf._version,
            f"the run data in the checkpoint log of {run.workflow_id} does not decode as "
            f"{codec.name}: {exc}; bump with_workflow_version when the run data type changes",
        ) from exc
    return completions


async def resume_from(
    wf: Workflow[Any], workflow_id: str, cancel: CancellationToken | None
) -> tuple[Any, Run]:
    """Resume ``workflow_id``: preflight errors are raw (a run claimed elsewhere is
    `RunClaimedError`, before any resource is set up); the resumed state re-runs.
    Returns the exit state and the run (its final run data)."""
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
) -> tuple[Any, Run]:
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
        completion_trees = _restore_data(wf, run, rows)
        entries_of_label = [
            r.sequence for r in rows if r.kind == RowKind.STATE_ENTRY and r.state == last.state
        ]
        cutoff = max(entries_of_label) if entries_of_label else last.sequence + 1
        for row in rows:
            if row.kind == RowKind.COMPENSATION_COMPLETION:
                if row.sequence != last.sequence:
                    if run.codec is None:
                        run.stack.append((row.task_id, row.output_blob or b""))
                    else:
                        tree = completion_trees[len(run.stack)]
                        run.stack.append((row.task_id, row.output_blob or b"", tree))
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
        return await wf._drive_measured(run, resume_state), run
    finally:
        with anyio.CancelScope(shield=True):
            await res._teardown(wf._teardown_timeout, wf._observers)
