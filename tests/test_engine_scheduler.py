"""Schedule triggers through the real engine on SQLite and PostgreSQL, with the clock injected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import compile_env, copy_project

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunQuery

SCHEDULES = """
  morning-report:
    trigger: { app: schedule, trigger: cron, input: { cron: "0 9 * * *", timezone: Europe/Paris } }
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: 1, text: "report for {{ payload.scheduled_at }}" }
  heartbeat:
    trigger: { app: schedule, trigger: every, input: { every: 1m } }
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: 2, text: "beat {{ payload.scheduled_at }}" }
"""


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True})
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = copy_project(tmp_path)
    consumer = root / "environments/test/consumers/acme.yaml"
    consumer.write_text(consumer.read_text() + SCHEDULES)
    return root


async def _runtime(project: Path, app: AppServer, database: str, clock: Clock) -> Runtime:
    store = open_store(database, project)
    await store.open()
    runtime = Runtime(compile_env(project, app.url), store, clock=clock)
    await runtime.start(claim=False)
    return runtime


async def _texts(runtime: Runtime, app: AppServer, count: int) -> list[str]:
    await asyncio.to_thread(app.wait_for, count)
    await asyncio.sleep(0.2)
    return sorted(r.json()["text"] for r in app.requests)


def test_cron_fires_on_the_minute_in_its_timezone(
    project: Path, app: AppServer, database: str
) -> None:
    async def scenario() -> None:
        clock = Clock(datetime(2026, 7, 1, 6, 58, tzinfo=UTC))  # 08:58 in Paris (summer)
        runtime = await _runtime(project, app, database, clock)
        assert await runtime.scheduler.fire_due() == 0  # they start counting, nothing fires
        clock.now = datetime(2026, 7, 1, 6, 59, 59, tzinfo=UTC)
        assert await runtime.scheduler.fire_due() == 1  # the heartbeat (06:59) only
        clock.now = datetime(2026, 7, 1, 7, 0, 1, tzinfo=UTC)  # 09:00:01 in Paris
        assert await runtime.scheduler.fire_due() == 2
        assert await runtime.scheduler.fire_due() == 0  # nothing twice
        texts = await _texts(runtime, app, 3)
        assert "report for 2026-07-01T07:00:00.000Z" in texts
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())


def test_ticks_missed_while_down_fire_once(project: Path, app: AppServer, database: str) -> None:
    async def scenario() -> None:
        start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
        clock = Clock(start)
        first = await _runtime(project, app, database, clock)
        await first.scheduler.fire_due()  # anchors the heartbeat at 10:00
        await first.stop()
        await first.store.close()
        # down across three heartbeat ticks (10:01, 10:02, 10:03), back at 10:03:30
        clock.now = start + timedelta(minutes=3, seconds=30)
        second = await _runtime(project, app, database, clock)
        assert await second.scheduler.fire_due() == 1
        assert await second.scheduler.fire_due() == 0
        assert await _texts(second, app, 1) == ["beat 2026-01-05T10:03:00.000Z"]
        runs = await second.store.list_runs(RunQuery(automation="heartbeat"))
        assert len(runs) == 1
        await second.stop()
        await second.store.close()

    asyncio.run(scenario())


def test_a_tick_fired_twice_makes_one_run(project: Path, app: AppServer, database: str) -> None:
    # As after a crash between storing the event and saving the schedule's state.
    async def scenario() -> None:
        start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
        clock = Clock(start)
        runtime = await _runtime(project, app, database, clock)
        await runtime.scheduler.fire_due()
        clock.now = start + timedelta(minutes=1, seconds=5)
        assert await runtime.scheduler.fire_due() == 1
        # the state as it was before that tick, the tick's event already stored
        await runtime.store.save_state(
            "schedule:acme/heartbeat",
            {"anchor": "2026-01-05T10:00:00.000Z", "last_fired": "2026-01-05T10:00:00.000Z"},
        )
        await runtime.stop()  # the runner that fired it is gone; another takes over
        restarted = await _runtime_on(runtime.store, project, app, clock)
        assert await restarted.scheduler.fire_due() == 1  # fired again…
        runs = await runtime.store.list_runs(RunQuery(automation="heartbeat"))
        assert len(runs) == 1  # …but the same tick makes no second run
        await restarted.stop()
        await runtime.store.close()

    asyncio.run(scenario())


async def _runtime_on(store: Store, project: Path, app: AppServer, clock: Clock) -> Runtime:
    runtime = Runtime(compile_env(project, app.url), store, clock=clock)
    await runtime.start(claim=False)
    return runtime


def test_three_replicas_fire_each_tick_once(
    project: Path, app: AppServer, pg_database: str
) -> None:
    # Replicas started together on one database: one of them holds the schedules lease and
    # fires; a new `every` automation gets one anchor, so no replica's ticks fall elsewhere.
    async def scenario() -> None:
        start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
        clocks = [Clock(start + timedelta(seconds=i * 7)) for i in range(3)]  # skewed starts
        replicas = [await _runtime(project, app, pg_database, c) for c in clocks]
        fired = 0
        for minute in range(4):
            for second in (0, 20, 40):
                for clock in clocks:
                    clock.now = start + timedelta(minutes=minute, seconds=second + 5)
                fired += sum([await r.scheduler.fire_due() for r in replicas])
        # the holder stops: another replica takes over where it left off
        holder = next(r for r in replicas if r.scheduler._states is not None)
        await holder.stop()
        await holder.store.close()
        rest = [r for r in replicas if r is not holder]
        for clock in clocks:
            clock.now = start + timedelta(minutes=4, seconds=5)
        fired += sum([await r.scheduler.fire_due() for r in rest])
        assert fired == 4  # heartbeat ticks at 10:01:05 … 10:04:05 (anchored at the first pass)
        texts = await _texts(rest[0], app, 4)
        assert texts == [f"beat 2026-01-05T10:0{m}:05.000Z" for m in range(1, 5)]
        runs = await rest[0].store.list_runs(RunQuery(automation="heartbeat"))
        assert len(runs) == 4
        for r in rest:
            await r.stop()
            await r.store.close()

    asyncio.run(scenario())
