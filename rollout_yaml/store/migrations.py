"""Numbered schema migrations, applied in order by `run` and `rollout-yaml db migrate`.

A released migration is never edited; a schema change is a new entry at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from rollout_yaml.store import schema

Migration = tuple[int, str, Callable[[sa.Connection], None]]


# -- released migrations, frozen ---------------------------------------------------------------
#
# Each released migration creates exactly what it created when it was released, from table
# definitions of its own (never from `schema`, which describes the latest version): a database
# made by any release and migrated today has the same schema as a new one. tests/test_migrations.py
# checks that, and that `schema` matches what the migrations build.


def _v1_initial(conn: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table(
        "events",
        frozen,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(100), nullable=False),
        sa.Column("dedupe_key", sa.String(500), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.UniqueConstraint("consumer", "app", "trigger", "dedupe_key", name="uq_events_key"),
        sa.Index("ix_events_received", "received_at"),
    )
    sa.Table(
        "runs",
        frozen,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("automation", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(40), sa.ForeignKey("events.id"), nullable=False),
        sa.Column("event_key", sa.String(600), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("input", sa.JSON),
        sa.Column("output", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("error_kind", sa.String(20)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("replay_of", sa.String(40)),
        sa.UniqueConstraint("consumer", "automation", "event_key", name="uq_runs_event"),
        sa.Index("ix_runs_consumer_id", "consumer", "id"),
        sa.Index("ix_runs_pending", "status", "next_attempt_at"),
    )
    sa.Table(
        "attempts",
        frozen,
        sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("request", sa.JSON),
        sa.Column("response", sa.JSON),
        sa.Column("error", sa.Text),
    )
    sa.Table(
        "poll_state",
        frozen,
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("cursor", sa.JSON),
        sa.Column("seen_ids", sa.JSON),
        sa.Column("last_polled_at", sa.Float),
        sa.Column("next_poll_at", sa.Float),
    )
    sa.Table(
        "credentials",
        frozen,
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    sa.Table(
        "leases",
        frozen,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    frozen.create_all(conn)


def _v2_poll_seen(conn: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table(
        "poll_seen",
        frozen,
        sa.Column("poll", sa.String(200), primary_key=True),
        sa.Column("item_id", sa.String(250), primary_key=True),
        sa.Column("seen_at", sa.Float, nullable=False),
        sa.Index("ix_poll_seen_age", "poll", "seen_at"),
    )
    frozen.create_all(conn)


def _v3_webhooks(conn: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table(
        "webhooks",
        frozen,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("automation", sa.String(100), nullable=False),
        sa.Column("app", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(100), nullable=False),
        sa.Column("credential", sa.String(100)),
        sa.Column("input", sa.JSON),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("subscription", sa.JSON),
        sa.Column("subscribed_url", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Index("ix_webhooks_automation", "consumer", "automation"),
    )
    frozen.create_all(conn)


def add_column(conn: sa.Connection, table: str, column: sa.Column[Any]) -> None:
    """ALTER TABLE … ADD COLUMN, in the dialect of the connection (a nullable column: both
    backends add one without rewriting the table)."""
    preparer = conn.dialect.identifier_preparer
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(
        sa.text(
            f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"
        )
    )


def _v4_credentials_oauth(conn: sa.Connection) -> None:
    add_column(conn, "credentials", sa.Column("expires_at", sa.Float))
    add_column(conn, "credentials", sa.Column("error", sa.Text))
    frozen = sa.MetaData()
    sa.Table(
        "oauth_states",
        frozen,
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    frozen.create_all(conn)


def _v5_runs_by_event(conn: sa.Connection) -> None:
    # Pruning deletes events no run refers to; without this index every such check (and the
    # foreign key's check on delete) reads the whole runs table.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_runs_event ON runs (event_id)"))


def _v8_rate_limits(conn: sa.Connection) -> None:
    # Written as the DDL it is (not `create_all` of the current schema), so it never changes.
    real = "DOUBLE PRECISION" if conn.dialect.name == "postgresql" else "REAL"
    conn.execute(
        sa.text(
            "CREATE TABLE IF NOT EXISTS rate_limits ("
            "key VARCHAR(500) NOT NULL PRIMARY KEY, "
            "slots TEXT NOT NULL, "
            f"updated_at {real} NOT NULL)"
        )
    )


def _v9_automations(conn: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table(
        "automations",
        frozen,
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("custom_data", sa.JSON),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("diagnostics", sa.JSON),
        sa.Index("ix_automations_updated", "updated_at"),
    )
    frozen.create_all(conn)


def _v10_credential_labels(conn: sa.Connection) -> None:
    add_column(conn, "credentials", sa.Column("label", sa.Text))
    add_column(conn, "credentials", sa.Column("tested_at", sa.Float))


def _v11_notifications(conn: sa.Connection) -> None:
    frozen = sa.MetaData()
    sa.Table(
        "notifications",
        frozen,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("delivered_at", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Index("ix_notifications_due", "next_attempt_at"),
    )
    frozen.create_all(conn)


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
    (8, "rate_limits: send slots shared by replicas (PostgreSQL)", _v8_rate_limits),
    (9, "automations: runtime automations created over the API", _v9_automations),
    (10, "stored credentials: the label and time of the last auth test", _v10_credential_labels),
    (11, "notifications: the outbox of partner notifications", _v11_notifications),
]
LATEST = max(number for number, _, _ in MIGRATIONS)


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
