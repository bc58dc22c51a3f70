"""The 5-field crontab form checked against an independent evaluator, `cronsim`.

`cronsim` is a test-only dependency (the ``test`` extra). Only the 5-field form is
compared: it is the one both implement with crontab's rules (weekdays 0-7 with 0 and
7 = Sunday; two restricted day fields combine with OR, a day field starting with
``*`` makes it an AND). The 6/7-field seconds-first form follows the ``cron`` crate
instead (1 = Sunday, AND always), which `cronsim` does not implement.

One known `cronsim` quirk is kept out of the generated expressions: it reads a
stepped range of a single value, ``A-A/S``, as ``A/S`` (from A to the field's
maximum), where crontab (and this port) keep a range's step inside the range.
`test_cron.py` pins the port's reading.
"""

from __future__ import annotations

import datetime

import pytest
from cronsim import CronSim, CronSimError
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import ConfigurationError
from cano_dsl.scheduler import CronSchedule

UTC = datetime.timezone.utc
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
FIRINGS = 6


@st.composite
def value(draw: st.DrawFn, low: int, high: int, names: list[str] | None) -> tuple[str, int]:
    v = draw(st.integers(low, high))
    if names is not None and v - low < len(names) and draw(st.booleans()):
        name = names[v - low]
        return draw(st.sampled_from([name, name.lower(), name.title()])), v
    return str(v), v


@st.composite
def item(draw: st.DrawFn, low: int, high: int, names: list[str] | None) -> str:
    kind = draw(st.sampled_from(["star", "one", "range", "star_step", "range_step", "from_step"]))
    step = draw(st.integers(1, high))
    if kind == "star":
        return "*"
    if kind == "star_step":
        return f"*/{step}"
    a, av = draw(value(low, high, names))
    if kind == "one":
        return a
    if kind == "from_step":
        return f"{a}/{step}"
    b, bv = draw(value(low, high, names))
    if av > bv:
        a, b = b, a
    if kind == "range_step" and av != bv:  # `A-A/S`: see the module docstring
        return f"{a}-{b}/{step}"
    return f"{a}-{b}"


def field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    return st.lists(item(low, high, names), min_size=1, max_size=3).map(",".join)


@st.composite
def crontab(draw: st.DrawFn) -> str:
    # the day fields are drawn as a bare `*`, a `*`-led field (AND) or a restricted one
    # (OR when both are), so both day-field rules come up often
    def day_field(low: int, high: int, names: list[str] | None) -> st.SearchStrategy[str]:
        return st.one_of(
            st.just("*"), st.integers(1, high).map(lambda s: f"*/{s}"), field(low, high, names)
        )

    return " ".join(
        [
            draw(field(0, 59)),
            draw(st.one_of(st.just("*"), field(0, 23))),
            draw(day_field(1, 31, None)),
            draw(st.one_of(st.just("*"), field(1, 12, MONTHS))),
            draw(day_field(0, 7, DAYS)),
        ]
    )


starts = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2060, 12, 31)
).map(lambda t: t.replace(microsecond=0, tzinfo=UTC))


def oracle_firings(expr: str, start: datetime.datetime) -> list[datetime.datetime] | None:
    try:
        it = CronSim(expr, start)
    except CronSimError:
        return None
    return [next(it) for _ in range(FIRINGS)]


def port_firings(expr: str, start: datetime.datetime) -> list[datetime.datetime] | None:
    try:
        schedule = CronSchedule.parse(expr)
    except ConfigurationError as exc:
        assert "can never fire" in str(exc), str(exc)
        return None
    return list(_take(schedule.upcoming(start), FIRINGS))


def _take(it: object, n: int) -> list[datetime.datetime]:
    out: list[datetime.datetime] = []
    for moment in it:  # type: ignore[attr-defined]
        out.append(moment)
        if len(out) == n:
            break
    return out


@settings(max_examples=300, deadline=None)
@given(expr=crontab(), start=starts)
def test_crontab_firings_agree_with_cronsim(expr: str, start: datetime.datetime) -> None:
    assert port_firings(expr, start) == oracle_firings(expr, start), expr


@pytest.mark.parametrize(
    "expr",
    [
        "0 12 * * 7/5",  # Sunday (7) only: never fired before the fix
        "0 12 * * 5/2",  # Friday and Sunday
        "0 12 * * 1/1",  # every day
        "0 12 * * FRI/2",
        "0 12 13 * 6/1",  # both day fields restricted: OR
        "0 12 */2 * 6/1",  # a `*`-led day field: AND
        "30 4 1,15 jan-Mar Mon-fri",
        "0 0 29 2 *",
        "0 0 30 2 MON",
    ],
)
def test_known_cases_agree_with_cronsim(expr: str) -> None:
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    assert port_firings(expr, start) == oracle_firings(expr, start)


@pytest.mark.parametrize("expr", ["* * 30 2 *", "5-7 */7 31 4-6/2,4/10 *", "0 0 31 4,6,9,11 *"])
def test_never_firing_expressions_are_refused_by_both(expr: str) -> None:
    start = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    assert oracle_firings(expr, start) is None
    assert port_firings(expr, start) is None
