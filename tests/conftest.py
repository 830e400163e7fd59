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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The `pre-commit try-repo` test goes last: its hook environment installs meanwhile."""
    import precommit_run

    items.sort(key=lambda item: item.nodeid.endswith(precommit_run.TEST))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start `pre-commit try-repo` at once when its test is selected (see precommit_run.py)."""
    import precommit_run

    if session.config.option.collectonly:
        return
    if any(item.nodeid.endswith(precommit_run.TEST) for item in session.items):
        session.config.stash[precommit_run.KEY] = precommit_run.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    import precommit_run

    started = config.stash.get(precommit_run.KEY, None)
    if started is not None:
        started.close()
