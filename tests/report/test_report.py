"""cano_dsl.report.render: the page a person opens after a run, from recorded events
(timed) and from a real SQLite checkpoint log (untimed)."""

from __future__ import annotations

import enum
import re
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import (
    CancellationToken,
    CheckpointRow,
    Resources,
    RetryMode,
    TaskConfig,
    Workflow,
    compensatable,
    task,
)
from cano_dsl.report import render, render_run
from cano_dsl.report._model import build_model
from cano_dsl.stores.sqlite import SqliteCheckpointStore
from cano_dsl.testing import (
    RecordingObserver,
    Retry,
    StateEntered,
    TaskFailed,
    TaskStarted,
    TaskSucceeded,
)
from cano_dsl.workflow import JoinConfig, JoinStrategy


class S(enum.Enum):
    FETCH = enum.auto()
    ENRICH = enum.auto()
    STORE = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()
    UNUSED = enum.auto()


@task(config=TaskConfig.minimal(), name="fetch")
async def fetch() -> S:
    await anyio.sleep(0.02)
    return S.ENRICH


@task(config=TaskConfig.minimal(), name="geo")
async def geo() -> None:
    await anyio.sleep(0.02)


@task(config=TaskConfig.minimal(), name="prices")
async def prices() -> None:
    await anyio.sleep(0.01)


def store_task(fail: bool) -> Any:
    @task(config=TaskConfig().with_retry(RetryMode.fixed(2, 0.03)), name="store")
    async def store() -> S:
        await anyio.sleep(0.01)
        if fail:
            raise ConnectionError("database is read-only")
        return S.DONE

    return store


def workflow(fail: bool) -> Workflow[S]:
    return (
        Workflow.bare()
        .register(S.FETCH, fetch)
        .register_split(S.ENRICH, [geo, prices], JoinConfig(JoinStrategy.all(), S.STORE))
        .register(S.STORE, store_task(fail))
        .add_exit_states([S.DONE, S.FAILED])
    )


async def run(wf: Workflow[S]) -> tuple[RecordingObserver, Any, BaseException | None]:
    rec = RecordingObserver()
    try:
        final = await wf.with_observer(rec).orchestrate(S.FETCH)
    except Exception as exc:
        return rec, None, exc
    return rec, final, None


def count(html: str, cls: str) -> int:
    return len(re.findall(f'class="{cls}"', html))


# -- timestamps on recorded events ------------------------------------------------------------


def test_recorded_events_carry_a_monotonic_timestamp_outside_equality() -> None:
    early = StateEntered("A", at=1.0)
    assert early == StateEntered("A", at=2.0) == StateEntered("A")
    assert hash(early) == hash(StateEntered("A", at=3.0))
    assert repr(early) == "StateEntered(state='A')"
    assert TaskFailed("t", "boom", "timeout") == TaskFailed("t", "boom", "timeout", at=9.0)
    rec = RecordingObserver()
    before = time.monotonic()
    rec.on_state_enter("A")
    rec.on_retry("t", 1)
    after = time.monotonic()
    first, second = rec.events
    assert before <= first.at <= second.at <= after
    assert rec.events == [StateEntered("A"), Retry("t", 1)]


# -- from events --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_failed_run_shows_where_it_failed_its_attempts_and_waits() -> None:
    wf = workflow(fail=True)
    rec, _, error = await run(wf)
    assert error is not None
    html = render(rec, workflow=wf, error=error, workflow_id="order-1")
    assert "Failed in state STORE" in html
    assert "<span class='cat'>retry_exhausted</span>" in html
    assert "database is read-only" in html
    assert count(html, "seg failed") == 3  # the three attempts of STORE
    assert count(html, "seg wait") == 2  # the two waits between them
    assert "Waiting between retries:" in html
    assert "✘ failed here" in html
    assert 'class="node failed" data-state="STORE"' in html


@pytest.mark.anyio
async def test_a_completed_run_shows_its_exit_state_and_split_branches() -> None:
    wf = workflow(fail=False)
    rec, final, error = await run(wf)
    assert error is None
    html = render(rec, workflow=wf, final_state=final)
    assert "Completed in exit state DONE" in html
    assert ">↳ geo[0]</text>" in html and ">↳ prices[1]</text>" in html
    assert count(html, "seg ok") == 4  # FETCH, the two branches, STORE
    assert count(html, "seg failed") == 0
    # the path FETCH -> ENRICH -> STORE -> DONE: three transitions taken
    assert count(html, "edge taken") + count(html, "edge taken join") == 3
    # states the run never entered are drawn, unvisited
    assert 'class="node unvisited" data-state="FAILED"' in html
    assert 'class="node final" data-state="DONE"' in html


@pytest.mark.anyio
async def test_the_outcome_is_read_from_events_alone() -> None:
    wf = workflow(fail=True)
    rec, _, _ = await run(wf)
    html = render(rec.events)  # no workflow, no error: still the failure, from TaskFailed
    assert "Failed in state STORE" in html
    assert "only the states and transitions this run took" in html
    assert 'data-state="UNUSED"' not in html


@pytest.mark.anyio
async def test_a_cancelled_run_says_where() -> None:
    token = CancellationToken()

    @task(config=TaskConfig.minimal(), name="slow")
    async def slow() -> S:
        token.cancel()
        await anyio.sleep(5)
        return S.DONE

    wf = Workflow.bare().register(S.FETCH, slow).add_exit_state(S.DONE)
    rec = RecordingObserver()
    with pytest.raises(Exception) as info:
        await wf.with_observer(rec).orchestrate(S.FETCH, token)
    html = render(rec, workflow=wf, error=info.value)
    assert "Cancelled in state FETCH" in html


