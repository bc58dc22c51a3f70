"""Cron expressions, evaluated in UTC (REFERENCE §8.1).

Three shapes are accepted:

```
sec  min  hour  day-of-month  month  day-of-week  [year]     6 or 7 fields, seconds first
     min  hour  day-of-month  month  day-of-week             5 fields, standard crontab
@yearly @annually @monthly @weekly @daily @midnight @hourly   shorthands
```

Each field is a comma-separated list of ``*``, ``N``, ``A-B``, ``*/S``, ``N/S`` (from N
to the field's maximum) or ``A-B/S``. Months and weekdays also take names (``JAN``..
``DEC``, ``SUN``..``SAT``, any case, full names too). ``?`` means "any" in the two
day fields. Ranges must not wrap (``FRI-MON`` is an error: write ``FRI-SAT,SUN,MON``).

Weekday *numbers* follow the convention of each shape: in the 6/7-field form they
run 1-7 with 1 = Sunday, as in the ``cron`` crate the original uses (and Quartz); in
the 5-field form they run 0-7 with 0 and 7 = Sunday, as in crontab, so ``5/2`` is
Friday and Sunday (5, 7) and ``7/5`` is Sunday. Names mean the same day in both.
Years run 1970-2100.

An expression that can never fire (``* * 30 2 *``: February has no 30th) is refused
by `CronSchedule.parse`, with the reason, instead of parsing into a schedule whose
flow silently never runs.

Day-of-month and day-of-week: in the 5-field crontab form, when both are restricted
(neither starts with ``*`` or ``?``) a day matches if *either* matches, as in crontab;
in the 6/7-field form a day must match both, as in the ``cron`` crate the original
uses.

`CronSchedule.next_after` walks the fields from the year down, jumping straight to the
next allowed value of each, so finding the next firing costs at most a few hundred
steps per matching month, never a scan over seconds.
"""

from __future__ import annotations

import bisect
import calendar
import datetime
from collections.abc import Iterator

import attrs

from .._errors import ConfigurationError

__all__ = ["CronSchedule"]

UTC = datetime.timezone.utc
YEAR_MIN = 1970
YEAR_MAX = 2100
# The Gregorian calendar (weekdays included) repeats every 400 years, so a schedule
# with no firing in the next 401 years never fires.
_HORIZON_YEARS = 401

_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for name in names
}
# Sunday-based day index (SUN = 0 .. SAT = 6).
_WEEKDAYS = {
    name: i
    for i, names in enumerate(
        [
            ("sun", "sunday"),
            ("mon", "monday"),
            ("tue", "tues", "tuesday"),
            ("wed", "wednesday"),
            ("thu", "thur", "thurs", "thursday"),
            ("fri", "friday"),
            ("sat", "saturday"),
        ]
    )
    for name in names
}

_SHORTHANDS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * SUN",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}


class _Invalid(Exception):
    """A parse problem; turned into the `ConfigurationError` at the boundary."""


@attrs.frozen
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    any_allowed: bool = False  # ``?``


