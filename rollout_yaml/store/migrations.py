"""Numbered schema migrations, applied in order by `run` and `rollout-yaml db migrate`.

A released migration is never edited; a schema change is a new entry at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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


MIGRATIONS: list[Migration] = [
    (1, "events, runs, attempts, poll state, credentials, leases", _v1_initial),
    (2, "poll_seen: item ids each poll group has seen", _v2_poll_seen),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: sa.Connection) -> int:
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def apply_migrations(conn: sa.Connection) -> list[int]:
    """Apply every migration newer than the database; return the versions applied."""
    applied = []
    version = current_version(conn)
    for number, _title, step in MIGRATIONS:
        if number <= version:
            continue
        step(conn)
        conn.execute(
            sa.insert(schema.schema_version).values(version=number, applied_at=time.time())
        )
        applied.append(number)
    return applied
