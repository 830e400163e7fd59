"""Schedule triggers through the real engine and SQLite, with the clock injected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import compile_env, copy_project

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.records import RunQuery
from rollout_yaml.store.sqlite import SQLiteStore

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


async def _runtime(project: Path, app: AppServer, db: Path, clock: Clock) -> Runtime:
    store = SQLiteStore(db)
    await store.open()
    runtime = Runtime(compile_env(project, app.url), store, clock=clock)
    await runtime.start(claim=False)
    return runtime


async def _texts(runtime: Runtime, app: AppServer, count: int) -> list[str]:
    await asyncio.to_thread(app.wait_for, count)
    await asyncio.sleep(0.2)
    return sorted(r.json()["text"] for r in app.requests)


def test_cron_fires_on_the_minute_in_its_timezone(
    project: Path, app: AppServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = Clock(datetime(2026, 7, 1, 6, 58, tzinfo=UTC))  # 08:58 in Paris (summer)
        runtime = await _runtime(project, app, tmp_path / "s.db", clock)
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


def test_ticks_missed_while_down_fire_once(project: Path, app: AppServer, tmp_path: Path) -> None:
    async def scenario() -> None:
        start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
        clock = Clock(start)
        first = await _runtime(project, app, tmp_path / "s.db", clock)
        await first.scheduler.fire_due()  # anchors the heartbeat at 10:00
        await first.stop()
        await first.store.close()
        # down across three heartbeat ticks (10:01, 10:02, 10:03), back at 10:03:30
        clock.now = start + timedelta(minutes=3, seconds=30)
        second = await _runtime(project, app, tmp_path / "s.db", clock)
        assert await second.scheduler.fire_due() == 1
        assert await second.scheduler.fire_due() == 0
        assert await _texts(second, app, 1) == ["beat 2026-01-05T10:03:00.000Z"]
        runs = await second.store.list_runs(RunQuery(automation="heartbeat"))
        assert len(runs) == 1
        await second.stop()
        await second.store.close()

    asyncio.run(scenario())


def test_a_tick_fired_twice_makes_one_run(project: Path, app: AppServer, tmp_path: Path) -> None:
    # As after a crash between storing the event and saving the schedule's state.
    async def scenario() -> None:
        start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
        clock = Clock(start)
        runtime = await _runtime(project, app, tmp_path / "s.db", clock)
        await runtime.scheduler.fire_due()
        clock.now = start + timedelta(minutes=1, seconds=5)
        assert await runtime.scheduler.fire_due() == 1
        # the state as it was before that tick, the tick's event already stored
        await runtime.store.save_state(
            "schedule:acme/heartbeat",
            {"anchor": "2026-01-05T10:00:00.000Z", "last_fired": "2026-01-05T10:00:00.000Z"},
        )
        restarted = await _runtime_on(runtime.store, project, app, clock)
        assert await restarted.scheduler.fire_due() == 1  # fired again…
        runs = await runtime.store.list_runs(RunQuery(automation="heartbeat"))
        assert len(runs) == 1  # …but the same tick makes no second run
        await restarted.stop()
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())


async def _runtime_on(store: SQLiteStore, project: Path, app: AppServer, clock: Clock) -> Runtime:
    runtime = Runtime(compile_env(project, app.url), store, clock=clock)
    await runtime.start(claim=False)
    return runtime
