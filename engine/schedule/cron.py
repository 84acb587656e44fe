"""Cron expressions: parsing with clear errors, and fire times in a time zone.

Five fields are standard cron. Six fields are read **seconds first** (Quartz style, as in the
seeds: ``0 0 0 * * *`` is daily at midnight). Macros: ``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``.

Fire times are computed on the local wall clock of the schedule's time zone, then converted to
UTC. A wall time that happens twice (DST fall-back) fires once, at its first occurrence; a wall
time that does not exist (spring-forward) fires shifted by the gap (02:30 becomes 03:30), so no
day is skipped. Two wall times landing on one instant fire once.

An expression croniter accepts may still never fire (``0 2 31 2 *``: there is no 31 February):
``parse_cron`` refuses it, and a ``Cron`` whose next or previous fire time cannot be found
raises ``CronError`` (a ``LifeboatError``), never croniter's own exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from engine.errors import LifeboatError

MACROS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly")
_FIELDS_5 = "minute hour day-of-month month day-of-week"
_FIELDS_6 = "second minute hour day-of-month month day-of-week"
_PROBE_START = datetime(2000, 1, 1)  # a fixed start: whether a cron fires never depends on today


class CronError(LifeboatError):
    """A schedule's next or previous fire time cannot be computed."""


@dataclass(frozen=True)
class Cron:
    """A validated cron expression."""

    expression: str

    @property
    def seconds_first(self) -> bool:
        return len(self.expression.split()) == 6

    def _iterator(self, start: datetime) -> croniter:
        return croniter(self.expression, start, second_at_beginning=self.seconds_first)

    def _step(self, iterator: croniter, *, forward: bool) -> datetime:
        """The next (or previous) wall time of ``iterator``; croniter's failures (no date
        matches, a date past year 9999) as ``CronError``."""
        try:
            found: datetime = (
                iterator.get_next(datetime) if forward else iterator.get_prev(datetime)
            )
        except (CroniterError, OverflowError, ValueError) as exc:
            way = "next" if forward else "previous"
            raise CronError(f"cron {self.expression!r}: no {way} fire time ({exc})") from None
        return found

    def fire_times(self, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
        """Fire times (aware, UTC) strictly after ``after`` (aware), in increasing order."""
        wall = after.astimezone(zone).replace(tzinfo=None, fold=0)
        # Start an hour early on the wall clock: after a fall-back the wall clock went back.
        naive = self._iterator(wall - timedelta(hours=1))
        last = after
        while True:
            local = self._step(naive, forward=True)
            instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if instant > last:
                last = instant
                yield instant

    def next_runs(self, after: datetime, zone: ZoneInfo, count: int) -> list[datetime]:
        runs = self.fire_times(after, zone)
        return [next(runs) for _ in range(count)]

    def previous_run(self, at_or_before: datetime, zone: ZoneInfo) -> datetime | None:
        """The newest fire time at or before ``at_or_before`` (None when there is none in
        the last 400 days)."""
        wall = at_or_before.astimezone(zone).replace(tzinfo=None, fold=0)
        naive = self._iterator(wall + timedelta(hours=1, seconds=1))
        limit = at_or_before - timedelta(days=400)
        while True:
            local = self._step(naive, forward=False)
            instant = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if instant < limit:
                return None
            if instant <= at_or_before:
                return instant

    def interval(self, around: datetime, zone: ZoneInfo) -> timedelta:
        """The gap between the two fire times following ``around``."""
        first, second = self.next_runs(around, zone, 2)
        return second - first


def parse_cron(expression: str) -> Cron:
    """Validate ``expression``; raises ValueError with an explanation and a fix."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ValueError(
                f"unknown cron macro {expression!r}; use one of {', '.join(MACROS)} or five fields"
            )
        return Cron(text.lower())
    fields = text.split(" ") if text else []
    if len(fields) == 5:
        if not croniter.is_valid(text):
            raise ValueError(f"invalid cron expression {expression!r}; {_fix(text, _FIELDS_5)}")
        return _firing(Cron(text), fields[2:4])
    if len(fields) == 6:
        if croniter.is_valid(text, second_at_beginning=True):
            return _firing(Cron(text), fields[3:5])
        if croniter.is_valid(text):
            seconds_first = " ".join([fields[5], *fields[:5]])
            raise ValueError(
                f"invalid cron expression {expression!r}: six fields are read seconds first "
                f"({_FIELDS_6}), and this one only makes sense with seconds last; "
                f"write it as {seconds_first!r}"
            )
        raise ValueError(f"invalid cron expression {expression!r}; {_fix(text, _FIELDS_6)}")
    raise ValueError(
        f"cron expression {expression!r} has {len(fields)} fields; write five "
        f"({_FIELDS_5}), six with seconds first, or a macro such as @daily"
    )


def _firing(cron: Cron, day_and_month: list[str]) -> Cron:
    """``cron``, if it ever fires; else a ValueError naming the day and month fields."""
    try:
        cron._step(cron._iterator(_PROBE_START), forward=True)
    except CronError:
        day, month = day_and_month
        raise ValueError(
            f"cron expression {cron.expression!r} never fires: no date has day-of-month "
            f"{day!r} in month {month!r} (February has at most 29 days; April, June, September "
            "and November 30); fix the day-of-month or month field"
        ) from None
    return cron


def _fix(text: str, names: str) -> str:
    """Name the first field croniter rejects."""
    fields, labels = text.split(" "), names.split(" ")
    for index, label in enumerate(labels):
        probe = ["*"] * len(labels)
        probe[index] = fields[index]
        try:
            croniter(" ".join(probe), second_at_beginning=len(labels) == 6)
        except CroniterError:
            field = fields[index]
            return f"the {label} field {field!r} is out of range or malformed (fields: {names})"
    return f"the fields are {names}"


def zone_named(name: str) -> ZoneInfo:
    """A time zone by IANA name; raises ValueError naming the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise ValueError(
            f'unknown time zone {name!r}; use an IANA name such as "UTC" or "Europe/Berlin"'
        ) from None