Trip = enum.Enum("Trip", "FLIGHT HOTEL CAR DONE")


@compensatable(state=Trip, config=TaskConfig.minimal(), name="flight")
class Flight:
    async def run(self, res: Resources) -> tuple[Any, dict[str, str]]:
        return Trip.HOTEL, {"booking": "F-1"}

    async def compensate(self, res: Resources, output: dict[str, str]) -> None:
        return None


@compensatable(state=Trip, config=TaskConfig.minimal(), name="hotel")
class Hotel:
    async def run(self, res: Resources) -> tuple[Any, dict[str, str]]:
        return Trip.CAR, {"booking": "H-2"}

    async def compensate(self, res: Resources, output: dict[str, str]) -> None:
        return None


@task(config=TaskConfig.minimal(), name="car")
async def car() -> Any:
    raise RuntimeError("no cars left")


@pytest.mark.anyio
async def test_a_failed_saga_lists_its_rollback_in_reverse() -> None:
    wf = (
        Workflow.bare()
        .register_with_compensation(Trip.FLIGHT, Flight())
        .register_with_compensation(Trip.HOTEL, Hotel())
        .register(Trip.CAR, car)
        .add_exit_state(Trip.DONE)
    )
    rec = RecordingObserver()
    with pytest.raises(Exception) as info:
        await wf.with_observer(rec).orchestrate(Trip.FLIGHT)
    html = render(rec, workflow=wf, error=info.value)
    section = html[html.index("id='compensations'") :]
    assert section.index("<b>hotel</b>") < section.index("<b>flight</b>")
    assert "inferred from the compensatable steps that succeeded" in section


# -- from a checkpoint log ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_real_sqlite_log_renders_in_order_and_says_it_has_no_timing(
    tmp_path: Path,
) -> None:
    store = SqliteCheckpointStore(str(tmp_path / "runs.db"))
    rows = [
        CheckpointRow(0, "FLIGHT", "flight"),
        CheckpointRow(1, "FLIGHT", "flight").with_output(b'{"booking": "F-1"}'),
        CheckpointRow(2, "HOTEL", "hotel"),
        CheckpointRow(3, "HOTEL", "hotel").with_output(b'{"booking": "H-2"}'),
        CheckpointRow(4, "CAR", "car"),
        CheckpointRow(5, "CAR", "car").with_cursor(b'{"step": 3}'),
    ]
    try:
        for row in rows:
            await store.append("trip-7", row)
        html = await render_run(store, "trip-7")
    finally:
        await store.aclose()
    assert "Not finished: the log stops in state CAR" in html
    assert "Checkpoint rows carry no timestamps" in html
    steps = re.findall(r"<li class='step[^']*' data-state='(\w+)'>", html)
    assert steps == ["FLIGHT", "HOTEL", "CAR"]
    section = html[html.index("id='compensations'") :]
    assert section.index("H-2") < section.index("F-1")  # rolled back in reverse
    assert "1 cursor row, last <code>{&quot;step&quot;: 3}</code>" in section
    assert "A checkpoint log does not record errors" in html


def test_an_empty_render_still_makes_a_page() -> None:
    html = render()
    assert html.startswith("<!DOCTYPE html>")
    assert "Nothing was recorded for this run." in html


def test_the_page_is_self_contained() -> None:
    html = render([StateEntered("A", at=0.0), StateEntered("B", at=1.0)])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html


# -- any run: the model adds up ----------------------------------------------------------------

VISIT = st.tuples(
    st.sampled_from(["A", "B", "C"]),  # the state
    st.integers(0, 3),  # retries
    st.booleans(),  # whether its task failed for good
    st.lists(st.floats(0.001, 2.0), min_size=5, max_size=5),  # gaps between events
)


@settings(max_examples=60, deadline=None)
@given(st.lists(VISIT, min_size=1, max_size=6))
def test_for_any_run_the_time_and_the_attempts_add_up(run: list[Any]) -> None:
    # a run stops at its first failure; it ends in exit state Z when nothing failed
    visits = []
    for visit in run:
        visits.append(visit)
        if visit[2]:
            break
    now = 0.0
    events: list[Any] = []
    for state, retries, failed, gaps in visits:
        events.append(StateEntered(state, at=now))
        now += gaps[0]
        events.append(TaskStarted(state.lower(), at=now))
        for r in range(retries):
            now += gaps[1 + r % 4]
            events.append(Retry(state.lower(), r + 1, at=now))
        now += gaps[4]
        if failed:
            events.append(TaskFailed(state.lower(), "boom", "task_execution", at=now))
        else:
            events.append(TaskSucceeded(state.lower(), at=now))
    failed_run = visits[-1][2]
    if not failed_run:
        events.append(StateEntered("Z", at=now))
    model = build_model(events, None, None, None, None, None, None)
    assert model.total == pytest.approx(now)
    assert sum(t for _, t, _ in model.time_by_state()) == pytest.approx(now)
    assert model.outcome == ("failed" if failed_run else "completed")
    assert model.failed_state == (visits[-1][0] if failed_run else None)
    assert sum(model.transitions().values()) == len(model.path) - 1
    html = render(events)
    retries = sum(v[1] for v in visits)
    assert count(html, "seg failed") == retries + (1 if failed_run else 0)
    assert count(html, "seg ok") == len(visits) - (1 if failed_run else 0)
