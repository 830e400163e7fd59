"""`runtime.dry_run: true` sends nothing to Apps: not actions, not polls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from list_server import ListServer
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import compile_env, copy_project

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.factory import open_store


@pytest.fixture
def shop() -> Iterator[ListServer]:
    server = ListServer(5).start()
    yield server
    server.stop()


def _poll_once(project: Path, database: str) -> int:
    async def main() -> int:
        env = compile_env(project, "http://127.0.0.1:9")
        store = open_store(database, project / "environments" / "test")
        await store.open()
        runtime = Runtime(env, store)
        try:
            return await runtime.poller.poll_due()
        finally:
            await runtime.poller.close()
            await runtime.clients.close()
            await store.close()

    return asyncio.run(main())


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_dry_run_polls_nothing(
    dry_run: bool, tmp_path: Path, shop: ListServer, database: str
) -> None:
    project = copy_project(tmp_path)
    write_shop(project, shop.url, {"items": trigger("cursor", initial="emit")})
    write_automations(project, {"items-to-sink": automation("items")})
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(
        env_file.read_text().replace("dry_run: false", f"dry_run: {str(dry_run).lower()}")
    )
    polls = _poll_once(project, database)
    assert (polls, len(shop.requests)) == ((0, 0) if dry_run else (1, 1))
