"""Properties of the saga examples, checked with `cano_dsl.testing.strategies`.

Whatever fails, the card is charged once and refunded at most once. Whenever the
process dies as well, a failed order is never left charged and there are never more
refunds than charges; the charge itself may run again after a death (the engine
re-runs the state it resumes: at-least-once, so a real charge needs an idempotency
key, and a real refund must be idempotent).

    python examples/property_saga.py

Each property draws plans (failing attempts, process deaths, slow steps) for the
example's own workflow and runs it on asyncio and trio; a counterexample is printed as
the shortest plan that breaks the property. The examples do not call `effect`: the
runner's own effects ``run:<step>`` / ``compensate:<step>`` mark each compensatable
step's forward run and rollback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given

sys.path.insert(0, str(Path(__file__).resolve().parent))

import saga_payment
import saga_recovery

from cano_dsl.testing import InMemoryCheckpointStore
from cano_dsl.testing.strategies import (
    History,
    Plan,
    assert_compensation_lifo,
    assert_effects_once,
    assert_prefix_never_rerun,
    assert_retries_within_policy,
    assert_terminates,
    plans,
    run_plan_sync,
    workflow_settings,
)

BACKENDS = ("asyncio", "trio")


def never_left_charged(history: History, step: str) -> None:
    """A run that did not reach its exit rolled back every forward run of ``step``
    that the store still held."""
    ran = history.effect_count(f"run:{step}")
    undone = history.effect_count(f"compensate:{step}")
    if not history.completed and ran and not undone:
        raise AssertionError(f"{step} ran {ran} time(s) but was never undone\n{history.describe()}")


def undone_at_most_once_per_run(history: History, step: str) -> None:
    """``step`` was undone no more often than its forward run ran."""
    ran = history.effect_count(f"run:{step}")
    undone = history.effect_count(f"compensate:{step}")
    if undone > ran:
        raise AssertionError(f"{step} ran {ran} time(s), undone {undone}\n{history.describe()}")


@workflow_settings()
@given(plan=plans(saga_payment.workflow(True)))
def payment_charges_once_and_refunds_at_most_once(plan: Plan) -> None:
    """saga_payment under any faults, with the carrier up and down."""
    for carrier_up in (True, False):
        for backend in BACKENDS:
            wf = saga_payment.workflow(carrier_up)
            history = run_plan_sync(wf, saga_payment.Pay.RESERVE, plan, backend=backend)
            assert_effects_once(history, "run:charge", required=carrier_up and history.completed)
            assert_effects_once(history, "compensate:charge", required=False)
            never_left_charged(history, "charge")
            assert_compensation_lifo(history)
            assert_retries_within_policy(history)
            assert_terminates(history)


@workflow_settings()
@given(plan=plans(saga_payment.workflow(False), crashes=2, crash_where=("row", "attempt")))
def payment_survives_process_deaths(plan: Plan) -> None:
    """saga_payment (carrier down) when the process dies at any checkpoint or inside
    any attempt, possibly again during the resume. A death after the charge ran but
    before the next state's row re-runs the charge on resume (the documented
    at-least-once window); there are never more refunds than charges, and the order is
    never left charged."""
    for backend in BACKENDS:
        wf = saga_payment.workflow(False)
        history = run_plan_sync(wf, saga_payment.Pay.RESERVE, plan, backend=backend)
        for step in ("reserve", "charge"):
            undone_at_most_once_per_run(history, step)
            never_left_charged(history, step)
        assert_prefix_never_rerun(history)
        assert_compensation_lifo(history)
        assert_terminates(history)


@workflow_settings()
@given(
    plan=plans(
        saga_recovery.workflow(InMemoryCheckpointStore()),
        crashes=2,
        crash_where=("row", "attempt"),
    )
)
def trip_never_leaves_a_booking_standing(plan: Plan) -> None:
    """saga_recovery (the courier always fails): whatever else fails and wherever the
    process dies, no booking is cancelled more often than it was made, and none is
    left standing."""
    for backend in BACKENDS:
        wf = saga_recovery.workflow(InMemoryCheckpointStore())
        history = run_plan_sync(wf, saga_recovery.Trip.FLIGHT, plan, backend=backend)
        assert not history.completed
        for step in ("flight", "hotel"):
            undone_at_most_once_per_run(history, step)
            never_left_charged(history, step)
        assert_prefix_never_rerun(history)
        assert_compensation_lifo(history)
        assert_terminates(history)


PROPERTIES = (
    payment_charges_once_and_refunds_at_most_once,
    payment_survives_process_deaths,
    trip_never_leaves_a_booking_standing,
)

if __name__ == "__main__":
    for prop in PROPERTIES:
        prop()
        print(f"ok  {prop.__name__}")
