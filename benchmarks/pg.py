"""A PostgreSQL database of its own for a benchmark, on the server named by
ROLLOUT_BENCH_POSTGRES_URL (default: ROLLOUT_TEST_POSTGRES_URL, else the local `test` database),
dropped afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get(
    "ROLLOUT_BENCH_POSTGRES_URL",
    os.environ.get("ROLLOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(SERVER_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database() -> Iterator[str]:
    name = f"rollout_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _dsn(str(make_url(SERVER_URL).set(database=name)))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_version() -> str:
    async def go() -> str:
        conn = await asyncpg.connect(_dsn(SERVER_URL), timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(go())
