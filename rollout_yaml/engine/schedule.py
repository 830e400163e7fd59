"""When the built-in `schedule` App's triggers fire: pure decisions, time always passed in.

Nothing here reads a clock, sleeps or stores anything, so the runner (and the tests) decide what
"now" is. Every datetime in and out is timezone-aware; results are UTC.

Cron expressions are evaluated on the wall clock of their `timezone`, and mapped to instants here
rather than by croniter: croniter's own timezone handling fires a daily job twice on the autumn
DST day (02:30 CEST and again 02:30 CET), which is what a user writing `30 2 * * *` least expects.
The rules, applied to every zone:

* a wall time that occurs twice (autumn fall-back) fires once, at its first occurrence;
  a consequence is that `0 * * * *` does not fire again at the repeated 02:00;
* a wall time skipped by a spring-forward gap fires once, at the first valid instant after the
  gap (the moment clocks jump), merged with any tick already due then. This is the same instant
  croniter picks for a skipped time (`30 2 * * *` in Europe/Paris → 03:00 CEST).

`every` ticks are `anchor + k·interval` (k ≥ 0), the anchor being the instant the automation was
first scheduled, so restarts never drift the phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from rollout_yaml.config.types import parse_duration

MIN_INTERVAL = timedelta(seconds=1)
_ONE_MINUTE = timedelta(minutes=1)
_ONE_DAY = timedelta(days=1)
_PROBE = datetime(2000, 1, 1)  # a fixed start to check that an expression ever matches


@dataclass(frozen=True)
class CronSchedule:
    """A 5-field cron expression read on the wall clock of `zone`."""

    expression: str
    zone: ZoneInfo


@dataclass(frozen=True)
class EverySchedule:
    """A fixed interval, phased by the automation's anchor."""

    interval: timedelta


Schedule = CronSchedule | EverySchedule


