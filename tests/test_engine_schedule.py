"""The schedule App's firing rules, with time always injected: nothing here sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from rollout_yaml.engine.schedule import (
    CronSchedule,
    EverySchedule,
    Schedule,
    Tick,
    dedupe_key,
    due,
    latest_at_or_before,
    next_after,
    schedule_from_input,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def cron(expression: str, zone: str | None = None) -> Schedule:
    inputs = {"cron": expression} if zone is None else {"cron": expression, "timezone": zone}
    return schedule_from_input("cron", inputs)


def ticks(
    schedule: Schedule, after: datetime, count: int, anchor: datetime | None = None
) -> list[datetime]:
    found: list[datetime] = []
    for _ in range(count):
        after = next_after(schedule, after, anchor)
        found.append(after)
    return found


# --- building schedules ----------------------------------------------------------------------


def test_cron_input_defaults_to_utc_and_every_parses_the_duration() -> None:
    assert cron("0 9 * * 1-5") == CronSchedule("0 9 * * 1-5", ZoneInfo("UTC"))
    assert cron("0  9 * *   1-5", PARIS) == CronSchedule("0 9 * * 1-5", ZoneInfo(PARIS))
    assert schedule_from_input("every", {"every": "15m"}) == EverySchedule(timedelta(minutes=15))
    assert schedule_from_input("every", {"every": "1000ms"}) == EverySchedule(timedelta(seconds=1))


@pytest.mark.parametrize(
    ("trigger", "inputs", "named"),
    [
        ("cron", {"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ("cron", {"cron": "not a cron at all"}, "invalid cron expression 'not a cron at all'"),
        ("cron", {"cron": "* * * *"}, "'* * * *' has 4 fields"),
        ("cron", {"cron": "0 0 * * * *"}, "has 6 fields"),
        ("cron", {"cron": "0 0 30 2 *"}, "'0 0 30 2 *' never matches"),
        ("cron", {"cron": 5}, "expected a cron expression string, got 5"),
        ("cron", {}, "expected a cron expression string, got None"),
        ("cron", {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/"),
        ("cron", {"cron": "0 9 * * *", "timezone": ""}, "unknown time zone ''"),
        ("cron", {"cron": "0 9 * * *", "timezone": 1}, "expected an IANA zone name, got 1"),
        ("every", {"every": "0s"}, "'0s' is shorter than the 1s minimum"),
        ("every", {"every": "500ms"}, "'500ms' is shorter than the 1s minimum"),
        ("every", {"every": "soon"}, "invalid duration 'soon'"),
        ("every", {"every": 15}, "invalid duration 15"),
        ("hourly", {}, "unknown trigger 'hourly'"),
    ],
)
def test_invalid_inputs_raise_a_value_error_naming_the_problem(
    trigger: str, inputs: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match="schedule") as caught:
        schedule_from_input(trigger, inputs)
    assert named in str(caught.value)


# --- cron: the right minute in the right zone ------------------------------------------------


def test_cron_in_utc_fires_on_the_minute() -> None:
    daily = cron("0 9 * * *")
    assert next_after(daily, utc(2024, 5, 1, 8, 59, 59)) == utc(2024, 5, 1, 9)
    assert next_after(daily, utc(2024, 5, 1, 9)) == utc(2024, 5, 2, 9)  # strictly after
    assert next_after(daily, utc(2024, 5, 1, 9)).tzinfo is UTC


def test_cron_every_fifteen_minutes() -> None:
    quarter = cron("*/15 * * * *")
    assert ticks(quarter, utc(2024, 5, 1, 10, 7), 4) == [
        utc(2024, 5, 1, 10, 15),
        utc(2024, 5, 1, 10, 30),
        utc(2024, 5, 1, 10, 45),
        utc(2024, 5, 1, 11, 0),
    ]


def test_weekday_range_skips_the_weekend() -> None:
    weekdays = cron("0 9 * * 1-5")
    # Friday 2024-05-03 after 09:00 → Monday 2024-05-06.
    assert next_after(weekdays, utc(2024, 5, 3, 9, 30)) == utc(2024, 5, 6, 9)
    assert next_after(cron("0 9 * * mon-fri"), utc(2024, 5, 3, 9, 30)) == utc(2024, 5, 6, 9)


def test_paris_weekday_mornings_across_the_spring_switch() -> None:
    # 09:00 CET = 08:00 UTC before 2024-03-31; 09:00 CEST = 07:00 UTC after.
    schedule = cron("0 9 * * 1-5", PARIS)
    assert ticks(schedule, utc(2024, 3, 28, 12), 2) == [
        utc(2024, 3, 29, 8),  # Friday, winter time
        utc(2024, 4, 1, 7),  # Monday, summer time
    ]


def test_paris_weekday_mornings_across_the_autumn_switch() -> None:
    # Clocks go back on Sunday 2024-10-27.
    schedule = cron("0 9 * * 1-5", PARIS)
    assert ticks(schedule, utc(2024, 10, 24, 12), 2) == [
        utc(2024, 10, 25, 7),  # Friday, summer time
        utc(2024, 10, 28, 8),  # Monday, winter time
    ]


def test_new_york_follows_its_own_switch_dates() -> None:
    # US DST starts 2024-03-10, two weeks before Europe: 08:30 EST = 13:30 UTC, EDT = 12:30 UTC.
    schedule = cron("30 8 * * *", NEW_YORK)
    assert ticks(schedule, utc(2024, 3, 9, 0), 2) == [
        utc(2024, 3, 9, 13, 30),
        utc(2024, 3, 10, 12, 30),
    ]
    assert ticks(schedule, utc(2024, 11, 2, 0), 2) == [
        utc(2024, 11, 2, 12, 30),
        utc(2024, 11, 3, 13, 30),
    ]


def test_anchor_hides_cron_ticks_before_the_automation_existed() -> None:
    quarter = cron("*/15 * * * *")
    anchor = utc(2024, 5, 1, 10, 7)
    assert next_after(quarter, utc(2024, 5, 1, 9), anchor) == utc(2024, 5, 1, 10, 15)
    at_tick = utc(2024, 5, 1, 10, 15)
    assert next_after(quarter, utc(2024, 5, 1, 9), at_tick) == at_tick  # the anchor tick counts


# --- DST edges --------------------------------------------------------------------------------


def test_spring_forward_skipped_time_fires_once_when_clocks_jump() -> None:
    # Paris 2024-03-31: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 never happens.
    schedule = cron("30 2 * * *", PARIS)
    assert ticks(schedule, utc(2024, 3, 30, 12), 3) == [
        utc(2024, 3, 31, 1),  # 03:00 CEST, the first valid instant after the gap
        utc(2024, 4, 1, 0, 30),  # 02:30 CEST again from the next day
        utc(2024, 4, 2, 0, 30),
    ]
    # The same instant croniter itself picks for a skipped wall time (03:00 CEST).
    start = utc(2024, 3, 30, 12).astimezone(ZoneInfo(PARIS))
    picked = croniter("30 2 * * *", start).get_next(datetime)
    assert picked.astimezone(UTC) == utc(2024, 3, 31, 1)


def test_spring_forward_gap_ticks_merge_into_one_at_the_jump() -> None:
    # 02:00, 02:15, 02:30, 02:45 and 03:00 CEST all land on 01:00 UTC: one tick, not five.
    schedule = cron("*/15 * * * *", PARIS)
    assert ticks(schedule, utc(2024, 3, 31, 0, 30), 4) == [
        utc(2024, 3, 31, 0, 45),  # 01:45 CET
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST
        utc(2024, 3, 31, 1, 15),
        utc(2024, 3, 31, 1, 30),
    ]
    # New York skips 02:00-03:00 EST on 2024-03-10 at 07:00 UTC.
    assert next_after(cron("30 2 * * *", NEW_YORK), utc(2024, 3, 10, 0)) == utc(2024, 3, 10, 7)


def test_fall_back_repeated_time_fires_once_at_its_first_occurrence() -> None:
    # Paris 2024-10-27: 03:00 CEST goes back to 02:00 CET at 01:00 UTC; 02:30 happens twice.
    schedule = cron("30 2 * * *", PARIS)
    assert ticks(schedule, utc(2024, 10, 26, 12), 2) == [
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST, the first one
        utc(2024, 10, 28, 1, 30),  # next day, not 02:30 CET on the 27th
    ]
    # From inside the repeated hour (02:10 CET), the 02:30 tick is already behind us.
    assert next_after(schedule, utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 28, 1, 30)
    assert latest_at_or_before(schedule, utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 27, 0, 30)
    anchor = utc(2024, 1, 1)
    last = utc(2024, 10, 27, 0, 30)
    assert due(schedule, last, utc(2024, 10, 27, 1, 45), anchor) is None


def test_fall_back_hourly_does_not_repeat_the_wall_hour() -> None:
    # A consequence of "each wall time once": 02:00 CET (01:00 UTC) does not fire again.
    schedule = cron("0 * * * *", PARIS)
    assert ticks(schedule, utc(2024, 10, 26, 23, 30), 3) == [
        utc(2024, 10, 27, 0),  # 02:00 CEST
        utc(2024, 10, 27, 2),  # 03:00 CET
        utc(2024, 10, 27, 3),
    ]


@pytest.mark.parametrize("around", [utc(2024, 3, 31, 1), utc(2024, 10, 27, 1)])
def test_forward_and_backward_walks_agree_around_transitions(around: datetime) -> None:
    schedule = cron("*/15 * * * *", PARIS)
    anchor = utc(2024, 1, 1)
    now = around - timedelta(hours=3)
    while now < around + timedelta(hours=3):
        latest = latest_at_or_before(schedule, now, anchor)
        assert latest is not None
        assert latest <= now < next_after(schedule, latest)
        now += timedelta(minutes=7)


# --- every: aligned to the anchor -------------------------------------------------------------


def test_every_is_aligned_to_the_anchor() -> None:
    every = schedule_from_input("every", {"every": "15m"})
    anchor = utc(2024, 5, 1, 10, 3, 20)
    assert next_after(every, utc(2024, 5, 1, 9), anchor) == anchor
    assert next_after(every, anchor, anchor) == utc(2024, 5, 1, 10, 18, 20)
    assert next_after(every, utc(2024, 5, 1, 10, 5), anchor) == utc(2024, 5, 1, 10, 18, 20)
    # A restart much later keeps the same phase: no drift from when the runner came back.
    assert next_after(every, utc(2024, 5, 9, 17, 41, 7), anchor) == utc(2024, 5, 9, 17, 48, 20)


def test_every_without_anchor_is_refused() -> None:
    every = schedule_from_input("every", {"every": "15m"})
    with pytest.raises(ValueError, match="anchor"):
        next_after(every, utc(2024, 5, 1))


# --- due: what to fire now ----------------------------------------------------------------------


def test_runner_down_across_three_ticks_fires_the_latest_once() -> None:
    every = schedule_from_input("every", {"every": "15m"})
    anchor = utc(2024, 5, 1, 10)
    # Fired at 10:00, then down through 10:15, 10:30 and 10:45; back at 10:50.
    tick = due(every, utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 50), anchor)
    assert tick == Tick(scheduled_at=utc(2024, 5, 1, 10, 45), fired_at=utc(2024, 5, 1, 10, 50))
    assert due(every, tick.scheduled_at, utc(2024, 5, 1, 10, 51), anchor) is None
    assert due(every, tick.scheduled_at, utc(2024, 5, 1, 10, 59, 59), anchor) is None
    again = due(every, tick.scheduled_at, utc(2024, 5, 1, 11), anchor)
    assert again is not None and again.scheduled_at == utc(2024, 5, 1, 11)


def test_cron_missed_ticks_fire_once_too() -> None:
    weekdays = cron("0 9 * * 1-5", PARIS)
    anchor = utc(2024, 1, 1)
    # Last fired Monday 2024-06-03 07:00 UTC; down until Thursday noon: Tue, Wed, Thu missed.
    tick = due(weekdays, utc(2024, 6, 3, 7), utc(2024, 6, 6, 12), anchor)
    assert tick is not None and tick.scheduled_at == utc(2024, 6, 6, 7)
    assert due(weekdays, tick.scheduled_at, utc(2024, 6, 6, 12, 1), anchor) is None
    # Using fired_at as last_fired gives the same answer.
    assert due(weekdays, tick.fired_at, utc(2024, 6, 6, 12, 1), anchor) is None


def test_not_yet_due_is_none() -> None:
    every = schedule_from_input("every", {"every": "15m"})
    anchor = utc(2024, 5, 1, 10)
    assert due(every, utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 14, 59), anchor) is None
    assert due(cron("0 9 * * *"), utc(2024, 5, 1, 9), utc(2024, 5, 2, 8, 59), anchor) is None


def test_never_fired_counts_only_ticks_at_or_after_the_anchor() -> None:
    quarter = cron("*/15 * * * *")
    anchor = utc(2024, 5, 1, 10, 7)
    assert due(quarter, None, utc(2024, 5, 1, 10, 10), anchor) is None  # 10:00 predates it
    tick = due(quarter, None, utc(2024, 5, 1, 10, 15, 2), anchor)
    assert tick is not None and tick.scheduled_at == utc(2024, 5, 1, 10, 15)
    # An `every` schedule's first tick is its anchor.
    every = schedule_from_input("every", {"every": "1h"})
    assert due(every, None, anchor - timedelta(seconds=1), anchor) is None
    first = due(every, None, anchor, anchor)
    assert first == Tick(scheduled_at=anchor, fired_at=anchor)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after(cron("0 9 * * *"), datetime(2024, 5, 1))
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        due(cron("0 9 * * *"), None, datetime(2024, 5, 1), utc(2024, 1, 1))


# --- payload and dedupe -----------------------------------------------------------------------


def test_payload_is_iso_utc_with_z() -> None:
    paris = ZoneInfo(PARIS)
    tick = Tick(
        scheduled_at=datetime(2024, 4, 1, 9, tzinfo=paris),
        fired_at=utc(2024, 4, 1, 7, 0, 1) + timedelta(microseconds=250_000),
    )
    payload = tick.payload()
    assert payload == {
        "scheduled_at": "2024-04-01T07:00:00.000Z",
        "fired_at": "2024-04-01T07:00:01.250Z",
    }
    parsed = datetime.fromisoformat(payload["scheduled_at"].replace("Z", "+00:00"))
    assert parsed == tick.scheduled_at


def test_dedupe_key_is_stable_per_automation_and_tick() -> None:
    tick = Tick(utc(2024, 5, 1, 10, 15), utc(2024, 5, 1, 10, 15, 1))
    replica = Tick(utc(2024, 5, 1, 10, 15).astimezone(ZoneInfo(PARIS)), utc(2024, 5, 1, 10, 15, 3))
    later = Tick(utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 10, 30))
    assert dedupe_key("acme/daily-report", tick) == dedupe_key("acme/daily-report", replica)
    assert dedupe_key("acme/daily-report", tick) != dedupe_key("acme/daily-report", later)
    assert dedupe_key("acme/daily-report", tick) != dedupe_key("acme/other", tick)
