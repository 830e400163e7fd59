"""Stores for in-process tests of several replicas, on either backend of the `database` fixture."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.postgres import async_url

T = TypeVar("T")
RELEASE_1 = Path(__file__).parent / "fixtures" / "migrations"
"""The first release's own DDL, one file per backend."""


def on_database(database: str, step: Callable[[sa.Connection], T]) -> T:
    """`step` run in one transaction on the database, whichever backend it is (for tests that
    build or inspect a database below the store)."""
    if database.startswith("sqlite"):
        engine = sa.create_engine(database)
        try:
            with engine.begin() as conn:
                return step(conn)
        finally:
            engine.dispose()

    async def go() -> T:
        engine = create_async_engine(async_url(database))
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(step)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def release_1(conn: sa.Connection) -> None:
    """The database as the first release left it, from that release's own DDL, with rows."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    ddl = (RELEASE_1 / f"release_1.{dialect}.sql").read_text()
    lines = [line for line in ddl.splitlines() if not line.startswith("--")]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            conn.execute(sa.text(statement))
    conn.execute(
        sa.text(
            "INSERT INTO events VALUES ('evt_1', 'acme', 'partner', 'order-created', 'k1', "
            "'{\"order_id\": 1}', 1.0, 'push')"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO runs (id, consumer, automation, event_id, event_key, status, attempts, "
            "created_at, updated_at, finished_at) VALUES ('run_1', 'acme', 'orders', 'evt_1', "
            "'k1', 'succeeded', 1, 1.0, 1.0, 1.0)"
        )
    )
    conn.execute(
        sa.text("INSERT INTO credentials VALUES ('acme', 'crm', 'crm', :secret, 'active', 1.0)"),
        {"secret": b"\x00ciphertext"},
    )


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
