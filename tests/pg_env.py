"""A PostgreSQL database of its own for each test, created from the server the suite is
pointed at (ROLLOUT_TEST_POSTGRES_URL) and dropped afterwards, so parallel sessions and reruns
never see each other's rows.

Without a server the PostgreSQL variants skip, except under CI=true, where they fail: CI runs
a server, and a suite that silently skipped half its backends would prove nothing.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

SERVER_URL = os.environ.get(
    "ROLLOUT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(SERVER_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@functools.cache
def unreachable() -> str | None:
    """Why the test server cannot be used, or None when it can."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require_postgres() -> None:
    why = unreachable()
    if why is None:
        return
    message = f"PostgreSQL at {make_url(SERVER_URL)!s} is not reachable ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database, dropped when the block ends."""
    require_postgres()
    name = f"rollout_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _dsn(str(make_url(SERVER_URL).set(database=name)))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of one query, read straight from the database (what an operator would check)."""

    async def go() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(go())
