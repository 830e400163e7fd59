"""The engine in-process, on a real SQLite file and a real PostgreSQL database (each test runs on
both), sending to a real HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import SECRETS, compile_env, copy_project

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunQuery, RunStatus


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True, "ok": True})
    yield server
    server.stop()


async def _runtime(tmp_path: Path, app: AppServer, database: str) -> Runtime:
    env = compile_env(copy_project(tmp_path), app.url)
    store = open_store(database, tmp_path)
    await store.open()
    runtime = Runtime(env, store)
    await runtime.start()
    return runtime


async def _wait_status(
    runtime: Runtime, run_id: str, *statuses: RunStatus, timeout: float = 15
) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = await runtime.store.get_run(run_id)
        if run is not None and run.status in statuses:
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {statuses}")


def _order(order_id: int, total: float = 25.0, **extra: object) -> PushEvent:
    return PushEvent(
        "partner",
        "order-created",
        None,
        {"order_id": order_id, "total": total, "customer": {"name": "Ada"}, **extra},
    )


def test_event_reaches_the_app_with_mapping_and_auth(
    tmp_path: Path, app: AppServer, database: str
) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, app, database)
        result = await runtime.push("acme", [_order(7)])
        assert result.runs_queued == 1
        got = (await asyncio.to_thread(app.wait_for, 1))[0]
        assert got.path == "/orders/7"
        assert got.json() == {"text": "Order 7 by Ada: 25.0"}
        assert got.headers["Authorization"] == f"Bearer {SECRETS['ACME_SINK_TOKEN']}"
        runs = await runtime.store.list_runs(RunQuery(consumer="acme"))
        run = await _wait_status(runtime, runs[0].id, RunStatus.SUCCEEDED)
        full = await runtime.store.get_run(run.id)  # type: ignore[attr-defined]
        assert full is not None and full.output == {"received": True}
        attempt = full.attempt_log[0]
        assert attempt.request["headers"]["Authorization"] == "Bearer ***"
        assert got.headers["Idempotency-Key"] == full.id
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())


def test_same_event_id_three_times_makes_one_run(
    tmp_path: Path, app: AppServer, database: str
) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, app, database)
        event = PushEvent("partner", "order-created", "order-9", {"order_id": 9, "total": 50})
        results = [await runtime.push("acme", [event]) for _ in range(3)]
        assert [r.runs_queued for r in results] == [1, 0, 0]
        assert len({r.event_ids[0] for r in results}) == 1
        await asyncio.to_thread(app.wait_for, 1)
        await asyncio.sleep(0.3)
        assert len(app.requests) == 1
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())


def test_filter_says_no_records_a_filtered_run(
    tmp_path: Path, app: AppServer, database: str
) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, app, database)
        result = await runtime.push("acme", [_order(1, total=5)])
        assert result.runs_queued == 0
        runs = await runtime.store.list_runs(RunQuery(consumer="acme"))
        assert [r.status for r in runs] == [RunStatus.FILTERED]
        await asyncio.sleep(0.2)
        assert app.requests == []
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())


def test_503_twice_then_200_succeeds_on_the_third_attempt(
    tmp_path: Path, app: AppServer, database: str
) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, app, database)
        app.answer(
            Answer(503, {"error": {"message": "busy"}}), Answer(503, {"error": {"message": "busy"}})
        )
        await runtime.push("acme", [_order(3)])
        runs = await runtime.store.list_runs(RunQuery(consumer="acme"))
        run = await _wait_status(runtime, runs[0].id, RunStatus.SUCCEEDED, RunStatus.FAILED)
        full = await runtime.store.get_run(run.id)  # type: ignore[attr-defined]
        assert full is not None and full.status == RunStatus.SUCCEEDED
        assert full.attempts == 3
        assert [a.response["status"] for a in full.attempt_log] == [503, 503, 200]
        keys = {r.headers["Idempotency-Key"] for r in app.requests}
        assert keys == {full.id}
        await runtime.stop()
        await runtime.store.close()

    asyncio.run(scenario())
