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


def _v5_runs_by_event(conn: sa.Connection) -> None:
    # Pruning deletes events no run refers to; without this index every such check (and the
    # foreign key's check on delete) reads the whole runs table.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_runs_event ON runs (event_id)"))


MIGRATIONS: list[Migration] = [
    (1, "events, runs, attempts, poll state, credentials, leases", _v1_initial),
    (5, "index of runs by event, for retention pruning", _v5_runs_by_event),
]
LATEST = MIGRATIONS[-1][0]


def current_version(conn: sa.Connection) -> int:
    schema.metadata.create_all(conn, tables=[schema.schema_version])
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar()
    return int(found or 0)


def apply_migrations(conn: sa.Connection) -> list[int]:
    """Apply every migration the database has not recorded, in order; return the versions
    applied. Recorded ones are compared one by one, not against the highest: branches that
    added numbers out of order still get each migration once."""
    applied = []
    current_version(conn)  # creates the version table on a new database
    done = set(conn.execute(sa.select(schema.schema_version.c.version)).scalars())
    for number, _title, step in MIGRATIONS:
        if number in done:
            continue
        step(conn)
        conn.execute(
            sa.insert(schema.schema_version).values(version=number, applied_at=time.time())
        )
        applied.append(number)
    return applied
