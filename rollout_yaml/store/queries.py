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
    EventRecord,
    Ingested,
    NewEvent,
    NewRun,
    Run,
    RunQuery,
    RunStatus,
    RunUpdate,
)
from rollout_yaml.store.schema import attempts, events, leases, poll_state, runs


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
