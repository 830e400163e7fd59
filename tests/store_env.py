"""Stores for in-process tests of several replicas, on either backend of the `database` fixture."""

from __future__ import annotations

from pathlib import Path

from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store


async def replica_stores(database: str, env_dir: Path, count: int = 2) -> list[Store]:
    """The opened stores of `count` replicas of one environment. On PostgreSQL each replica has
    its own store (its own connections), as separate processes would. On SQLite they share one:
    only one process may open a SQLite file (the store takes a lock), so several runtimes on
    one file exist only inside one process."""
    if not database.startswith("sqlite"):
        stores = [open_store(database, env_dir) for _ in range(count)]
        for store in stores:
            await store.open()
        return stores
    shared = open_store(database, env_dir)
    await shared.open()
    return [shared] * count


async def close_stores(stores: list[Store]) -> None:
    for store in {id(s): s for s in stores}.values():
        await store.close()
