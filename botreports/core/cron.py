"""Five-field cron expressions in an IANA timezone: parsing with clear errors,
and the UTC instants at which a schedule fires.

Fire times are found in local wall-clock time. A local time that a DST change
skips fires at the first valid instant after the gap (``30 2 * * *`` in Berlin
on the spring-forward day fires at 03:00 local); a local time that happens
twice fires once, at its first occurrence.
"""
from __future__ import annotations

import datetime as dt
from typing import FrozenSet, Iterator, List, Optional, Tuple

import attrs

from .scheduling import offset_changes, zone

UTC = dt.timezone.utc
MONTH_NAMES = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
DAY_NAMES = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
#: (field name, lowest, highest, names) in the order of the expression.
FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTH_NAMES),
    ("day of week", 0, 7, DAY_NAMES),
)
#: How far ahead to look for the next fire time (``0 0 29 2 1`` fires once in 28 years or so).
SEARCH_DAYS = 366 * 30


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message says which field and why."""


def _value(text: str, field: str, low: int, high: int, names: dict) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        choices = f" or a name such as {next(iter(names))}" if names else ""
        raise CronError(f"{field} field: {text!r} is not a number{choices}")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{field} field: {number} is out of range {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int, names: dict) -> Tuple[FrozenSet[int], bool]:
    """The set of values a field matches, and whether it was restricted (not ``*``)."""
    values = set()
    restricted = True
    for part in text.split(","):
        if not part:
            raise CronError(f"{field} field: empty item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
            if not step_text:
                restricted = False if text == "*" else restricted
        elif "-" in base:
            start_text, _, end_text = base.partition("-")
            first = _value(start_text, field, low, high, names)
            last = _value(end_text, field, low, high, names)
            if last < first:
                raise CronError(f"{field} field: range {base!r} runs backwards")
        else:
            first = _value(base, field, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values), restricted


@attrs.frozen
class Cron:
    """A parsed expression: the sets of minutes, hours, days, months and weekdays (0 = Sunday)."""

    text: str
    minutes: FrozenSet[int]
    hours: FrozenSet[int]
    days: FrozenSet[int]
    months: FrozenSet[int]
    weekdays: FrozenSet[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text) -> "Cron":
        """Parse ``minute hour day-of-month month day-of-week`` (names like MON and JAN allowed)."""
        if not isinstance(text, str):
            raise CronError("must be a string such as '0 8 * * 1'")
        parts = text.split()
        if len(parts) != 5:
            raise CronError(f"must have 5 fields (minute hour day-of-month month day-of-week), not {len(parts)}")
        parsed = [_parse_field(part, *spec) for part, spec in zip(parts, FIELDS)]
        weekdays = frozenset(0 if day == 7 else day for day in parsed[4][0])
        cron = cls(" ".join(parts), parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], weekdays,
                   parsed[2][1], parsed[4][1])
        if not any(cron._month_has_day(month) for month in cron.months):
            raise CronError("day of month field: no month in the month field has such a day")
        return cron

    def _month_has_day(self, month: int) -> bool:
        longest = 29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31
        return self.weekdays_restricted or min(self.days) <= longest

    def matches_day(self, day: dt.date) -> bool:
        """Whether the expression fires on ``day`` (classic cron: day-of-month OR weekday when both are set)."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def times_of_day(self) -> List[dt.time]:
        return [dt.time(hour, minute) for hour in sorted(self.hours) for minute in sorted(self.minutes)]

    def natural_period(self) -> str:
        """The period a schedule of this rhythm reports on when none is given: once a week ->
        previous_week, once a month -> previous_month, anything else -> previous_day."""
        if self.weekdays_restricted and not self.days_restricted and len(self.weekdays) == 1:
            return "previous_week"
        if self.days_restricted and not self.weekdays_restricted and len(self.days) == 1:
            return "previous_month"
        return "previous_day"

    def shortest_interval(self) -> dt.timedelta:
        """The shortest wall-clock gap between two fire times (for the minimum interval rule)."""
        minutes = [t.hour * 60 + t.minute for t in self.times_of_day()]
        gaps = [b - a for a, b in zip(minutes, minutes[1:])]
        # Consecutive days can both fire unless the day rules never allow it; be conservative.
        gaps.append(minutes[0] + 24 * 60 - minutes[-1])
        return dt.timedelta(minutes=min(gaps))


def local_to_utc(local: dt.datetime, tz: str) -> dt.datetime:
    """A naive local wall-clock time as the UTC instant it fires at.

    A time skipped by a DST change maps to the instant the gap ends; a repeated
    time maps to its first occurrence.
    """
    zi = zone(tz)
    first = local.replace(tzinfo=zi, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zi, fold=1).astimezone(UTC)
    if first.astimezone(zi).replace(tzinfo=None) == local:
        return min(first, second) if second.astimezone(zi).replace(tzinfo=None) == local else first
    # Skipped: fold=0 and fold=1 straddle the change; the change itself is the next valid instant.
    low, high = sorted((first, second))
    _offset, changes = offset_changes(tz, low, high + dt.timedelta(seconds=1))
    return changes[0][0] if changes else high


def fire_times(cron: Cron, tz: str, after: dt.datetime) -> Iterator[dt.datetime]:
    """The UTC instants strictly after ``after`` at which ``cron`` fires in ``tz``, in order, without repeats."""
    zi = zone(tz)
    after = after.astimezone(UTC)
    day = after.astimezone(zi).date() - dt.timedelta(days=1)
    times = cron.times_of_day()
    last: Optional[dt.datetime] = None
    for _ in range(SEARCH_DAYS):
        if cron.matches_day(day):
            for time in times:
                instant = local_to_utc(dt.datetime.combine(day, time), tz)
                if instant > after and (last is None or instant > last):
                    last = instant
                    yield instant
        day += dt.timedelta(days=1)


def next_fire_time(cron: Cron, tz: str, after: dt.datetime) -> Optional[dt.datetime]:
    """The first fire time strictly after ``after`` (None if there is none within decades)."""
    return next(fire_times(cron, tz, after), None)


def fire_times_between(cron: Cron, tz: str, after: dt.datetime, until: dt.datetime,
                       limit: int = 10_000) -> List[dt.datetime]:
    """Fire times in ``(after, until]``, at most ``limit`` of them (the latest ones are kept)."""
    found: List[dt.datetime] = []
    for instant in fire_times(cron, tz, after):
        if instant > until:
            break
        found.append(instant)
        if len(found) > limit:
            found.pop(0)
    return found
