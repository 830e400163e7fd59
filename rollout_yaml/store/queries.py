"""Every query the engine runs, by name, written once for both backends.

Each function takes a synchronous SQLAlchemy connection: SQLite's writer thread calls them
directly, PostgreSQL's async engine through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rollout_yaml.store import sqlite_rows
from rollout_yaml.store.records import (
    TERMINAL,
    Attempt,
    AutomationStatus,
    CredentialStatus,
    EventRecord,
    Hook,
    HookState,
    Ingested,
    NewEvent,
    NewNotification,
    NewRun,
    Notification,
    NotificationQuery,
    NotificationStatus,
    Run,
    RunQuery,
    RunStatus,
    RunUpdate,
    StoredAutomation,
    StoredCredential,
)
from rollout_yaml.store.schema import (
    attempts,
    automations,
    credentials,
    events,
    leases,
    notifications,
    oauth_states,
    poll_seen,
    poll_state,
    rate_limits,
    runs,
    webhooks,
)


def _insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def ingest(
    conn: sa.Connection, batch: Sequence[tuple[NewEvent, Sequence[NewRun]]]
) -> list[Ingested]:
    """Insert events (skipping ones already stored) and the runs of the new ones, in a few
    multi-row statements however large the batch."""
    if not batch:
        return []
    event_rows = [_row(event) for event, _ in batch]
    inserted = set(_insert(conn, events, event_rows, ignore_duplicates=True, returning="id"))
    run_rows = [
        _run_row(run) for event, new_runs in batch if event.id in inserted for run in new_runs
    ]
    _insert(conn, runs, run_rows)
    out: list[Ingested] = []
    for event, new_runs in batch:
        if event.id in inserted:
            out.append(Ingested(event.id, True, tuple(r.id for r in new_runs)))
            continue
        existing = conn.execute(
            sa.select(events.c.id).where(
                events.c.consumer == event.consumer,
                events.c.app == event.app,
                events.c.trigger == event.trigger,
                events.c.dedupe_key == event.dedupe_key,
            )
        ).scalar_one()
        out.append(Ingested(existing, False, ()))
    return out


def _insert(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], **options: Any
) -> list[Any]:
    """A multi-row INSERT of the hot path: straight to the driver on SQLite (`sqlite_rows`),
    SQLAlchemy's statement on PostgreSQL. Options: `ignore_duplicates`, `returning`."""
    insert = sqlite_rows.insert_rows if conn.dialect.name == "sqlite" else insert_with_sqlalchemy
    return insert(conn, table, rows, **options)


