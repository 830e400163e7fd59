"""Fixtures shared by the store, engine and trigger tests: each runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from pg_env import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An environment's `database:` setting: a fresh SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (for tests that only make sense with several runners)."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def sink() -> Iterator[AppServer]:
    """A real App on 127.0.0.1 that answers 200 to anything and records every request."""
    server = AppServer().start()
    server.default = Answer(200, {"received": True})
    yield server
    server.stop()
