"""Opens the store an environment's `database:` setting names."""

from __future__ import annotations

from pathlib import Path

from rollout_yaml.store.base import Store
from rollout_yaml.store.sqlite import SQLiteStore


class UnsupportedDatabase(ValueError):
    pass


def sqlite_path(env_dir: Path) -> Path:
    return env_dir / ".rollout" / "state.db"


def open_store(database: str, env_dir: Path) -> Store:
    """`sqlite` (the default) is `.rollout/state.db` in the environment's folder."""
    if database == "sqlite":
        return SQLiteStore(sqlite_path(env_dir))
    if database.startswith("sqlite:///"):
        path = Path(database.removeprefix("sqlite:///"))
        return SQLiteStore(path if path.is_absolute() else env_dir / path)
    if database.startswith(("postgresql://", "postgres://")):
        raise UnsupportedDatabase(
            "PostgreSQL environments are not supported by this version yet; use `sqlite`"
        )
    raise UnsupportedDatabase(f"unknown database {database!r}: use `sqlite` or a postgresql:// URL")
