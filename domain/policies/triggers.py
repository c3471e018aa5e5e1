"""When a schedule's ticks fall: a cron expression in an IANA time zone, or a fixed interval.

Pure: nothing here reads a clock; every question names the instant it is asked about.
Ticks are timezone-aware UTC datetimes and strictly increasing.

Cron expressions have the five classic fields (minute hour day-of-month month
day-of-week; names such as ``MON`` or ``JAN``, ranges, lists, steps, ``L``, ``W`` and
``#`` as cronsim reads them) or are one of ``@hourly @daily @midnight @weekly @monthly
@yearly @annually``. They are read in the schedule's time zone, and daylight saving time
behaves as Debian's cron does (cronsim reproduces it):

* A job at a fixed wall-clock time (neither the minute nor the hour field starts with
  ``*``, e.g. ``30 2 * * *``) runs once on each matching day. When that time does not
  exist (spring forward: 02:30 in Europe/Berlin on the last Sunday of March) it runs at
  the first minute after the gap (03:00 CEST); when it exists twice (fall back: 02:30 on
  the last Sunday of October) it runs once, at the first occurrence (02:30 CEST).
* A job whose minute or hour field starts with ``*`` (``*/15 * * * *``, ``0 * * * *``)
  follows real time: it runs at every matching wall-clock time that exists, so not in
  the skipped hour, and in both passes of the repeated one.

An interval is every ``every_s`` seconds of real time from its anchor (the schedule's
``start_at``); time zones do not matter to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from domain.errors import InvalidInput

MIN_EVERY_S, MAX_EVERY_S = 1, 366 * 24 * 3600
MAX_CRON_CHARS = 200
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
CRON_FIELDS = "minute hour day-of-month month day-of-week"
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})  # machine-dependent or bogus
PROBE = datetime(2000, 1, 1)  # any instant: parsing an expression needs one


@dataclass(frozen=True)
class DueTicks:
    """The ticks in ``(after, now]``: how many, the first, and the latest few.

    Incomplete when more fell due than one look may count (a long outage of a frequent
    cron job): then ``count`` ticks from ``first`` to ``last`` are all older than the
    latest ones, ``latest`` is empty, and the rest waits for the next look.
    """

    count: int
    first: datetime | None
    last: datetime | None
    latest: tuple[datetime, ...]  # oldest first
    complete: bool = True


NONE_DUE = DueTicks(0, None, None, ())


@dataclass(frozen=True)
class Cron:
    expression: str  # five fields (aliases already expanded)
    timezone: str

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        zone = ZoneInfo(self.timezone)
        last = after
        for local in CronSim(self.expression, after.astimezone(zone)):
            tick = local.astimezone(UTC)
            if tick > last:  # around a fall-back fold a wall time can map to an earlier instant
                last = tick
                yield tick

    def due_ticks(self, after: datetime, now: datetime, keep: int, cap: int) -> DueTicks:
        count, first, capped = 0, None, None
        latest: deque[datetime] = deque(maxlen=keep)
        for tick in self.ticks_after(after):
            if tick > now:
                break
            if count == cap + keep:  # the first `cap` cannot be among the latest `keep`
                return DueTicks(cap, first, capped, (), complete=False)
            count += 1
            first = first or tick
            if count == cap:
                capped = tick
            latest.append(tick)
        return DueTicks(count, first, latest[-1] if latest else None, tuple(latest))


@dataclass(frozen=True)
class Interval:
    every_s: int
    anchor: datetime

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        step = timedelta(seconds=self.every_s)
        tick = self._first_after(after)
        while True:
            yield tick
            tick += step

    def due_ticks(self, after: datetime, now: datetime, keep: int, cap: int) -> DueTicks:
        step = timedelta(seconds=self.every_s)
        first = self._first_after(after)
        if first > now:
            return NONE_DUE
        count = (now - first) // step + 1
        last = first + (count - 1) * step
        latest = tuple(last - i * step for i in range(min(count, keep) - 1, -1, -1))
        return DueTicks(count, first, last, latest)

    def _first_after(self, after: datetime) -> datetime:
        if after < self.anchor:
            return self.anchor.astimezone(UTC)
        step = timedelta(seconds=self.every_s)
        return (self.anchor + ((after - self.anchor) // step + 1) * step).astimezone(UTC)


Trigger = Cron | Interval


def cron(expression: str, timezone: str) -> Cron:
    """A cron trigger, or ``InvalidInput`` saying what is wrong with it."""
    expanded = ALIASES.get(expression.strip().lower(), expression.strip())
    fields = expanded.split()
    if len(expanded) > MAX_CRON_CHARS or len(fields) != 5:
        raise InvalidInput(
            f"invalid cron expression: it needs 5 fields ({CRON_FIELDS}), got {len(fields)}"
            f" (or one of {', '.join(ALIASES)})"
        )
    zone = time_zone(timezone)
    try:
        CronSim(expanded, PROBE.replace(tzinfo=zone))
    except CronSimError as e:
        raise InvalidInput(f"invalid cron expression: {_cron_problem(e)}") from None
    return Cron(" ".join(fields), timezone)


def interval(every_s: int, anchor: datetime) -> Interval:
    if not isinstance(every_s, int) or not MIN_EVERY_S <= every_s <= MAX_EVERY_S:
        raise InvalidInput(f"every_s must be {MIN_EVERY_S}..{MAX_EVERY_S} seconds")
    return Interval(every_s, anchor.astimezone(UTC))


def time_zone(name: str) -> ZoneInfo:
    if name in NOT_ZONES or name not in _zone_names():
        raise InvalidInput(
            f"unknown time zone {name[:64]!r}: use an IANA name such as Europe/Berlin or UTC"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name[:64]!r}") from None


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _cron_problem(error: CronSimError) -> str:
    """cronsim says "Bad minute"; we say which field and what the fields are."""
    text = str(error).strip()
    if text.lower().startswith("bad "):
        return f"bad {text[4:].lower()} field (the fields are: {CRON_FIELDS})"
    return text[:1].lower() + text[1:]
