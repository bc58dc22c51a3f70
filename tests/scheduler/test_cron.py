"""The cron parser and next-firing search (evaluated in UTC)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import ConfigurationError
from cano_dsl.scheduler import CronSchedule

UTC = datetime.timezone.utc


def at(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def nxt(expr: str, moment: datetime.datetime) -> datetime.datetime | None:
    return CronSchedule.parse(expr).next_after(moment)


# -- examples ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        ("0 0 9 * * *", at(2024, 1, 1, 8, 0), at(2024, 1, 1, 9, 0)),
        ("0 0 9 * * *", at(2024, 1, 1, 9, 0), at(2024, 1, 2, 9, 0)),  # strictly after
        ("0 0 9 * * MON", at(2024, 1, 2), at(2024, 1, 8, 9)),  # 2024-01-08 is a Monday
        ("*/15 * * * * *", at(2024, 1, 1, 0, 0, 14), at(2024, 1, 1, 0, 0, 15)),
        ("*/15 * * * * *", at(2024, 1, 1, 0, 0, 45), at(2024, 1, 1, 0, 1, 0)),
        ("0 */5 * * * *", at(2024, 1, 1, 0, 7), at(2024, 1, 1, 0, 10)),
        ("0 0 0 1 1 *", at(2024, 6, 1), at(2025, 1, 1)),
        ("0 0 0 29 2 *", at(2024, 3, 1), at(2028, 2, 29)),  # leap days only
        ("59 59 23 31 12 *", at(2024, 12, 31, 23, 59, 59), at(2025, 12, 31, 23, 59, 59)),
        ("0 30 9 * JAN-MAR MON-FRI", at(2024, 3, 29, 10), at(2024, 1, 1, 9, 30).replace(year=2025)),
        ("0 0 12 * * SUN 2030", at(2024, 1, 1), at(2030, 1, 6, 12)),
        ("0 0 12 ? * 1", at(2024, 1, 1), at(2024, 1, 7, 12)),  # 6/7 fields: 1 = Sunday
        ("0 0 12 * * 7", at(2024, 1, 1), at(2024, 1, 6, 12)),  # 6/7 fields: 7 = Saturday
        ("0 12 * * 0", at(2024, 1, 1), at(2024, 1, 7, 12)),  # 5 fields: 0 = Sunday
        ("0 12 * * 7", at(2024, 1, 1), at(2024, 1, 7, 12)),  # 5 fields: 7 = Sunday too
        ("30 2 * * 1-5", at(2024, 1, 6), at(2024, 1, 8, 2, 30)),  # 5 fields: 1 = Monday
        ("*/20 * * * *", at(2024, 1, 1, 0, 0, 1), at(2024, 1, 1, 0, 20)),
        ("0 0 5/10 * * *", at(2024, 1, 1, 6), at(2024, 1, 1, 15)),
        ("0 0 1-10/3 * * *", at(2024, 1, 1, 5), at(2024, 1, 1, 7)),
        ("0 0 0,12 * * *", at(2024, 1, 1, 1), at(2024, 1, 1, 12)),
        ("0 0 0 * * saturday", at(2024, 1, 1), at(2024, 1, 6)),
        ("@hourly", at(2024, 1, 1, 10, 30), at(2024, 1, 1, 11)),
        ("@daily", at(2024, 1, 1, 10, 30), at(2024, 1, 2)),
        ("@weekly", at(2024, 1, 1), at(2024, 1, 7)),
        ("@monthly", at(2024, 1, 15), at(2024, 2, 1)),
        ("@yearly", at(2024, 1, 15), at(2025, 1, 1)),
    ],
)
def test_next_after_examples(
    expr: str, start: datetime.datetime, expected: datetime.datetime
) -> None:
    assert nxt(expr, start) == expected


def test_crontab_form_combines_restricted_day_fields_with_or() -> None:
    # 5-field crontab: the 13th, or any Friday (from Monday 2024-01-01: Friday the 5th)
    s = CronSchedule.parse("0 0 13 * FRI")
    assert list(_take(s.upcoming(at(2024, 1, 1)), 3)) == [
        at(2024, 1, 5),
        at(2024, 1, 12),
        at(2024, 1, 13),
    ]


def test_seconds_first_form_intersects_the_day_fields() -> None:
    # 6-field (the cron crate's form): a Friday that is also the 13th
    s = CronSchedule.parse("0 0 0 13 * FRI")
    assert list(_take(s.upcoming(at(2024, 1, 1)), 2)) == [at(2024, 9, 13), at(2024, 12, 13)]


def test_a_star_day_field_makes_the_other_one_decide() -> None:
    assert nxt("0 0 0 * * FRI", at(2024, 1, 1)) == at(2024, 1, 5)
    assert nxt("0 0 0 13 * ?", at(2024, 1, 1)) == at(2024, 1, 13)
    # a stepped star still counts as a star (crontab): both must match
    assert nxt("0 0 0 */2 * MON", at(2024, 1, 1)) == at(2024, 1, 15)


def test_a_schedule_past_its_last_year_never_fires_again() -> None:
    assert nxt("0 0 0 1 1 * 2020", at(2024, 1, 1)) is None


@pytest.mark.parametrize(
    ("expr", "why"),
    [
        ("* * 30 2 *", r"day of month 30 does not exist in month\(s\) 2;"),
        ("5-7 */7 31 4-6/2,4/10 *", r"day of month 31 does not exist in month\(s\) 4,6;"),
        ("0 0 0 30 2 *", r"day of month 30 does not exist in month\(s\) 2;"),
        ("0 0 0 31 4,6,9,11 *", r"day of month 31 does not exist in month\(s\) 4,6,9,11;"),
        ("0 0 0 30,31 FEB MON", r"day of month 30,31 does not exist"),  # 6 fields: AND
        ("0 0 30 2 ?", r"day of month 30 does not exist"),
        ("0 0 0 29 2 * 2100", r"no date in year\(s\) 2100 has day of month 29"),
        ("0 0 0 29 2 MON 2024", r"no date in year\(s\) 2024"),  # Feb 29 2024: a Thursday
    ],
)
def test_an_expression_that_can_never_fire_is_refused_at_parse(expr: str, why: str) -> None:
    with pytest.raises(
        ConfigurationError, match=f"Invalid cron expression: .*can never fire: {why}"
    ):
        CronSchedule.parse(expr)


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        ("0 0 30 2 MON", at(2024, 1, 1), at(2024, 2, 5)),  # 5 fields, both restricted: OR
        ("0 0 1,30 2 *", at(2024, 1, 1), at(2024, 2, 1)),  # one possible day is enough
        ("0 0 0 29 2 THU 2024", at(2024, 1, 1), at(2024, 2, 29)),
        ("0 0 29 2 *", at(2024, 3, 1), at(2028, 2, 29)),  # leap days are possible
    ],
)
def test_expressions_that_fire_rarely_are_accepted(
    expr: str, start: datetime.datetime, expected: datetime.datetime
) -> None:
    assert nxt(expr, start) == expected


def test_naive_moments_are_utc_and_aware_ones_are_converted() -> None:
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    assert nxt("0 0 9 * * *", datetime.datetime(2024, 1, 1, 8)) == at(2024, 1, 1, 9)
    # 10:30 at UTC+2 is 08:30 UTC
    assert nxt("0 0 9 * * *", datetime.datetime(2024, 1, 1, 10, 30, tzinfo=plus2)) == at(
        2024, 1, 1, 9
    )


def test_sub_second_moments_round_to_the_next_whole_second() -> None:
    assert nxt("* * * * * *", at(2024, 1, 1, 0, 0, 0).replace(microsecond=999_999)) == at(
        2024, 1, 1, 0, 0, 1
    )


def test_matches() -> None:
    s = CronSchedule.parse("0 30 9 * * MON-FRI")
    assert s.matches(at(2024, 1, 8, 9, 30))
    assert not s.matches(at(2024, 1, 7, 9, 30))  # Sunday
    assert not s.matches(at(2024, 1, 8, 9, 30, 1))


def test_names_are_case_insensitive_and_full_names_work() -> None:
    a = CronSchedule.parse("0 0 0 * jan,Feb,MARCH mon-Wed")
    b = CronSchedule.parse("0 0 0 * 1-3 2-4")
    assert (a.months, a.weekdays) == (b.months, b.weekdays)


def test_repr_shows_the_expression() -> None:
    assert repr(CronSchedule.parse("0 0 9 * * *")) == "CronSchedule.parse('0 0 9 * * *')"


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "* * * *",
        "* * * * * * * *",
        "60 * * * * *",
        "* 60 * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * 32 * *",
        "* * * * 13 *",
        "* * * * * 0",  # 6/7 fields: weekdays run 1-7
        "* * * * * 8",
        "* * * * 8",
        "* * * * * * 1969",
        "a * * * * *",
        "5-1 * * * * *",
        "*/0 * * * * *",
        "*/x * * * * *",
        "1,,2 * * * * *",
        "? * * * * *",
        "* * * * FOO *",
        "* * * * * FRI-MON",
        "@every_minute",
        "L * * * * *",
        "1-2-3 * * * * *",
    ],
)
def test_invalid_expressions_raise_configuration_error(expr: str) -> None:
    with pytest.raises(ConfigurationError, match="Invalid cron expression: "):
        CronSchedule.parse(expr)


def test_a_non_string_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Invalid cron expression"):
        CronSchedule.parse(5)  # type: ignore[arg-type]


# -- property: the search agrees with a brute-force scan ----------------------------

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@st.composite
def field(
    draw: st.DrawFn, low: int, high: int, names: list[str] | None = None
) -> tuple[str, set[int]]:
    """A field's text and the values it is meant to allow (a reference, built apart
    from the parser)."""

    def num(v: int) -> str:
        if names is not None and v - low < len(names) and draw(st.booleans()):
            return names[v - low]  # crontab's weekday 7 has no name of its own
        return str(v)

    parts: list[str] = []
    values: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["star", "one", "range", "star_step", "range_step", "from_step"])
        )
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        s = draw(st.integers(1, max(1, high - low)))
        if kind == "star":
            parts.append("*")
            values |= set(range(low, high + 1))
        elif kind == "one":
            parts.append(num(a))
            values.add(a)
        elif kind == "range":
            parts.append(f"{num(a)}-{num(b)}")
            values |= set(range(a, b + 1))
        elif kind == "star_step":
            parts.append(f"*/{s}")
            values |= set(range(low, high + 1, s))
        elif kind == "range_step":
            parts.append(f"{num(a)}-{num(b)}/{s}")
            values |= set(range(a, b + 1, s))
        else:
            parts.append(f"{num(a)}/{s}")
            values |= set(range(a, high + 1, s))
    return ",".join(parts), values


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    five = draw(st.booleans())
    sec_text, secs = ("0", {0}) if five else draw(field(0, 59))
    # keep the upper fields dense enough that firings land inside the scanned window
    min_text, mins = draw(field(0, 59))
    hour_text, hours = draw(st.one_of(st.just(("*", set(range(24)))), field(0, 23)))
    dom_text, doms = draw(
        st.one_of(
            st.just(("*", set(range(1, 32)))), st.just(("?", set(range(1, 32)))), field(1, 31)
        )
    )
    mon_text, months = draw(st.one_of(st.just(("*", set(range(1, 13)))), field(1, 12, MONTHS)))
    if five:
        dow_text, raw = draw(st.one_of(st.just(("*", set(range(7)))), field(0, 7, DAYS)))
        dows = {v % 7 for v in raw}  # 0 and 7 are both Sunday
    else:
        dow_text, raw = draw(st.one_of(st.just(("?", set(range(1, 8)))), field(1, 7, DAYS)))
        dows = {v - 1 for v in raw}  # 1 = SUN in the 6/7-field form
    fields = [min_text, hour_text, dom_text, mon_text, dow_text]
    text = " ".join(fields if five else [sec_text, *fields])
    spec = {
        "secs": secs,
        "mins": mins,
        "hours": hours,
        "doms": doms,
        "months": months,
        "dows": dows,
        # only the 5-field crontab form ORs two restricted day fields
        "dom_star": dom_text[0] in "*?" or not five,
        "dow_star": dow_text[0] in "*?" or not five,
    }
    return text, spec


def brute_force(
    spec: dict[str, object], start: datetime.datetime, minutes: int
) -> datetime.datetime | None:
    """Scan minute by minute from ``start`` (exclusive) over a bounded window."""
    secs = sorted(spec["secs"])  # type: ignore[call-overload]
    begin = start.replace(microsecond=0) + datetime.timedelta(seconds=1)
    t = begin.replace(second=0)
    for _ in range(minutes):
        weekday = (t.weekday() + 1) % 7
        in_dom = t.day in spec["doms"]  # type: ignore[operator]
        in_dow = weekday in spec["dows"]  # type: ignore[operator]
        day_ok = (
            (in_dom and in_dow) if (spec["dom_star"] or spec["dow_star"]) else (in_dom or in_dow)
        )
        if (
            day_ok
            and t.month in spec["months"]  # type: ignore[operator]
            and t.hour in spec["hours"]  # type: ignore[operator]
            and t.minute in spec["mins"]  # type: ignore[operator]
        ):
            floor = begin.second if t == begin.replace(second=0) else 0
            for s in secs:
                if s >= floor:
                    return t.replace(second=s)
        t += datetime.timedelta(minutes=1)
    return None


WINDOW_MINUTES = 3 * 24 * 60
LONGEST = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}


def _never_fires(spec: dict[str, object]) -> bool:
    """No year field here: only an AND of the day fields over impossible dates is empty."""
    if not (spec["dom_star"] or spec["dow_star"]):
        return False
    return not any(
        d <= LONGEST.get(m, 31)
        for m in spec["months"]  # type: ignore[attr-defined]
        for d in spec["doms"]  # type: ignore[attr-defined]
    )


@settings(max_examples=150, deadline=None)
@given(
    case=expressions(),
    start=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2040, 12, 31)
    ),
)
def test_next_after_matches_a_brute_force_scan(
    case: tuple[str, dict[str, object]], start: datetime.datetime
) -> None:
    text, spec = case
    if _never_fires(spec):
        with pytest.raises(ConfigurationError, match="can never fire"):
            CronSchedule.parse(text)
        return
    schedule = CronSchedule.parse(text)
    start = start.replace(tzinfo=UTC)
    expected = brute_force(spec, start.replace(tzinfo=None), WINDOW_MINUTES)
    got = schedule.next_after(start)
    if expected is not None:
        assert got == expected.replace(tzinfo=UTC), text
    else:  # nothing inside the window: the search must land beyond it (or never)
        window_end = start + datetime.timedelta(minutes=WINDOW_MINUTES - 1)
        assert got is None or got > window_end, text
    if got is not None:
        assert schedule.matches(got)
        assert got > start


def _take(it: object, n: int) -> list[datetime.datetime]:
    out = []
    for item in it:  # type: ignore[attr-defined]
        out.append(item)
        if len(out) == n:
            break
    return out


def test_crontab_weekday_step_runs_to_seven_which_is_sunday() -> None:
    # 0-7 with 7 = Sunday; `N/S` runs from N to the field's maximum, 7
    assert sorted(CronSchedule.parse("* * * * 3/2").weekdays) == [0, 3, 5]  # 3,5,7
    assert sorted(CronSchedule.parse("* * * * 5/2").weekdays) == [0, 5]  # 5,7
    assert sorted(CronSchedule.parse("* * * * 7/5").weekdays) == [0]  # 7
    assert sorted(CronSchedule.parse("* * * * 1/1").weekdays) == list(range(7))
    assert sorted(CronSchedule.parse("* * * * FRI/2").weekdays) == [0, 5]
    assert sorted(CronSchedule.parse("* * * * 6/1").weekdays) == [0, 6]
    assert sorted(CronSchedule.parse("* * * * */2").weekdays) == [0, 2, 4, 6]
    assert sorted(CronSchedule.parse("* * * * */7").weekdays) == [0]  # 0 and 7
    assert sorted(CronSchedule.parse("* * * * 5-7").weekdays) == [0, 5, 6]
    assert sorted(CronSchedule.parse("* * * * 7").weekdays) == [0]
    # a stepped range stays inside its range, even a one-value one
    assert sorted(CronSchedule.parse("* * * * 6-6/1").weekdays) == [6]


def test_crontab_weekday_step_from_seven_fires_on_sundays() -> None:
    # 2024-01-07 is a Sunday; `7/5` used to be empty and never fire
    assert nxt("0 12 * * 7/5", at(2024, 1, 1)) == at(2024, 1, 7, 12)
    assert nxt("0 12 * * 5/2", at(2024, 1, 6)) == at(2024, 1, 7, 12)


def test_seconds_first_weekday_step_runs_to_seven_which_is_saturday() -> None:
    # 6/7 fields: 1 = Sunday .. 7 = Saturday; `6/1` is Friday and Saturday
    assert sorted(CronSchedule.parse("0 0 0 * * 6/1").weekdays) == [5, 6]
