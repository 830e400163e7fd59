"""Egress control and rate limits through the whole engine: a real SQLite file or PostgreSQL
database (each test runs on both), the runtime's workers, and a real HTTP server on 127.0.0.1
standing in for the App."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import compile_env, copy_project

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import Run, RunQuery, RunStatus

DONE = (RunStatus.SUCCEEDED, RunStatus.FAILED)


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True, "ok": True})
    yield server
    server.stop()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


async def _runtime(project: Path, app: AppServer, database: str) -> Runtime:
    store = open_store(database, project)
    await store.open()
    runtime = Runtime(compile_env(project, app.url), store)
    await runtime.start()
    return runtime


async def _finished(runtime: Runtime, consumer: str, count: int, timeout: float = 20) -> list[Run]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = await runtime.store.list_runs(RunQuery(consumer=consumer))
        if len(runs) == count and all(r.status in DONE for r in runs):
            return [r for r in [await runtime.store.get_run(r.id) for r in runs] if r]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{consumer}'s runs did not finish")


def _order(order_id: int) -> PushEvent:
    return PushEvent("partner", "order-created", None, {"order_id": order_id, "total": 20})


@pytest.mark.parametrize("allow_private", [False, True])
def test_egress_policy_decides_whether_a_run_reaches_a_loopback_app(
    tmp_path: Path, database: str, app: AppServer, allow_private: bool
) -> None:
    project = copy_project(tmp_path)
    _edit(
        project / "environments" / "test" / "environment.yaml",
        "  workers: 16\n",
        f"  workers: 16\n  egress: {{ allow_private: {str(allow_private).lower()} }}\n",
    )

    async def scenario() -> Run:
        runtime = await _runtime(project, app, database)
        try:
            await runtime.push("acme", [_order(1)])
            return (await _finished(runtime, "acme", 1))[0]
        finally:
            await runtime.stop()
            await runtime.store.close()

    run = asyncio.run(scenario())
    if allow_private:
        assert run.status == RunStatus.SUCCEEDED
        assert len(app.requests) == 1
        return
    assert app.requests == []
    assert run.status == RunStatus.FAILED
    assert run.error_kind == "egress"
    assert run.attempts == 1  # refused at once, not retried
    assert run.error is not None and "127.0.0.1 is loopback" in run.error
    assert "allow_private" in run.error
    (attempt,) = run.attempt_log
    assert attempt.request["url"].startswith(app.url)
    assert attempt.response is None and attempt.error == run.error


def test_rate_limit_spaces_one_credentials_runs_and_leaves_the_workers_to_others(
    tmp_path: Path, database: str, app: AppServer
) -> None:
    """Two workers; acme's credential may send 2 per 2.5 s, five runs are due at once. Runs that
    must wait longer than a moment go back to the queue, so globex's runs (another credential,
    its own quota) are sent at once, and each run still uses one attempt."""
    project = copy_project(tmp_path)
    _edit(
        project / "connectors" / "sink.yaml",
        "auth: { type: bearer }\n",
        "auth: { type: bearer }\nrate_limit: { requests: 2, per: 2.5s }\n",
    )
    _edit(project / "environments" / "test" / "environment.yaml", "workers: 16", "workers: 2")

    async def scenario() -> tuple[list[Run], list[Run], float]:
        runtime = await _runtime(project, app, database)
        try:
            await runtime.push("acme", [_order(i) for i in range(1, 6)])
            await asyncio.sleep(0.3)
            pushed = time.time()
            # two: globex's credential has its own 2 per 2.5 s
            await runtime.push("globex", [_order(11), _order(12)])
            globex = await _finished(runtime, "globex", 2)
            globex_done = time.time() - pushed
            acme = await _finished(runtime, "acme", 5)
            return acme, globex, globex_done
        finally:
            await runtime.stop()
            await runtime.store.close()

    acme, globex, globex_done = asyncio.run(scenario())
    assert [r.status for r in acme + globex] == [RunStatus.SUCCEEDED] * 7
    assert [r.attempts for r in acme] == [1] * 5
    assert [len(r.attempt_log) for r in acme] == [1] * 5
    assert globex_done < 1.5  # not queued behind acme's waits
    acme_stamps = sorted(r.at for r in app.requests if r.path.startswith("/orders/"))
    assert len(acme_stamps) == 5
    # slots at 0, 0, 2.5, 2.5, 5 as the sends leave; the App stamps them on arrival, which a
    # loaded machine delays by a few hundred ms either way (without the limit: a span near 0)
    jitter = 0.3
    assert acme_stamps[-1] - acme_stamps[0] >= 5.0 - jitter
    for earlier, later in zip(acme_stamps, acme_stamps[2:], strict=False):
        assert later - earlier >= 2.5 - jitter  # never three in one window
