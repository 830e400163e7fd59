"""The watcher on real folders: configuration edits reload, database writes do not."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from rollout_yaml.daemon.watch import Watcher


async def _watch(env: Path, edit: object) -> int:
    reloads = 0

    async def reload(_changed: frozenset[Path]) -> None:
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


def test_one_written_consumer_file_reloads_without_waiting_out_the_burst_window(
    tmp_path: Path,
) -> None:
    """With a 5 s burst window: a consumer file written and closed reloads long before it;
    a settings edit (every consumer) waits the window out."""
    env = _env(tmp_path)

    async def first_reload(edit: Path) -> frozenset[Path] | None:
        reloaded: asyncio.Future[frozenset[Path]] = asyncio.get_running_loop().create_future()

        async def reload(changed: frozenset[Path]) -> None:
            if not reloaded.done():
                reloaded.set_result(changed)

        watcher = Watcher([env], reload, settle=5.0)
        watcher.start()
        try:
            await asyncio.sleep(0.2)
            edit.write_text(edit.read_text() + "\n" if edit.exists() else "consumer: acme\n")
            try:
                return await asyncio.wait_for(reloaded, 2.0)
            except TimeoutError:
                return None
        finally:
            watcher.stop()

    consumer = env / "consumers" / "acme.yaml"
    assert asyncio.run(first_reload(consumer)) == frozenset({consumer})
    assert asyncio.run(first_reload(env / "environment.yaml")) is None  # still settling


def test_a_file_saved_before_the_watcher_started_is_reloaded_at_start(tmp_path: Path) -> None:
    """A process of a multi-process daemon starts watching a moment after the configuration
    was read: what was saved in between reloads at once; what was older does not."""
    env = _env(tmp_path)
    old = env / "consumers" / "old.yaml"
    old.write_text("consumer: old\n")
    os.utime(old, (time.time() - 60, time.time() - 60))
    os.utime(env / "environment.yaml", (time.time() - 60, time.time() - 60))
    read_at = time.time()
    saved = env / "consumers" / "acme.yaml"
    saved.write_text("consumer: acme\n")

    async def run() -> list[frozenset[Path]]:
        reloads: list[frozenset[Path]] = []

        async def reload(changed: frozenset[Path]) -> None:
            reloads.append(changed)

        watcher = Watcher([env], reload, settle=0.05)
        watcher.start()
        try:
            watcher.catch_up(read_at)
            await asyncio.sleep(0.5)
        finally:
            watcher.stop()
        return reloads

    assert asyncio.run(run()) == [frozenset({saved})]
