"""Tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

MAX_EVENT_KEY = 500
"""Characters of an event's dedupe key (a pushed event's `id`, a webhook delivery's id): the
API refuses longer ids with a 422, webhooks and polls hash longer ones."""
MAX_CONSUMER_KEY = 200

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("consumer", sa.String(MAX_CONSUMER_KEY), nullable=False),
    sa.Column("app", sa.String(100), nullable=False),
    sa.Column("trigger", sa.String(100), nullable=False),
    sa.Column("dedupe_key", sa.String(MAX_EVENT_KEY), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.UniqueConstraint("consumer", "app", "trigger", "dedupe_key", name="uq_events_key"),
)
sa.Index("ix_events_received", events.c.received_at)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("consumer", sa.String(200), nullable=False),
    sa.Column("automation", sa.String(100), nullable=False),
    sa.Column("event_id", sa.String(40), sa.ForeignKey("events.id"), nullable=False),
    sa.Column("event_key", sa.String(600), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
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
    # exactly one run per (automation, event): 40-runtime.md's delivery guarantee
    sa.UniqueConstraint("consumer", "automation", "event_key", name="uq_runs_event"),
)
sa.Index("ix_runs_consumer_id", runs.c.consumer, runs.c.id)
sa.Index("ix_runs_pending", runs.c.status, runs.c.next_attempt_at)
sa.Index("ix_runs_event", runs.c.event_id)  # migration 5: retention's "no run refers to it"

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("request", sa.JSON),
    sa.Column("response", sa.JSON),
    sa.Column("error", sa.Text),
)

poll_state = sa.Table(
    "poll_state",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("cursor", sa.JSON),
    sa.Column("seen_ids", sa.JSON),
    sa.Column("last_polled_at", sa.Float),
    sa.Column("next_poll_at", sa.Float),
)

# Item ids a poll group has already seen (migration 2): a row per (group, item), so checking a
# page of ids is an index lookup however many thousands are kept. Pruned per group to the
# newest `max(10_000, items of the last poll)` after each successful poll.
poll_seen = sa.Table(
    "poll_seen",
    metadata,
    sa.Column("poll", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(250), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),
)
sa.Index("ix_poll_seen_age", poll_seen.c.poll, poll_seen.c.seen_at)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("app", sa.String(100), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, default="active"),
    sa.Column("updated_at", sa.Float, nullable=False),
    # migration 4: when the access token expires (shown without decrypting), why it needs reauth
    sa.Column("expires_at", sa.Float),
    sa.Column("error", sa.Text),
    # migration 10: what the connector's `auth.test` last said (the account's name) and when
    sa.Column("label", sa.Text),
    sa.Column("tested_at", sa.Float),
)

# migration 4: OAuth `state` values already used at the callback (single use), until they expire
oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("nonce", sa.String(64), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# One row per webhook URL (`hookId`). An automation has at most one live row (state `active`
# or `disabled`); a row whose automation was removed or whose trigger, credential or
# inputParams changed is `retired` and kept only until its App subscription is removed.
webhooks = sa.Table(
    "webhooks",
    metadata,
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
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
sa.Index("ix_webhooks_automation", webhooks.c.consumer, webhooks.c.automation)

# A connector's `rate_limit` shared by every replica of a PostgreSQL environment: one row per
# quota (`app/consumer/credential`), holding the last `requests` send slots (epoch seconds by
# the database's clock, a JSON list). SQLite environments keep the log in the process.
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(500), primary_key=True),
    sa.Column("slots", sa.Text, nullable=False),
    # as migration 8 wrote it: REAL on SQLite, DOUBLE PRECISION on PostgreSQL
    sa.Column("updated_at", sa.Float().with_variant(sa.REAL(), "sqlite"), nullable=False),
)

# migration 9: automations created over the API (the consumer-file format, as JSON), next to the
# ones in consumer files. `version` is bumped on every write (the API's If-Match); `status` is
# `ready`, or `invalid` with the diagnostics of the last compile (a connector changed under it).
automations = sa.Table(
    "automations",
    metadata,
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
)
sa.Index("ix_automations_updated", automations.c.updated_at)

# migration 11: partner notifications, an outbox. A row is written in the transaction of what it
# reports (a run's terminal state, a credential turning needs_reauth) and deleted by retention
# once delivered. `next_attempt_at` is null once delivered, so the index holds only what is due.
# Rows are leased like runs, so that replicas never send one twice at the same time.
notifications = sa.Table(
    "notifications",
    metadata,
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
)
sa.Index("ix_notifications_due", notifications.c.next_attempt_at)
