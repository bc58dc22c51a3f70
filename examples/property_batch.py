"""Properties of the batch example, checked with `cano_dsl.testing.strategies`:
whatever order the items complete in, and whichever items fail, every batch keeps
input order, so the page sizes ``finish`` records belong to the right URLs.

    python examples/property_batch.py

Hypothesis draws a virtual delay for every item (the completion order) and failing
attempts of items and states; each plan runs on asyncio and trio.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given

sys.path.insert(0, str(Path(__file__).resolve().parent))

import batch_task

from cano_dsl import MemoryStore, Resources, Workflow
from cano_dsl.testing.strategies import (
    Plan,
    assert_batch_order,
    assert_terminates,
    plans,
    run_plan_sync,
    workflow_settings,
)

BACKENDS = ("asyncio", "trio")


def workflow(store: MemoryStore) -> Workflow[batch_task.Step]:
    """The example's workflow (as its ``main`` builds it), with a store we can read."""
    return (
        Workflow(Resources().insert("store", store))
        .register(batch_task.Step.PARSE, batch_task.ParseUrls())
        .register(batch_task.Step.FETCH, batch_task.FetchPages())
        .register(batch_task.Step.SUMMARISE, batch_task.Summarise())
        .add_exit_states([batch_task.Step.DONE, batch_task.Step.DEGRADED])
    )


@workflow_settings()
@given(plan=plans(workflow(MemoryStore()), fault_kinds=("error", "fatal"), max_faults=2))
def batches_keep_input_order(plan: Plan) -> None:
    """Every batch's outputs line up with its items, and each recorded page size is
    that URL's own size, for every drawn completion order."""
    for backend in BACKENDS:
        store = MemoryStore()
        history = run_plan_sync(workflow(store), batch_task.Step.PARSE, plan, backend=backend)
        assert_batch_order(history)
        assert_terminates(history)
        if history.completed:
            for url, size in store.get("sizes").items():
                assert size == len(url) * 100, (url, size, history.describe())


PROPERTIES = (batches_keep_input_order,)

if __name__ == "__main__":
    for prop in PROPERTIES:
        prop()
        print(f"ok  {prop.__name__}")