@dataclass(frozen=True)
class Tick:
    """One firing: the instant the schedule named, and the instant the runner acted on it."""

    scheduled_at: datetime
    fired_at: datetime

    def payload(self) -> dict[str, str]:
        """The trigger payload of the `schedule` App: `{scheduled_at, fired_at}`."""
        return {"scheduled_at": iso_utc(self.scheduled_at), "fired_at": iso_utc(self.fired_at)}


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a `Z` and milliseconds, the form the server shows timestamps in."""
    return _utc(moment, "moment").isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schedule_from_input(trigger_key: str, inputs: Mapping[str, Any]) -> Schedule:
    """Build a schedule from an automation's trigger inputParams; ValueError names the problem.

    Checked once when configuration loads, so a bad expression is a config error, not a
    silent automation that never runs.
    """
    if trigger_key == "cron":
        return CronSchedule(_cron_expression(inputs.get("cron")), _zone(inputs.get("timezone")))
    if trigger_key == "every":
        return EverySchedule(_interval(inputs.get("every")))
    raise ValueError(f"schedule: unknown trigger {trigger_key!r}: expected `cron` or `every`")


def next_after(schedule: Schedule, after: datetime, anchor: datetime | None = None) -> datetime:
    """The first tick strictly after `after` (UTC), for the runner to sleep until.

    With an `anchor`, ticks before it do not exist (the automation did not exist yet);
    an `every` schedule needs one, since it defines the phase.
    """
    after = _utc(after, "after")
    if isinstance(schedule, EverySchedule):
        start = _utc(_require_anchor(anchor), "anchor")
        if after < start:
            return start
        return start + ((after - start) // schedule.interval + 1) * schedule.interval
    if anchor is not None:
        start = _utc(anchor, "anchor")
        if after < start:
            after = start - timedelta(microseconds=1)  # so a tick at the anchor itself counts
    return _cron_next(schedule, after)


def latest_at_or_before(
    schedule: Schedule, now: datetime, anchor: datetime | None = None
) -> datetime | None:
    """The most recent tick at or before `now` (UTC); None when there is none since `anchor`."""
    now = _utc(now, "now")
    if isinstance(schedule, EverySchedule):
        start = _utc(_require_anchor(anchor), "anchor")
        if now < start:
            return None
        return start + ((now - start) // schedule.interval) * schedule.interval
    latest = _cron_latest(schedule, now)
    if anchor is not None and latest < _utc(anchor, "anchor"):
        return None
    return latest


def due(
    schedule: Schedule, last_fired: datetime | None, now: datetime, anchor: datetime
) -> Tick | None:
    """What to fire now, if anything.

    Only the latest tick at or before `now` is considered, so ticks missed while the runner was
    down fire once on start, not once each. `last_fired` is the `scheduled_at` of the last tick
    fired (its `fired_at` gives the same answer); None means never fired, and then only ticks at
    or after `anchor` count.
    """
    now = _utc(now, "now")
    latest = latest_at_or_before(schedule, now, anchor)
    if latest is None:
        return None
    if last_fired is not None and latest <= _utc(last_fired, "last_fired"):
        return None
    return Tick(scheduled_at=latest, fired_at=now)


def dedupe_key(automation_ref: str, tick: Tick) -> str:
    """Same automation and same scheduled instant → same key, so two replicas make one run."""
    return f"schedule:{automation_ref}@{iso_utc(tick.scheduled_at)}"


# --- cron on a wall clock --------------------------------------------------------------------


def _cron_next(schedule: CronSchedule, after: datetime) -> datetime:
    """Walk matching wall times forward until one maps past `after`.

    Starting at `after`'s wall time is enough: the wall→instant map is non-decreasing, and in
    a repeated hour the few wall times it revisits map to instants already past.
    """
    walls = croniter(schedule.expression, _wall(after, schedule.zone))
    while True:
        wall: datetime = walls.get_next(datetime)
        moment = _wall_to_utc(wall, schedule.zone)
        if moment > after:
            return moment


def _cron_latest(schedule: CronSchedule, now: datetime) -> datetime:
    """Walk matching wall times backward from just past `now` until one maps at or before it.

    The start uses the larger of the offsets now and a day ago: just after a fall-back, wall
    times up to that far ahead of `now`'s wall clock may already have happened.
    """
    offset = max(_offset(now, schedule.zone), _offset(now - _ONE_DAY, schedule.zone))
    start = now.replace(tzinfo=None) + offset + _ONE_MINUTE
    walls = croniter(schedule.expression, start)
    while True:
        wall: datetime = walls.get_prev(datetime)
        moment = _wall_to_utc(wall, schedule.zone)
        if moment <= now:
            return moment


def _wall_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive wall time happens: its first occurrence, or the end of a DST gap."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first
    # In a gap, fold=1 reads the wall time with the later (larger) offset, landing before the
    # transition, and fold=0 lands after it: bisect to the transition to the second.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after_offset = _offset(first, zone)
    low, high = before, first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if _offset(middle, zone) == after_offset:
            high = middle
        else:
            low = middle
    return high


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _offset(moment: datetime, zone: tzinfo) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    return offset if offset is not None else timedelta(0)


# --- reading inputs --------------------------------------------------------------------------


def _cron_expression(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"schedule `cron`: expected a cron expression string, got {raw!r}")
    expression = " ".join(raw.split())
    fields = len(expression.split(" "))
    if fields != 5:
        raise ValueError(
            f"schedule `cron`: {raw!r} has {fields} fields; write 5: minute hour day month weekday"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"schedule `cron`: invalid cron expression {raw!r}")
    try:
        croniter(expression, _PROBE).get_next(datetime)
    except CroniterError as exc:
        raise ValueError(f"schedule `cron`: {raw!r} never matches a real date") from exc
    return expression


def _zone(raw: Any) -> ZoneInfo:
    if raw is None:
        return ZoneInfo("UTC")
    if not isinstance(raw, str):
        raise ValueError(f"schedule `timezone`: expected an IANA zone name, got {raw!r}")
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"schedule `timezone`: unknown time zone {raw!r}; use an IANA name like Europe/Paris"
        ) from exc


def _interval(raw: Any) -> timedelta:
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        raise ValueError(
            f"schedule `every`: invalid duration {raw!r}; write a number and a unit, e.g. 15m"
        ) from exc
    interval = timedelta(microseconds=round(seconds * 1_000_000))
    if interval < MIN_INTERVAL:
        raise ValueError(f"schedule `every`: {raw!r} is shorter than the 1s minimum")
    return interval


def _require_anchor(anchor: datetime | None) -> datetime:
    if anchor is None:
        raise ValueError("an `every` schedule needs its anchor: the instant it was first scheduled")
    return anchor


def _utc(moment: datetime, name: str) -> datetime:
    """Refuse naive datetimes: a guess at their zone would shift every tick silently."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)
