"""Every query the engine runs, by name, written once for both backends.

Each function takes a synchronous SQLAlchemy connection: SQLite's writer thread calls them
directly, PostgreSQL's async engine through `AsyncConnection.run_sync`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rollout_yaml.store.records import (
    Attempt,
    CredentialStatus,
    EventRecord,
    Hook,
    HookState,
    Ingested,
    NewEvent,
    NewRun,
    Run,
    RunQuery,
    RunStatus,
    RunUpdate,
    StoredCredential,
)
from rollout_yaml.store.schema import (
    attempts,
    credentials,
    events,
    leases,
    oauth_states,
    poll_seen,
    poll_state,
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
    insert_event = _insert_ignoring_duplicates(conn, events).returning(events.c.id)
    inserted = set(conn.execute(insert_event, [_row(event) for event, _ in batch]).scalars())
    run_rows = [
        _run_row(run) for event, new_runs in batch if event.id in inserted for run in new_runs
    ]
    if run_rows:
        conn.execute(sa.insert(runs).returning(runs.c.id), run_rows).all()
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
        record_many(conn, [(calls[i][1][0], calls[i][1][1]) for i in records])
        results.update(dict.fromkeys(records))
    for i, (fn, args) in enumerate(calls):
        if i not in results:
            results[i] = fn(conn, *args)
    return [results[i] for i in range(len(calls))]


def _run_row(run: NewRun) -> dict[str, Any]:
    row = _row(run)
    row["status"] = str(run.status)
    row["attempts"] = 0
    row["updated_at"] = run.created_at
    if run.status in (RunStatus.FILTERED, RunStatus.DRY_RUN):
        row["finished_at"] = run.created_at
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


def record(conn: sa.Connection, update: RunUpdate, attempt: Attempt | None) -> None:
    record_many(conn, [(update, attempt)])


def record_many(conn: sa.Connection, items: Sequence[tuple[RunUpdate, Attempt | None]]) -> None:
    """Save attempts and run states: one multi-row INSERT and one executemany UPDATE (a
    statement compiled once and cached), however many runs the batch holds."""
    attempt_rows = [_row(attempt) for _, attempt in items if attempt is not None]
    if attempt_rows:
        # RETURNING makes SQLAlchemy send one multi-row INSERT instead of a row-by-row loop
        conn.execute(sa.insert(attempts).returning(attempts.c.number), attempt_rows).all()
    rows = []
    for update, _ in items:
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
    result = conn.execute(
        sa.update(runs)
        .where(runs.c.lease_owner.is_not(None))
        .values(lease_owner=None, lease_expires_at=None)
    )
    return int(result.rowcount or 0)


def release(conn: sa.Connection, owner: str) -> int:
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


def put_credential(conn: sa.Connection, credential: StoredCredential) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = _row(credential)
    values["status"] = str(credential.status)
    insert = dialect.insert(credentials).values(values)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[credentials.c.consumer, credentials.c.key],
            set_={
                name: insert.excluded[name] for name in values if name not in ("consumer", "key")
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
) -> None:
    """Change a credential's status (e.g. `needs_reauth` with the provider's reason)."""
    conn.execute(
        sa.update(credentials)
        .where(credentials.c.consumer == consumer, credentials.c.key == key)
        .values(status=str(status), error=error, updated_at=updated_at)
    )


def use_oauth_state(conn: sa.Connection, nonce: str, now: float, expires_at: float) -> bool:
    """Record that an OAuth `state` was used; False if it was used before (a replay). States
    past their expiry are forgotten here: an expired state is refused before it gets here."""
    conn.execute(sa.delete(oauth_states).where(oauth_states.c.expires_at < now))
    insert = _insert_ignoring_duplicates(conn, oauth_states)
    result = conn.execute(insert, {"nonce": nonce, "expires_at": expires_at})
    return result.rowcount == 1
