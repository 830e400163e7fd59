"""Multi-row INSERTs of the hot path (events, their runs, attempts) sent straight to the
sqlite3 driver.

On SQLite, SQLAlchemy's execution of a small INSERT (building the statement, its cache key,
the parameters, the result) costs about as much as the insert itself: an ingest transaction of
one event and one run takes about 190 µs through it and 96 µs this way, and at a few hundred
events a second every event is a transaction of its own. The statement text is built once per
table, column set and row count; JSON columns are encoded as the table's JSON type encodes them
(`json_codec.dumps_text`, so None is stored as `null`, as SQLAlchemy's JSON type stores it).
`tests/test_store_sqlite_rows.py` holds the rows written here to the ones SQLAlchemy writes.
PostgreSQL keeps SQLAlchemy's statements (`queries.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from rollout_yaml import json_codec

MAX_VARIABLES = 32_766
"""SQLite's limit of bound parameters in one statement (since 3.32)."""
MAX_ROWS = 500
"""Rows per statement at most: a larger batch is sent as several, each text cached."""


def insert_rows(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    ignore_duplicates: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (every one with the same keys) into `table` on the connection's own
    transaction; the `returning` column of each row inserted (none for a duplicate skipped
    with `ignore_duplicates`), or [] without one."""
    if not rows:
        return []
    columns = tuple(rows[0])
    encoded = _json_columns(table, columns)
    per_statement = max(1, min(MAX_ROWS, MAX_VARIABLES // len(columns)))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    found: list[Any] = []
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                values = [row[name] for name in columns]
                for at in encoded:
                    values[at] = json_codec.dumps_text(values[at])
                params.extend(values)
            sql = _statement(table.name, columns, len(chunk), ignore_duplicates, returning)
            try:
                cursor.execute(sql, params)
            except sqlite3.Error as exc:  # raised as SQLAlchemy raises it (IntegrityError, ...)
                raise sa.exc.DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
            if returning is not None:
                found.extend(value for (value,) in cursor.fetchall())
    finally:
        cursor.close()
    return found


@lru_cache(maxsize=64)
def _json_columns(table: sa.Table, columns: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(i for i, name in enumerate(columns) if isinstance(table.c[name].type, sa.JSON))


@lru_cache(maxsize=256)
def _statement(
    table: str, columns: tuple[str, ...], count: int, ignore: bool, returning: str | None
) -> str:
    marks = "(" + ", ".join("?" * len(columns)) + ")"
    names = ", ".join(f'"{name}"' for name in columns)  # `trigger` is a keyword
    sql = f'INSERT INTO "{table}" ({names}) VALUES ' + ", ".join([marks] * count)
    if ignore:
        sql += " ON CONFLICT DO NOTHING"
    if returning is not None:
        sql += f" RETURNING {returning}"
    return sql
