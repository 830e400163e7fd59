"""Migrations are frozen history: a database built by the first release's DDL, upgraded through
every migration, has exactly the schema of a new one; and `store/schema.py` (what the queries
are written against) describes that schema. Both on SQLite and PostgreSQL.

Both sides of each comparison are built by the migrations alone, so a migration appended later
keeps these tests meaningful without touching them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from pg_env import fresh_database
from store_env import on_database as on
from store_env import release_1

from rollout_yaml.store import schema
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.migrations import LATEST, MIGRATIONS, apply_migrations

T = TypeVar("T")


@contextmanager
def another(database: str, tmp_path: Path, name: str) -> Iterator[str]:
    """A second empty database on the same backend."""
    if database.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    with fresh_database() as url:
        yield url


def shape(conn: sa.Connection) -> dict[str, Any]:
    """What a schema is, as reflected: columns with type and nullability, primary keys,
    unique constraints, indexes and foreign keys of every table."""
    inspector = sa.inspect(conn)
    found: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        found[table] = {
            "columns": {
                c["name"]: (c["type"].compile(dialect=conn.dialect), c["nullable"])
                for c in inspector.get_columns(table)
            },
            "primary key": tuple(inspector.get_pk_constraint(table)["constrained_columns"]),
            "unique": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
            "foreign keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return found


def test_migration_1_creates_what_the_first_release_created(tmp_path: Path, database: str) -> None:
    """Editing a released migration changes what it builds: this catches it."""
    with another(database, tmp_path, "release-1") as original:
        on(database, lambda conn: apply_migrations(conn, MIGRATIONS[:1]))
        on(original, release_1)
        assert on(database, shape) == on(original, shape)


def test_a_first_release_database_upgrades_to_the_schema_of_a_new_one(
    tmp_path: Path, database: str
) -> None:
    on(database, release_1)

    async def upgrade() -> list[int]:
        store = open_store(database, tmp_path)
        try:
            applied = await store.open()
            run = await store.get_run("run_1")
            assert run is not None and run.event.payload == {"order_id": 1}
            assert [c.key for c in await store.list_credentials("acme")] == ["crm"]
            return applied
        finally:
            await store.close()

    assert asyncio.run(upgrade()) == sorted(number for number, _, _ in MIGRATIONS)[1:]
    with another(database, tmp_path, "fresh") as fresh:
        on(fresh, apply_migrations)
        assert on(database, shape) == on(fresh, shape)
    version = on(
        database,
        lambda conn: conn.execute(sa.text("select max(version) from schema_version")).scalar(),
    )
    assert version == LATEST


def test_the_models_describe_the_migrated_schema(tmp_path: Path, database: str) -> None:
    """A table or column changed in `schema.py` without a migration (or the reverse) fails."""
    with another(database, tmp_path, "models") as models:
        on(database, apply_migrations)
        on(models, schema.metadata.create_all)
        migrated, described = on(database, shape), on(models, shape)
    assert migrated.keys() == described.keys()
    for table in migrated:
        assert migrated[table] == described[table], table


def test_a_dropped_unique_constraint_would_be_noticed(tmp_path: Path) -> None:
    """The comparison sees constraints: the same schema without runs' unique key differs."""
    with_key, without_key = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    on(with_key, schema.metadata.create_all)
    changed = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "runs":
            copy.constraints = {c for c in copy.constraints if c.name != "uq_runs_event"}
    on(without_key, changed.create_all)
    assert on(with_key, shape)["runs"]["unique"] != on(without_key, shape)["runs"]["unique"]
