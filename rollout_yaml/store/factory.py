"""Opens the store an environment's `database:` setting names."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from rollout_yaml.store.base import Store
from rollout_yaml.store.sqlite import SQLiteStore


class UnsupportedDatabase(ValueError):
    pass


def sqlite_path(env_dir: Path) -> Path:
    return env_dir / ".rollout" / "state.db"


def open_store(
    database: str, env_dir: Path, *, among_processes: bool = False, lock_wait: float = 0.0
) -> Store:
    """`sqlite` (the default) is `.rollout/state.db` in the environment's folder; a
    `postgresql://` URL is a database several runners may share. `among_processes` and
    `lock_wait` are for SQLite under `runtime.processes` (`store/sqlite.py`)."""
    if database == "sqlite" or database.startswith("sqlite:///"):
        path = sqlite_path(env_dir)
        if database != "sqlite":
            path = Path(database.removeprefix("sqlite:///"))
            path = path if path.is_absolute() else env_dir / path
        return SQLiteStore(path, among_processes=among_processes, lock_wait=lock_wait)
    if database.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
        from rollout_yaml.store.postgres import PostgresStore

        try:
            return PostgresStore(database)
        except (ArgumentError, ValueError) as exc:
            raise UnsupportedDatabase(f"the database URL is not valid: {exc}") from None
    raise UnsupportedDatabase(
        f"unknown database {_shown(database)!r}: use `sqlite` or a postgresql:// URL"
    )


def _shown(database: str) -> str:
    """The setting without a password it may hold."""
    try:
        return make_url(database).render_as_string(hide_password=True)
    except ArgumentError:
        return database if "@" not in database else "…@" + database.rsplit("@", 1)[1]
