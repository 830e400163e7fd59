"""Claiming at the speed work is done: a backlog left in the database (a restart after a crash)
is claimed round after round as the workers empty the queue, not one batch per claim interval.

The claim interval is set to a minute here, so a runner that waited it between full claims
would deliver one batch of 4 x workers runs and then nothing for the length of the test."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import compile_env, copy_project

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunStatus

BACKLOG = 600
WORKERS = 16  # runtime.workers of the test project
INTERVAL = 60.0  # longer than the whole test


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True})
    yield server
    server.stop()


def _orders(count: int) -> list[PushEvent]:
    return [
        PushEvent("partner", "order-created", f"o-{i}", {"order_id": i, "total": 20})
        for i in range(count)
    ]


async def _leave_backlog(project: Path, app: AppServer) -> None:
    """Accept BACKLOG events on a runner that never executes them, then let it go as a crash
    would: the runs stay queued in the file, leased to a process that is gone."""
    store = open_store("sqlite", project / "environments/test")
    await store.open()
    crashed = Runtime(compile_env(project, app.url), store)
    for start in range(0, BACKLOG, 100):
        result = await crashed.push("acme", _orders(BACKLOG)[start : start + 100], batch=True)
        assert result.runs_queued == 100
    await store.close()


async def _restarted(project: Path, app: AppServer) -> Runtime:
    store = open_store("sqlite", project / "environments/test")
    await store.open()
    runtime = Runtime(compile_env(project, app.url), store)
    runtime.dispatcher.claim_interval = INTERVAL
    await runtime.start()
    return runtime


def _sample(runtime: Runtime, name: str) -> float:
    value = runtime.metrics.registry.get_sample_value(name)
    assert value is not None
    return value


def test_a_backlog_after_a_restart_is_claimed_as_fast_as_the_workers_take_it(
    tmp_path: Path, app: AppServer
) -> None:
    project = copy_project(tmp_path)

    async def scenario() -> tuple[dict[str, int], float, float, float]:
        await _leave_backlog(project, app)
        started = time.monotonic()
        runtime = await _restarted(project, app)
        try:
            await asyncio.to_thread(app.wait_for, BACKLOG, 40)
            while (counts := await runtime.store.count_by_status()) != {
                str(RunStatus.SUCCEEDED): BACKLOG
            } and time.monotonic() - started < 40:
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            claimed = _sample(runtime, "rollout_runs_claimed_total")
            rounds = _sample(runtime, "rollout_claims_total")
        finally:
            await runtime.stop()
            await runtime.store.close()
        return counts, claimed, rounds, elapsed

    counts, claimed, rounds, elapsed = asyncio.run(scenario())
    assert counts == {str(RunStatus.SUCCEEDED): BACKLOG}
    assert claimed == BACKLOG
    # a round claims at most 4 x workers; all of them ran back to back, within one interval
    assert rounds >= math.ceil(BACKLOG / (4 * WORKERS))
    assert elapsed < INTERVAL
    keys = Counter(r.headers["Idempotency-Key"] for r in app.requests)
    assert len(keys) == BACKLOG and set(keys.values()) == {1}  # one run per event, sent once


def test_a_claim_that_finds_less_than_it_asked_for_waits_the_interval(
    tmp_path: Path, app: AppServer
) -> None:
    project = copy_project(tmp_path)

    async def scenario() -> tuple[float, float]:
        runtime = await _restarted(project, app)
        try:
            await asyncio.sleep(0.3)
            after_start = _sample(runtime, "rollout_claims_total")
            await asyncio.sleep(0.7)
            later = _sample(runtime, "rollout_claims_total")
        finally:
            await runtime.stop()
            await runtime.store.close()
        return after_start, later

    after_start, later = asyncio.run(scenario())
    assert after_start == later == 1  # the first claim found nothing: no second one yet
