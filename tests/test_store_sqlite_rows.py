"""The hot path's INSERTs sent straight to sqlite3 (`store/sqlite_rows.py`) write exactly what
SQLAlchemy's statements write: the same rows, the same stored types, the same ids returned, the
same duplicates skipped and the same error for a conflict, on two real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import ODD_JSON

from rollout_yaml.store import queries, schema, sqlite_rows
from rollout_yaml.store.migrations import apply_migrations
from rollout_yaml.store.sqlite import create_engine

Insert = Callable[..., list[Any]]

text = st.text(max_size=12)
times = st.floats(0, 2e9, allow_nan=False) | st.integers(0, 2_000_000_000)
few = st.sampled_from(["a", "b", "c"])  # few values, so keys and ids repeat


def event_rows() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "id": st.builds("evt_{}".format, st.integers(0, 6)),
            "consumer": few,
            "app": few,
            "trigger": st.just("submitted"),
            "dedupe_key": few | text,
            "payload": ODD_JSON,
            "received_at": times,
            "source": st.sampled_from(["push", "webhook", "poll"]),
        }
    )


def attempt_rows(run_id: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "run_id": st.just(run_id),
            "number": st.integers(1, 1_000_000),
            "started_at": times,
            "duration_ms": times,
            "request": st.none() | ODD_JSON,
            "response": ODD_JSON,
            "error": st.none() | text,
        }
    )


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two files with the store's schema and its engine settings: one written through
    SQLAlchemy, one through sqlite_rows."""
    engines = []
    for name in ("through-sqlalchemy", "through-driver"):
        engine = create_engine(tmp_path / f"{name}.db")
        with engine.begin() as conn:
            apply_migrations(conn)
        engines.append(engine)
    yield engines[0], engines[1]
    for engine in engines:
        engine.dispose()


def _contents(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    """Every stored value with its SQLite type, in insertion order."""
    columns = [f'"{column.name}"' for column in table.columns]
    typed = ", ".join(f"{name}, typeof({name})" for name in columns)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f'SELECT {typed} FROM "{table.name}" ORDER BY rowid')
        return [tuple(row) for row in rows]


def _insert_both(
    databases: tuple[sa.Engine, sa.Engine],
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    **options: Any,
) -> list[list[Any] | type[BaseException]]:
    """The same insert on both files; what each returned, or the class of what it raised."""
    answers: list[list[Any] | type[BaseException]] = []
    inserts: list[Insert] = [queries.insert_with_sqlalchemy, sqlite_rows.insert_rows]
    for engine, insert in zip(databases, inserts, strict=True):
        try:
            with engine.begin() as conn:
                answers.append(sorted(insert(conn, table, rows, **options)))
        except sa.exc.DBAPIError as exc:
            answers.append(type(exc))
    return answers


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(event_rows(), min_size=1, max_size=8), min_size=1, max_size=3))
def test_events_are_written_and_deduplicated_as_sqlalchemy_writes_them(
    databases: tuple[sa.Engine, sa.Engine], batches: list[list[dict[str, Any]]]
) -> None:
    """Batches of events whose ids and keys repeat, within a batch and across batches."""
    for engine in databases:
        with engine.begin() as conn:
            conn.execute(sa.delete(schema.events))
    for batch in batches:
        through_sqlalchemy, through_driver = _insert_both(
            databases, schema.events, batch, ignore_duplicates=True, returning="id"
        )
        assert through_driver == through_sqlalchemy
    assert _contents(databases[1], schema.events) == _contents(databases[0], schema.events)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_runs_and_attempts_are_written_as_sqlalchemy_writes_them(
    databases: tuple[sa.Engine, sa.Engine], data: st.DataObject
) -> None:
    """Runs with and without input (a JSON `null` either way) and attempts whose numbers may
    repeat: a conflict is the same IntegrityError on both, and leaves nothing behind."""
    for engine in databases:
        with engine.begin() as conn:
            for table in (schema.attempts, schema.runs, schema.events):
                conn.execute(sa.delete(table))
    event = data.draw(event_rows())
    _insert_both(databases, schema.events, [event])
    runs = [
        {
            "id": f"run_{n}",
            "consumer": event["consumer"],
            "automation": data.draw(few),
            "event_id": event["id"],
            "event_key": data.draw(st.sampled_from([f"key-{n}", "shared"])),
            "status": data.draw(st.sampled_from(["queued", "succeeded"])),
            "attempts": 0,
            "input": data.draw(st.none() | ODD_JSON),
            "created_at": data.draw(times),
            "updated_at": 1.5,
            "finished_at": data.draw(st.none() | times),
        }
        for n in range(data.draw(st.integers(1, 4)))
    ]
    through_sqlalchemy, through_driver = _insert_both(databases, schema.runs, runs)
    assert through_driver == through_sqlalchemy
    if through_sqlalchemy == []:
        attempts = data.draw(st.lists(attempt_rows(runs[0]["id"]), min_size=1, max_size=4))
        through_sqlalchemy, through_driver = _insert_both(databases, schema.attempts, attempts)
        assert through_driver == through_sqlalchemy
    for table in (schema.runs, schema.attempts):
        assert _contents(databases[1], table) == _contents(databases[0], table)


def test_a_batch_larger_than_one_statement_is_sent_whole(
    databases: tuple[sa.Engine, sa.Engine],
) -> None:
    """More rows than one statement holds: every one is inserted and returned."""
    rows = [
        {
            "id": f"evt_{n}",
            "consumer": "acme",
            "app": "formflow",
            "trigger": "submitted",
            "dedupe_key": str(n % 1_200),  # the last 100 repeat earlier keys
            "payload": {"n": n},
            "received_at": 1.0,
            "source": "push",
        }
        for n in range(1_300)
    ]
    assert sqlite_rows.MAX_ROWS < 1_300
    through_sqlalchemy, through_driver = _insert_both(
        databases, schema.events, rows, ignore_duplicates=True, returning="id"
    )
    assert through_driver == through_sqlalchemy
    assert isinstance(through_driver, list) and len(through_driver) == 1_200
    assert _contents(databases[1], schema.events) == _contents(databases[0], schema.events)


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(
    databases: tuple[sa.Engine, sa.Engine],
) -> None:
    """Callers (the writer's one-by-one retry, the API's answer) see one kind of error."""
    with databases[1].begin() as conn, pytest.raises(sa.exc.IntegrityError) as raised:
        sqlite_rows.insert_rows(
            conn, schema.attempts, [{"run_id": "run_x", "number": 1, "started_at": None}]
        )
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