def insert_with_sqlalchemy(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    ignore_duplicates: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """`_insert` through SQLAlchemy (PostgreSQL; and the tests' reference for SQLite)."""
    if not rows:
        return []
    statement = _insert_ignoring_duplicates(conn, table) if ignore_duplicates else sa.insert(table)
    # RETURNING makes SQLAlchemy send one multi-row INSERT instead of a row-by-row loop
    column = table.c[returning] if returning is not None else next(iter(table.primary_key))
    found = conn.execute(statement.returning(column), list(rows)).scalars().all()
    return list(found) if returning is not None else []


def apply_grouped(
    conn: sa.Connection, calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[Any]:
    """Many callers' writes in one transaction, each call's result in order: ingests and
    records are merged into a few multi-row statements, the rest run one after another."""
    results: dict[int, Any] = {}
    ingests = [i for i, (fn, _) in enumerate(calls) if fn is ingest]
    if ingests:
        merged = ingest(conn, [item for i in ingests for item in calls[i][1][0]])
        start = 0
        for i in ingests:
            size = len(calls[i][1][0])
            results[i] = merged[start : start + size]
            start += size
    records = [i for i, (fn, _) in enumerate(calls) if fn is record]
    if records:
        record_many(conn, [calls[i][1] for i in records])  # (update, attempt, notices)
        results.update(dict.fromkeys(records))
    for i, (fn, args) in enumerate(calls):
        if i not in results:
            results[i] = fn(conn, *args)
    return [results[i] for i in range(len(calls))]


def _run_row(run: NewRun) -> dict[str, Any]:
    """Every row has the same keys: a multi-row INSERT takes its columns from the first row,
    so a key present on some rows only would be dropped from the others, or fail."""
    row = _row(run)
    row["status"] = str(run.status)
    row["attempts"] = 0
    row["updated_at"] = run.created_at
    row["finished_at"] = run.created_at if run.status in TERMINAL else None
    return row


def insert_runs(conn: sa.Connection, new_runs: Sequence[NewRun]) -> list[str]:
    insert_run = _insert_ignoring_duplicates(conn, runs)
    inserted = []
    for run in new_runs:
        if conn.execute(insert_run, _run_row(run)).rowcount == 1:
            inserted.append(run.id)
    return inserted


_UPDATED_COLUMNS = (
    "status",
    "attempts",
    "updated_at",
    "output",
    "error",
    "error_kind",
    "next_attempt_at",
    "finished_at",
    "input",
    "lease_owner",
    "lease_expires_at",
)
_UPDATE_RUN = (
    sa.update(runs)
    .where(runs.c.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in _UPDATED_COLUMNS})
)


def _row(record: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, without `asdict`'s deep copies (values are immutable
    JSON or were built for this row)."""
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


Recorded = tuple[RunUpdate, Attempt | None, Sequence[NewNotification]]


def record(
    conn: sa.Connection,
    update: RunUpdate,
    attempt: Attempt | None,
    notices: Sequence[NewNotification] = (),
) -> None:
    record_many(conn, [(update, attempt, notices)])


def record_many(conn: sa.Connection, items: Sequence[Recorded]) -> None:
    """Save attempts and run states: one multi-row INSERT and one executemany UPDATE (a
    statement compiled once and cached), however many runs the batch holds. The
    notifications that report them (a run's end) are inserted in the same transaction."""
    _insert(conn, attempts, [_row(attempt) for _, attempt, _ in items if attempt is not None])
    add_notifications(conn, [notice for _, _, notices in items for notice in notices])
    rows = []
    for update, _, _ in items:
        row = {f"b_{name}": getattr(update, name) for name in _UPDATED_COLUMNS}
        row["b_id"] = update.run_id
        row["b_status"] = str(update.status)
        rows.append(row)
    conn.execute(_UPDATE_RUN, rows)


def claim_runs(conn: sa.Connection, owner: str, now: float, lease: float, limit: int) -> list[Run]:
    due = (
        sa.select(runs.c.id)
        .where(
            runs.c.status.in_([RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.RUNNING]),
            sa.or_(runs.c.next_attempt_at.is_(None), runs.c.next_attempt_at <= now),
            sa.or_(runs.c.lease_owner.is_(None), runs.c.lease_expires_at < now),
        )
        .order_by(runs.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        sa.update(runs)
        .where(runs.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease)
    )
    return _load_runs(
        conn,
        sa.select(*_RUN_COLUMNS).select_from(_JOINED).where(runs.c.id.in_(ids)).order_by(runs.c.id),
    )


def renew_leases(conn: sa.Connection, owner: str, until: float) -> set[str]:
    """Extend to `until` every unfinished run's lease `owner` holds (a lease already longer,
    as a retry's, stays); return the ids `owner` still holds. A run missing from the answer
    was claimed by another replica after its lease expired: this one must not start it."""
    held = (
        runs.c.lease_owner == owner,
        runs.c.status.in_([RunStatus.QUEUED, RunStatus.RETRYING, RunStatus.RUNNING]),
    )
    conn.execute(
        sa.update(runs).where(*held, runs.c.lease_expires_at < until).values(lease_expires_at=until)
    )
    return set(conn.execute(sa.select(runs.c.id).where(*held)).scalars())


def prune(
    conn: sa.Connection, runs_before: float, events_before: float, limit: int
) -> tuple[int, int]:
    """Delete up to `limit` runs finished before `runs_before` with their attempts, and up to
    `limit` events received before `events_before` that no run refers to. Small batches keep
    each transaction short, so the pruning never holds up the runs being recorded."""
    old_runs = list(
        conn.execute(
            sa.select(runs.c.id)
            .where(runs.c.finished_at < runs_before)
            .order_by(runs.c.id)
            .limit(limit)
        ).scalars()
    )
    if old_runs:
        conn.execute(sa.delete(attempts).where(attempts.c.run_id.in_(old_runs)))
        conn.execute(sa.delete(runs).where(runs.c.id.in_(old_runs)))
    referenced = sa.select(runs.c.id).where(runs.c.event_id == events.c.id).exists()
    old_events = list(
        conn.execute(
            sa.select(events.c.id)
            .where(events.c.received_at < events_before, ~referenced)
            .order_by(events.c.id)
            .limit(limit)
        ).scalars()
    )
    if old_events:
        conn.execute(sa.delete(events).where(events.c.id.in_(old_events)))
    return len(old_runs), len(old_events)


def release_all(conn: sa.Connection) -> int:
    """Give up every lease, of runs and named ones (a process that owns the database alone
    knows their owners are gone); return how many runs were leased."""
    conn.execute(sa.delete(leases))
    conn.execute(
        sa.update(notifications)
        .where(notifications.c.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=None)
    )
    result = conn.execute(
        sa.update(runs)
        .where(runs.c.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)


def release(conn: sa.Connection, owner: str) -> int:
    """Give up `owner`'s leases of runs and notifications; return how many runs."""
    release_notifications(conn, owner)
    result = conn.execute(
        sa.update(runs)
        .where(runs.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)


_JOINED = runs.join(events, runs.c.event_id == events.c.id)
_RUN_COLUMNS = (
    runs.c.id,
    runs.c.consumer,
    runs.c.automation,
    runs.c.status,
    runs.c.attempts,
    runs.c.input,
    runs.c.output,
    runs.c.error,
    runs.c.error_kind,
    runs.c.created_at,
    runs.c.updated_at,
    runs.c.finished_at,
    runs.c.next_attempt_at,
    runs.c.replay_of,
    events.c.id.label("e_id"),
    events.c.consumer.label("e_consumer"),
    events.c.app,
    events.c.trigger,
    events.c.dedupe_key,
    events.c.payload,
    events.c.received_at,
    events.c.source,
)


def _load_runs(conn: sa.Connection, query: sa.Select[Any], with_payload: bool = True) -> list[Run]:
    out = []
    for row in conn.execute(query).mappings():
        event = EventRecord(
            id=row["e_id"],
            consumer=row["e_consumer"],
            app=row["app"],
            trigger=row["trigger"],
            dedupe_key=row["dedupe_key"],
            payload=row["payload"] if with_payload else None,
            received_at=row["received_at"],
            source=row["source"],
        )
        out.append(
            Run(
                id=row["id"],
                consumer=row["consumer"],
                automation=row["automation"],
                status=RunStatus(row["status"]),
                attempts=row["attempts"],
                input=row["input"],
                output=row["output"],
                error=row["error"],
                error_kind=row["error_kind"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                finished_at=row["finished_at"],
                next_attempt_at=row["next_attempt_at"],
                replay_of=row["replay_of"],
                event=event,
            )
        )
    return out


def get_run(conn: sa.Connection, run_id: str, consumer: str | None) -> Run | None:
    query = sa.select(*_RUN_COLUMNS).select_from(_JOINED).where(runs.c.id == run_id)
    if consumer is not None:
        query = query.where(runs.c.consumer == consumer)
    found = _load_runs(conn, query)
    if not found:
        return None
    log = tuple(
        Attempt(**dict(row))
        for row in conn.execute(
            sa.select(attempts).where(attempts.c.run_id == run_id).order_by(attempts.c.number)
        ).mappings()
    )
    run = found[0]
    return Run(**{**{f: getattr(run, f) for f in Run.__dataclass_fields__}, "attempt_log": log})


def list_runs(conn: sa.Connection, q: RunQuery) -> list[Run]:
    query = sa.select(*_RUN_COLUMNS).select_from(_JOINED)
    if q.consumer is not None:
        query = query.where(runs.c.consumer == q.consumer)
    if q.automation is not None:
        query = query.where(runs.c.automation == q.automation)
    if q.status is not None:
        query = query.where(runs.c.status == q.status)
    if q.since is not None:
        query = query.where(runs.c.created_at >= q.since)
    if q.before_id is not None:
        query = query.where(runs.c.id < q.before_id)
    return _load_runs(conn, query.order_by(runs.c.id.desc()).limit(q.limit), with_payload=False)


def load_states(conn: sa.Connection, prefix: str) -> dict[str, Any]:
    rows = conn.execute(
        sa.select(poll_state.c.key, poll_state.c.cursor).where(
            poll_state.c.key.startswith(prefix, autoescape=True)
        )
    )
    return {key: cursor for key, cursor in rows}


def save_state(conn: sa.Connection, key: str, state: Any) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(poll_state).values(key=key, cursor=state)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[poll_state.c.key], set_={"cursor": insert.excluded.cursor}
        )
    )


def seen_ids(conn: sa.Connection, poll: str, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the poll group `poll` has already seen."""
    found: set[str] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):  # bounded IN lists
        chunk = unique[start : start + 500]
        found.update(
            conn.execute(
                sa.select(poll_seen.c.item_id).where(
                    poll_seen.c.poll == poll, poll_seen.c.item_id.in_(chunk)
                )
            ).scalars()
        )
    return found


def record_polled(
    conn: sa.Connection,
    batch: Sequence[tuple[NewEvent, Sequence[NewRun]]],
    poll: str,
    ids: Sequence[str],
    now: float,
) -> list[Ingested]:
    """One page of a poll in one transaction: its new events with their runs, and its item ids
    marked seen (an id already marked keeps its first time)."""
    ingested = ingest(conn, batch)
    if ids:
        rows = [{"poll": poll, "item_id": item, "seen_at": now} for item in dict.fromkeys(ids)]
        conn.execute(_insert_ignoring_duplicates(conn, poll_seen), rows)
    return ingested


def save_poll_state(conn: sa.Connection, key: str, state: Any, poll: str, keep: int) -> int:
    """Store a poll group's state (its cursor) and prune its seen ids to the newest `keep`
    (ties at the boundary are kept); return how many ids were pruned."""
    save_state(conn, key, state)
    count = conn.execute(
        sa.select(sa.func.count()).select_from(poll_seen).where(poll_seen.c.poll == poll)
    ).scalar_one()
    if count <= keep:
        return 0
    boundary = conn.execute(
        sa.select(poll_seen.c.seen_at)
        .where(poll_seen.c.poll == poll)
        .order_by(poll_seen.c.seen_at.desc())
        .offset(keep - 1)
        .limit(1)
    ).scalar_one()
    result = conn.execute(
        sa.delete(poll_seen).where(poll_seen.c.poll == poll, poll_seen.c.seen_at < boundary)
    )
    return int(result.rowcount or 0)


def drop_poll_state(conn: sa.Connection, key: str, poll: str) -> None:
    """Forget a poll group (its last automation was deleted): its state and seen ids."""
    conn.execute(sa.delete(poll_state).where(poll_state.c.key == key))
    conn.execute(sa.delete(poll_seen).where(poll_seen.c.poll == poll))


def count_by_status(conn: sa.Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status))
    return {status: int(count) for status, count in rows}


def acquire_lease(conn: sa.Connection, name: str, owner: str, now: float, ttl: float) -> bool:
    """Take or renew the named lease (a poll group, a webhook subscription) unless another
    owner holds it unexpired. Replicas sharing a database do a piece of work once this way."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(leases).values(name=name, owner=owner, expires_at=now + ttl)
    upsert = insert.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at},
        where=sa.or_(leases.c.owner == owner, leases.c.expires_at <= now),
    ).returning(leases.c.owner)
    return conn.execute(upsert).scalar() == owner


def _database_now(conn: sa.Connection) -> float:
    if conn.dialect.name == "postgresql":
        clock = sa.text("SELECT extract(epoch FROM clock_timestamp())")
        return float(conn.execute(clock).scalar_one())
    return time.time()


def _rate_log(conn: sa.Connection, key: str) -> tuple[list[list[Any]], float]:
    """The quota's entries `[sent_at, answered_at | null, token, expires_at]`, row locked, and
    the database's time once the lock is held: a time read before the lock was waited for
    would date an answer too early, and the App could see N + 1 sends within `per`."""
    conn.execute(
        _insert_ignoring_duplicates(conn, rate_limits).values(key=key, slots="[]", updated_at=0.0)
    )
    read = sa.select(rate_limits.c.slots).where(rate_limits.c.key == key)
    if conn.dialect.name == "postgresql":
        read = read.with_for_update()
    log = list(json.loads(conn.execute(read).scalar_one()))
    return log, _database_now(conn)


def _save_rate_log(conn: sa.Connection, key: str, log: list[list[Any]], now: float) -> None:
    conn.execute(
        sa.update(rate_limits)
        .where(rate_limits.c.key == key)
        .values(slots=json.dumps(log), updated_at=now)
    )


def reserve_rate_slot(
    conn: sa.Connection,
    key: str,
    requests: int,
    per: float,
    margin: float,
    token: str,
    expiry: float,
) -> float:
    """Take a send slot of the quota `key` now, for whichever replica asks, when fewer than
    `requests` sends may have reached the App within the last `per` (plus `margin`). A send
    counts until `per` after its answer came back (`confirm_rate_slot`): the App saw it before
    that, however late it left; one still in flight counts until its answer, or `expiry`
    after it left (a replica that died). Returns 0 when the slot is taken (recorded under
    `token`: send at once), else the seconds after which to ask again. The row is locked while
    it is read and written, and times are the database's own."""
    entries, now = _rate_log(conn, key)
    horizon = now - per - margin

    def upper(entry: list[Any]) -> float:
        """The latest the App may have seen this send (or may still see it)."""
        _sent, answered, _, expires = entry
        if answered is not None:
            return float(answered)
        return math.inf if now < float(expires) else float(expires)

    log = [entry for entry in entries if upper(entry) > horizon]
    if len(log) < requests:
        _save_rate_log(conn, key, [*log, [now, None, token, now + expiry]], now)
        return 0.0
    _save_rate_log(conn, key, log, now)
    leaving = sorted(upper(entry) for entry in log)[len(log) - requests]
    if leaving == math.inf:  # the window is full of sends still in flight: look again soon
        return max(0.01, per * 0.05)
    return max(0.001, leaving - horizon)


def confirm_rate_slot(conn: sa.Connection, key: str, token: str) -> None:
    """The send taken under `token` has its answer (or its error): it counts until `per`
    after now."""
    log, now = _rate_log(conn, key)
    for entry in log:
        if entry[2] == token and entry[1] is None:
            entry[1] = now
    _save_rate_log(conn, key, log, now)


def release_lease(conn: sa.Connection, name: str, owner: str) -> None:
    conn.execute(sa.delete(leases).where(leases.c.name == name, leases.c.owner == owner))


def _hook(row: Any) -> Hook:
    values = dict(row)
    values["state"] = HookState(values["state"])
    return Hook(**values)


def list_hooks(conn: sa.Connection, consumer: str | None) -> list[Hook]:
    """Every webhook row (of one consumer, or all), oldest first."""
    query = sa.select(webhooks).order_by(webhooks.c.created_at, webhooks.c.id)
    if consumer is not None:
        query = query.where(webhooks.c.consumer == consumer)
    return [_hook(row) for row in conn.execute(query).mappings()]


def get_hook(conn: sa.Connection, hook_id: str) -> Hook | None:
    row = conn.execute(sa.select(webhooks).where(webhooks.c.id == hook_id)).mappings().first()
    return None if row is None else _hook(row)


def insert_hook(conn: sa.Connection, hook: Hook) -> None:
    row = _row(hook)
    row["state"] = str(hook.state)
    conn.execute(sa.insert(webhooks).values(row))


def update_hook(conn: sa.Connection, hook_id: str, values: dict[str, Any]) -> None:
    changes = {k: str(v) if isinstance(v, HookState) else v for k, v in values.items()}
    conn.execute(sa.update(webhooks).where(webhooks.c.id == hook_id).values(changes))


def delete_hook(conn: sa.Connection, hook_id: str) -> None:
    conn.execute(sa.delete(webhooks).where(webhooks.c.id == hook_id))


# -- stored credentials --------------------------------------------------------------------


def _credential(row: Any) -> StoredCredential:
    return StoredCredential(
        consumer=row.consumer,
        key=row.key,
        app=row.app,
        ciphertext=bytes(row.ciphertext),
        status=CredentialStatus(row.status),
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        error=row.error,
        label=row.label,
        tested_at=row.tested_at,
    )


def get_credential(conn: sa.Connection, consumer: str, key: str) -> StoredCredential | None:
    row = conn.execute(
        sa.select(credentials).where(credentials.c.consumer == consumer, credentials.c.key == key)
    ).first()
    return None if row is None else _credential(row)


def list_credentials(conn: sa.Connection, consumer: str | None) -> list[StoredCredential]:
    query = sa.select(credentials).order_by(credentials.c.consumer, credentials.c.key)
    if consumer is not None:
        query = query.where(credentials.c.consumer == consumer)
    return [_credential(row) for row in conn.execute(query)]


_TEST_COLUMNS = ("label", "tested_at")  # written by `label_credential` only


def put_credential(conn: sa.Connection, credential: StoredCredential) -> None:
    """Insert a stored credential, or replace its values and status (keeping its label)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = _row(credential)
    values["status"] = str(credential.status)
    insert = dialect.insert(credentials).values(values)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[credentials.c.consumer, credentials.c.key],
            set_={
                name: insert.excluded[name]
                for name in values
                if name not in ("consumer", "key", *_TEST_COLUMNS)
            },
        )
    )


def delete_credential(conn: sa.Connection, consumer: str, key: str) -> bool:
    result = conn.execute(
        sa.delete(credentials).where(credentials.c.consumer == consumer, credentials.c.key == key)
    )
    return bool(result.rowcount)


def mark_credential(
    conn: sa.Connection,
    consumer: str,
    key: str,
    status: CredentialStatus,
    error: str | None,
    updated_at: float,
    notices: Sequence[NewNotification] = (),
) -> bool:
    """Change a credential's status (e.g. `needs_reauth` with the provider's reason); True
    when the status changed. `notices` (what reports the change) are stored only then, in
    the same transaction: of two replicas marking it at once, one changes it (the row lock
    makes the other's condition false when it gets the row)."""
    row = sa.and_(credentials.c.consumer == consumer, credentials.c.key == key)
    values = {"status": str(status), "error": error, "updated_at": updated_at}
    changed = conn.execute(
        sa.update(credentials).where(row, credentials.c.status != str(status)).values(values)
    ).rowcount
    if not changed:
        conn.execute(sa.update(credentials).where(row).values(values))
    if changed and notices:
        add_notifications(conn, notices)
    return bool(changed)


def label_credential(
    conn: sa.Connection, consumer: str, key: str, label: str | None, tested_at: float | None
) -> bool:
    """Set (or clear) what the last auth test said; False if there is no such credential."""
    result = conn.execute(
        sa.update(credentials)
        .where(credentials.c.consumer == consumer, credentials.c.key == key)
        .values(label=label, tested_at=tested_at)
    )
    return bool(result.rowcount)


def use_oauth_state(conn: sa.Connection, nonce: str, now: float, expires_at: float) -> bool:
    """Record that an OAuth `state` was used; False if it was used before (a replay). States
    past their expiry are forgotten here: an expired state is refused before it gets here."""
    conn.execute(sa.delete(oauth_states).where(oauth_states.c.expires_at < now))
    insert = _insert_ignoring_duplicates(conn, oauth_states)
    result = conn.execute(insert, {"nonce": nonce, "expires_at": expires_at})
    return result.rowcount == 1


# -- runtime automations -------------------------------------------------------------------


AUTOMATIONS_CHANNEL = "rollout_automations"
"""PostgreSQL notifies it in every transaction that writes a runtime automation (delivered at
commit): replicas listening compile the change at once."""


def _changed_automations(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": AUTOMATIONS_CHANNEL})


def automation_versions(conn: sa.Connection) -> dict[tuple[str, str], int]:
    """The version of every runtime automation (a replica compares it with what it runs)."""
    query = sa.select(automations.c.consumer, automations.c.key, automations.c.version)
    return {(row.consumer, row.key): int(row.version) for row in conn.execute(query)}


def _automation(row: Any) -> StoredAutomation:
    return StoredAutomation(
        consumer=row.consumer,
        key=row.key,
        definition=dict(row.definition),
        enabled=bool(row.enabled),
        version=int(row.version),
        created_at=row.created_at,
        updated_at=row.updated_at,
        custom_data=row.custom_data,
        status=AutomationStatus(row.status),
        diagnostics=tuple(row.diagnostics or ()),
    )


def _automation_values(automation: StoredAutomation) -> dict[str, Any]:
    values = _row(automation)
    values["status"] = str(automation.status)
    values["diagnostics"] = list(automation.diagnostics)
    return values


def list_automations(conn: sa.Connection, consumer: str | None) -> list[StoredAutomation]:
    query = sa.select(automations).order_by(automations.c.consumer, automations.c.key)
    if consumer is not None:
        query = query.where(automations.c.consumer == consumer)
    return [_automation(row) for row in conn.execute(query)]


def get_automation(conn: sa.Connection, consumer: str, key: str) -> StoredAutomation | None:
    row = conn.execute(
        sa.select(automations).where(automations.c.consumer == consumer, automations.c.key == key)
    ).first()
    return None if row is None else _automation(row)


def count_automations(conn: sa.Connection, consumer: str) -> int:
    found = conn.execute(
        sa.select(sa.func.count())
        .select_from(automations)
        .where(automations.c.consumer == consumer)
    ).scalar()
    return int(found or 0)


def insert_automation(conn: sa.Connection, automation: StoredAutomation) -> bool:
    """Insert a new automation; False if the consumer already has one with this key."""
    insert = _insert_ignoring_duplicates(conn, automations)
    inserted = conn.execute(insert, _automation_values(automation)).rowcount == 1
    if inserted:
        _changed_automations(conn)
    return inserted


def replace_automation(conn: sa.Connection, automation: StoredAutomation, expected: int) -> bool:
    """Write a new version over version `expected`; False if the stored one is another (a
    concurrent write won) or is gone."""
    values = _automation_values(automation)
    for name in ("consumer", "key", "created_at"):
        del values[name]
    result = conn.execute(
        sa.update(automations)
        .where(
            automations.c.consumer == automation.consumer,
            automations.c.key == automation.key,
            automations.c.version == expected,
        )
        .values(values)
    )
    if result.rowcount == 1:
        _changed_automations(conn)
    return result.rowcount == 1


def mark_automation(
    conn: sa.Connection,
    consumer: str,
    key: str,
    status: AutomationStatus,
    diagnostics: Sequence[dict[str, Any]],
) -> None:
    """Record what the last compile found (the version is not bumped: no one wrote it)."""
    conn.execute(
        sa.update(automations)
        .where(automations.c.consumer == consumer, automations.c.key == key)
        .values(status=str(status), diagnostics=list(diagnostics))
    )


def delete_automation(conn: sa.Connection, consumer: str, key: str) -> bool:
    result = conn.execute(
        sa.delete(automations).where(automations.c.consumer == consumer, automations.c.key == key)
    )
    if result.rowcount:
        _changed_automations(conn)
    return bool(result.rowcount)


def automations_mark(conn: sa.Connection) -> tuple[int, float]:
    """How many runtime automations there are and when the last was written: replicas compare
    it now and then, in case a change notification was missed."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(automations.c.updated_at)).select_from(automations)
    ).one()
    return int(row[0] or 0), float(row[1] or 0.0)


# -- partner notifications (the outbox) ------------------------------------------------------


def add_notifications(conn: sa.Connection, notices: Sequence[NewNotification]) -> None:
    """Store notifications to deliver (one already stored under its id is left as it is)."""
    if not notices:
        return
    rows = [
        {**_row(notice), "attempts": 0, "next_attempt_at": notice.created_at} for notice in notices
    ]
    conn.execute(_insert_ignoring_duplicates(conn, notifications), rows)


_NOTIFICATION_COLUMNS = (
    notifications.c.id,
    notifications.c.type,
    notifications.c.payload,
    notifications.c.created_at,
    notifications.c.attempts,
    notifications.c.next_attempt_at,
    notifications.c.delivered_at,
    notifications.c.last_error,
)


def _notification(row: Any) -> Notification:
    return Notification(**dict(row))


def claim_notifications(
    conn: sa.Connection, owner: str, now: float, lease: float, limit: int
) -> list[Notification]:
    """Lease up to `limit` notifications that are due (not delivered, next attempt reached,
    no live lease), oldest first, to `owner`. On PostgreSQL rows another replica is claiming
    are skipped (`FOR UPDATE SKIP LOCKED`), so no two replicas send one at the same time."""
    due = (
        sa.select(notifications.c.id)
        .where(
            notifications.c.next_attempt_at <= now,
            sa.or_(notifications.c.lease_owner.is_(None), notifications.c.lease_expires_at < now),
        )
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(
        sa.update(notifications)
        .where(notifications.c.id.in_(ids))
        .values(lease_owner=owner, lease_expires_at=now + lease)
    )
    query = (
        sa.select(*_NOTIFICATION_COLUMNS)
        .where(notifications.c.id.in_(ids))
        .order_by(notifications.c.next_attempt_at, notifications.c.id)
    )
    return [_notification(row) for row in conn.execute(query).mappings()]


def finish_delivery(
    conn: sa.Connection,
    notification_id: str,
    owner: str,
    attempts: int,
    delivered_at: float | None,
    next_attempt_at: float | None,
    error: str | None,
) -> bool:
    """Record one delivery attempt and give up the lease: delivered (`delivered_at`), or
    failed with `error` and tried again at `next_attempt_at`. False when `owner` no longer
    held the lease (it expired and another replica took it over: its record wins)."""
    result = conn.execute(
        sa.update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.lease_owner == owner)
        .values(
            attempts=attempts,
            delivered_at=delivered_at,
            next_attempt_at=None if delivered_at is not None else next_attempt_at,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount)


def release_notifications(conn: sa.Connection, owner: str) -> int:
    """Give up the leases of `owner`'s notifications (on shutdown): another process may
    send them at once."""
    result = conn.execute(
        sa.update(notifications)
        .where(notifications.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)


def list_notifications(conn: sa.Connection, q: NotificationQuery) -> list[Notification]:
    query = sa.select(*_NOTIFICATION_COLUMNS)
    if q.status is NotificationStatus.DELIVERED:
        query = query.where(notifications.c.delivered_at.is_not(None))
    elif q.status is NotificationStatus.FAILING:
        query = query.where(notifications.c.delivered_at.is_(None), notifications.c.attempts > 0)
    elif q.status is NotificationStatus.PENDING:
        query = query.where(notifications.c.delivered_at.is_(None), notifications.c.attempts == 0)
    if q.type is not None:
        query = query.where(notifications.c.type == q.type)
    if q.before_id is not None:
        query = query.where(notifications.c.id < q.before_id)
    query = query.order_by(notifications.c.id.desc()).limit(q.limit)
    return [_notification(row) for row in conn.execute(query).mappings()]


def count_undelivered(conn: sa.Connection) -> int:
    """Notifications not delivered yet (pending or failing): what the index holds."""
    query = sa.select(sa.func.count()).where(notifications.c.next_attempt_at.is_not(None))
    return int(conn.execute(query).scalar_one())


def prune_notifications(conn: sa.Connection, delivered_before: float, limit: int) -> int:
    """Delete up to `limit` notifications delivered before `delivered_before`; never one
    still to deliver."""
    old = list(
        conn.execute(
            sa.select(notifications.c.id)
            .where(notifications.c.delivered_at < delivered_before)
            .order_by(notifications.c.id)
            .limit(limit)
        ).scalars()
    )
    if old:
        conn.execute(sa.delete(notifications).where(notifications.c.id.in_(old)))
    return len(old)
