"""Numbered schema migrations, applied in order by `run` and `rollout-yaml db migrate`.

A released migration is never edited; a schema change is a new entry at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from rollout_yaml.store import schema

Migration = tuple[int, str, Callable[[sa.Connection], None]]


def _v1_initial(conn: sa.Connection) -> None:
    tables = [
        schema.events,
        schema.runs,
        schema.attempts,
        schema.poll_state,
        schema.credentials,
        schema.leases,
    ]
    schema.metadata.create_all(conn, tables=tables)


def _v2_poll_seen(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.poll_seen])


def _v3_webhooks(conn: sa.Connection) -> None:
    schema.metadata.create_all(conn, tables=[schema.webhooks])


def _add_missing_columns(conn: sa.Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    """ALTER TABLE … ADD COLUMN for each column the table lacks. Migration 1 creates tables from
    the current `schema`, so on a new database the columns may already be there."""
    present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name in present:
            continue
        column = table.c[name]
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.quote(table.name)} ADD COLUMN {preparer.quote(name)} {kind}"
            )
        )


def _v4_credentials_oauth(conn: sa.Connection) -> None:
    _add_missing_columns(conn, schema.credentials, ("expires_at", "error"))
    schema.metadata.create_all(conn, tables=[schema.oauth_states])


def _v5_runs_by_event(conn: sa.Connection) -> None:
    # Pruning deletes events no run refers to; without this index every such check (and the
    # foreign key's check on delete) reads the whole runs table.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_runs_event ON runs (event_id)"))


MIGRATIONS: list[Migration] = [
    (1, "events, runs, attempts, poll state, credentials, leases", _v1_initial),
    (2, "poll_seen: item ids each poll group has seen", _v2_poll_seen),
    (3, "webhooks: hookIds and App subscriptions", _v3_webhooks),
    (
        4,
        "stored credentials: token expiry and reauth reason; used OAuth states",
        _v4_credentials_oauth,
    ),
    (5, "index of runs by event, for retention pruning", _v5_runs_by_event),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: sa.Connection) -> int:
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def applied_versions(conn: sa.Connection) -> set[int]:
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    return set(conn.execute(sa.select(schema.schema_version.c.version)).scalars())


def apply_migrations(
    conn: sa.Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply every migration the database has not recorded yet, in number order; return the
    versions applied. Numbers are checked one by one rather than against the highest, so a
    migration merged after a higher-numbered one (branches developed side by side) still
    runs on a database that already has the higher one."""
    applied = []
    done = applied_versions(conn)
    for number, _title, step in sorted(migrations, key=lambda m: m[0]):
        if number in done:
            continue
        step(conn)
        conn.execute(
            sa.insert(schema.schema_version).values(version=number, applied_at=time.time())
        )
        applied.append(number)
    return applied
