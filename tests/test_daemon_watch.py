"""The watcher on real folders: configuration edits reload, database writes do not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rollout_yaml.daemon.watch import Watcher


async def _watch(env: Path, edit: object) -> int:
    reloads = 0

    async def reload() -> None:
        nonlocal reloads
        reloads += 1

    watcher = Watcher([env], reload, settle=0.05)
    watcher.start()
    try:
        await asyncio.sleep(0.2)
        await edit(env)  # type: ignore[operator]
        await asyncio.sleep(0.6)
    finally:
        watcher.stop()
    return reloads


def _env(tmp_path: Path) -> Path:
    env = tmp_path / "environments" / "dev"
    (env / "consumers").mkdir(parents=True)
    (env / ".rollout").mkdir()
    (env / "environment.yaml").write_text("name: dev\n")
    return env


def test_database_writes_do_not_reload(tmp_path: Path) -> None:
    async def write_db(env: Path) -> None:
        for i in range(50):
            (env / ".rollout" / "state.db-wal").write_bytes(b"x" * i)
            (env / ".rollout" / "config.yaml").write_text(f"n: {i}\n")
            await asyncio.sleep(0.005)

    assert asyncio.run(_watch(_env(tmp_path), write_db)) == 0


def test_a_consumer_file_edit_reloads_once(tmp_path: Path) -> None:
    async def save(env: Path) -> None:
        (env / "consumers" / "acme.yaml").write_text("consumer: acme\n")

    assert asyncio.run(_watch(_env(tmp_path), save)) == 1


def test_a_file_in_a_folder_created_while_running_reloads(tmp_path: Path) -> None:
    async def add_release(env: Path) -> None:
        (env / "release" / "connectors").mkdir(parents=True)
        await asyncio.sleep(0.3)  # the folder's own creation reloads once
        (env / "release" / "connectors" / "slack.yaml").write_text("app: slack\n")

    assert asyncio.run(_watch(_env(tmp_path), add_release)) == 2