def _number(token: str, spec: _FieldSpec) -> int:
    if spec.names is not None and token.lower() in spec.names:
        return spec.names[token.lower()]
    if not (token.isascii() and token.isdigit()):
        raise _Invalid(f"{spec.name}: {token!r} is not a number")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise _Invalid(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_field(text: str, spec: _FieldSpec) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _Invalid(f"{spec.name}: empty list item in {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise _Invalid(f"{spec.name}: step must be a positive number in {part!r}")
            step = int(step_text)
        top = spec.high
        if base in ("*", "?"):
            if base == "?" and not spec.any_allowed:
                raise _Invalid(f"{spec.name}: '?' is only allowed in the day fields")
            low, high = spec.low, top
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _number(first, spec), _number(last, spec)
            if low > high:
                raise _Invalid(f"{spec.name}: range {base!r} runs backwards")
        else:
            low = _number(base, spec)
            high = top if slash else low
        out.update(range(low, high + 1, step))
    return out


def _days_possible(days: frozenset[int], months: frozenset[int]) -> bool:
    longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
    return any(day <= longest.get(month, 31) for month in months for day in days)


@attrs.frozen(repr=False)
class CronSchedule:
    """A parsed cron expression. Build with `CronSchedule.parse`; bad input raises
    ``ConfigurationError("Invalid cron expression: ...")``."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # SUN = 0 .. SAT = 6
    years: tuple[int, ...] | None  # None: any year
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse a 5-, 6- or 7-field expression or an ``@`` shorthand."""
        if not isinstance(expression, str):
            raise ConfigurationError(
                f"Invalid cron expression: expected a string, got {expression!r}"
            )
        try:
            return cls._parse(expression)
        except _Invalid as exc:
            raise ConfigurationError(f"Invalid cron expression: {exc}") from None

    @classmethod
    def _parse(cls, expression: str) -> CronSchedule:
        text = expression.strip()
        text = _SHORTHANDS.get(text.lower(), text)
        if text.startswith("@"):
            raise _Invalid(f"unknown shorthand {text!r}")
        fields = text.split()
        crontab = len(fields) == 5
        if crontab:
            fields = ["0", *fields]
            dow = _FieldSpec("day of week", 0, 7, _WEEKDAYS, any_allowed=True)
            shift = 0
        elif len(fields) in (6, 7):
            names = {k: v + 1 for k, v in _WEEKDAYS.items()}
            dow = _FieldSpec("day of week", 1, 7, names, any_allowed=True)
            shift = 1
        else:
            raise _Invalid(f"expected 5, 6 or 7 fields, got {len(fields)} in {expression!r}")
        sec = _parse_field(fields[0], _FieldSpec("seconds", 0, 59))
        minute = _parse_field(fields[1], _FieldSpec("minutes", 0, 59))
        hour = _parse_field(fields[2], _FieldSpec("hours", 0, 23))
        dom = _parse_field(fields[3], _FieldSpec("day of month", 1, 31, any_allowed=True))
        month = _parse_field(fields[4], _FieldSpec("month", 1, 12, _MONTHS))
        weekday = {(d - shift) % 7 for d in _parse_field(fields[5], dow)}
        years: tuple[int, ...] | None = None
        if len(fields) == 7 and fields[6] not in ("*", "?"):
            years = tuple(sorted(_parse_field(fields[6], _FieldSpec("year", YEAR_MIN, YEAR_MAX))))
        schedule = cls(
            expression=expression,
            seconds=tuple(sorted(sec)),
            minutes=tuple(sorted(minute)),
            hours=tuple(sorted(hour)),
            days=frozenset(dom),
            months=tuple(sorted(month)),
            weekdays=frozenset(weekday),
            years=years,
            # crontab's OR of the two day fields; the 6/7-field form intersects them
            days_restricted=crontab and fields[3][0] not in "*?",
            weekdays_restricted=crontab and fields[5][0] not in "*?",
        )
        reason = schedule._why_never()
        if reason is not None:
            raise _Invalid(f"{expression!r} can never fire: {reason}")
        return schedule

    def _why_never(self) -> str | None:
        """Why the schedule has no firing at all, or None when it has one.

        Seconds, minutes, hours and weekdays are never empty, and every weekday falls
        on every possible (month, day) within the 400-year Gregorian cycle, so without
        a year field only the day-of-month/month combination can make a schedule
        empty. With a year field, the (bounded) search decides."""
        either_day = self.days_restricted and self.weekdays_restricted
        if not either_day and not _days_possible(self.days, frozenset(self.months)):
            return (
                f"day of month {_show(self.days)} does not exist in month(s) "
                f"{_show(self.months)}; allow a day that those months have (February "
                "has 29 at most; April, June, September and November have 30)"
            )
        if (
            self.years is not None
            and self._first_from(datetime.datetime(self.years[0], 1, 1)) is None
        ):
            return (
                f"no date in year(s) {_show(self.years)} has day of month "
                f"{_show(self.days)} in month(s) {_show(self.months)} on an allowed day "
                "of week; widen one of those fields"
            )
        return None

    def __repr__(self) -> str:
        return f"CronSchedule.parse({self.expression!r})"

    # -- matching ------------------------------------------------------------------

    def _day_ok(self, day: int, weekday: int) -> bool:
        """``weekday``: SUN = 0."""
        in_dom = day in self.days
        in_dow = weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_dom or in_dow
        return in_dom and in_dow

    def matches(self, moment: datetime.datetime) -> bool:
        """Whether the schedule fires at ``moment`` (its whole second, in UTC)."""
        t = _as_utc_naive(moment)
        return (
            (self.years is None or t.year in self.years)
            and t.month in self.months
            and self._day_ok(t.day, (t.weekday() + 1) % 7)
            and t.hour in self.hours
            and t.minute in self.minutes
            and t.second in self.seconds
        )

    # -- searching -----------------------------------------------------------------

    def next_after(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The first firing strictly after ``moment`` (an aware UTC datetime), or None
        when the schedule never fires again. A naive ``moment`` is read as UTC."""
        start = _as_utc_naive(moment).replace(microsecond=0) + datetime.timedelta(seconds=1)
        found = self._first_from(start)
        return None if found is None else found.replace(tzinfo=UTC)

    def upcoming(self, moment: datetime.datetime) -> Iterator[datetime.datetime]:
        """Every firing after ``moment``, in order (ends if the schedule does)."""
        current: datetime.datetime | None = moment
        while current is not None:
            current = self.next_after(current)
            if current is not None:
                yield current

    def _years_from(self, year: int) -> list[int]:
        last = min(year + _HORIZON_YEARS, datetime.MAXYEAR)
        if self.years is None:
            return list(range(year, last + 1))
        return [y for y in self.years if year <= y <= last]

    def _first_from(self, t: datetime.datetime) -> datetime.datetime | None:
        """The first firing at or after the naive UTC ``t`` (whole seconds)."""
        if not (self.days_restricted and self.weekdays_restricted) and not _days_possible(
            self.days, frozenset(self.months)
        ):
            return None
        secs, mins, hours, months = self.seconds, self.minutes, self.hours, self.months
        for year in self._years_from(t.year):
            first_year = year == t.year
            for month in months[bisect.bisect_left(months, t.month if first_year else 1) :]:
                first_month = first_year and month == t.month
                first_weekday, ndays = calendar.monthrange(year, month)  # MON = 0
                for day in range(t.day if first_month else 1, ndays + 1):
                    if not self._day_ok(day, (first_weekday + day) % 7):
                        continue
                    first_day = first_month and day == t.day
                    for hour in hours[bisect.bisect_left(hours, t.hour if first_day else 0) :]:
                        first_hour = first_day and hour == t.hour
                        lo_min = t.minute if first_hour else 0
                        for minute in mins[bisect.bisect_left(mins, lo_min) :]:
                            lo_sec = t.second if first_hour and minute == t.minute else 0
                            i = bisect.bisect_left(secs, lo_sec)
                            if i < len(secs):
                                return datetime.datetime(year, month, day, hour, minute, secs[i])
        return None


def _show(values: frozenset[int] | tuple[int, ...]) -> str:
    """Allowed values for an error message: ``30,31`` (or ``1-31`` for a run)."""
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def _as_utc_naive(moment: datetime.datetime) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise TypeError(f"expected a datetime, got {moment!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)
