"""The scale-out store: PostgreSQL through SQLAlchemy's async engine and asyncpg.

Any number of `run` processes share one database; PostgreSQL is the coordinator. Runs are
claimed with `SELECT … FOR UPDATE SKIP LOCKED` and leases (store/queries.py), work done once
across replicas (schedules, pruning, polls, webhook subscriptions) under named leases. Unlike
SQLite, opening the store leaves every lease alone: they may belong to live replicas, and an
expired one makes its work claimable again anyway.

Every query is a function of a sync `Connection` (store/queries.py), run here through
`AsyncConnection.run_sync` in a transaction of its own. Concurrent writes are grouped: while one
transaction commits, the writes that queue up behind it go out together in the next one, as
SQLite's writer thread does, so a burst costs a few commits instead of one each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from rollout_yaml import json_codec
from rollout_yaml.store import queries
from rollout_yaml.store.base import DatabaseUnavailable
from rollout_yaml.store.migrations import apply_migrations
from rollout_yaml.store.query_store import QueryStore

T = TypeVar("T")
log = logging.getLogger("rollout_yaml.store")

# pg_advisory_xact_lock key held while migrating: replicas starting together migrate in turn,
# and the second finds nothing left to do. (The bytes of "rollout-" as a bigint.)
MIGRATION_LOCK = 0x726F6C6C6F75742D
MAX_BATCH = 500
WRITERS = 2  # transactions in flight at once; each carries whatever queued behind the others
RETRIES = 3  # a deadlock or serialization failure is retried this many times
_RETRYABLE = {"40001", "40P01"}


def async_url(database: str) -> URL:
    """`postgresql://…` (or `postgres://…`) as the asyncpg URL SQLAlchemy needs. libpq's
    `sslmode=` is accepted and handed to asyncpg as its `ssl=` option (`connect_timeout=` is
    read by the store)."""
    url = make_url(database.replace("postgres://", "postgresql://", 1))
    if url.drivername in ("postgresql", "postgresql+asyncpg"):
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    query = dict(url.query)
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    query.pop("connect_timeout", None)
    return url.set(query=query)


def connect_timeout(database: str) -> float:
    """libpq's `connect_timeout=` (seconds) of the URL, else 10 s: a server that does not
    answer makes `run` fail in seconds, not after the driver's default minute."""
    found = make_url(database.replace("postgres://", "postgresql://", 1)).query.get(
        "connect_timeout"
    )
    try:
        return float(found if isinstance(found, str) else 10)
    except ValueError:
        return 10.0


class _Op:
    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: Any) -> None:
        self.fn = fn
        self.args = args
        self.future: asyncio.Future[Any] = future


class PostgresStore(QueryStore):
    shared = True

    def __init__(self, database: str, *, pool_size: int = 10) -> None:
        self.url = async_url(database)
        self.timeout = connect_timeout(database)
        self.pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._pending: list[_Op] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._active = 0  # writer loops running; counted down the moment one finds no work
        self._listener: Any = None  # the asyncpg connection that LISTENs, once asked for

    @property
    def safe_url(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=True)

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> list[int]:
        self._engine = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=self.pool_size,
            pool_pre_ping=True,  # a server restart leaves dead connections in the pool
            pool_recycle=1800,
            connect_args={"timeout": self.timeout},
            json_serializer=json_codec.dumps_text,
            json_deserializer=json_codec.loads_stored,
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
                applied: list[int] = await conn.run_sync(apply_migrations)
        except (OSError, DBAPIError) as exc:
            await self._engine.dispose()
            self._engine = None
            raise DatabaseUnavailable(
                f"cannot use the PostgreSQL database {self.safe_url}: {_reason(exc)}"
            ) from None
        return applied

    async def listen_automations(self, changed: Callable[[], None]) -> None:
        """LISTEN on a connection of its own (a pooled one would be handed to others)."""
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listener = await asyncpg.connect(dsn, timeout=self.timeout)
        await self._listener.add_listener(
            queries.AUTOMATIONS_CHANNEL, lambda *_notification: changed()
        )

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    # -- plumbing ------------------------------------------------------------------------

    def _write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Op(fn, args, future))
        if self._active < WRITERS:
            self._active += 1
            task = asyncio.create_task(self._write_loop())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return future

    async def _write_loop(self) -> None:
        """Commit what is pending, a batch per transaction, until nothing is left. The count
        goes down in the same step as the last look at the queue, so a write queued after it
        always starts a loop of its own."""
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._commit(batch)
        finally:
            self._active -= 1

    async def _commit(self, batch: list[_Op]) -> None:
        try:
            results = await self._transaction(
                queries.apply_grouped, [(op.fn, op.args) for op in batch]
            )
        except Exception as exc:
            if len(batch) > 1 and _one_ops_fault(exc):
                for op in batch:  # one bad op must not fail its neighbours
                    await self._commit([op])
                return
            for op in batch:  # the database is unreachable: trying each op would not help
                if not op.future.done():
                    op.future.set_exception(exc)
            return
        for op, value in zip(batch, results, strict=True):
            if not op.future.done():
                op.future.set_result(value)

    async def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        engine = self._engine
        assert engine is not None, "the store is not open"
        for attempt in range(RETRIES + 1):
            try:
                async with engine.begin() as conn:
                    return await conn.run_sync(fn, *args)
            except DBAPIError as exc:
                if attempt == RETRIES or _sqlstate(exc) not in _RETRYABLE:
                    raise
                log.info("transaction retried after %s", _sqlstate(exc))
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _write_alone(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._transaction(fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        engine = self._engine
        assert engine is not None, "the store is not open"
        async with engine.connect() as conn:
            return await conn.run_sync(fn, *args)

    # -- the Store protocol --------------------------------------------------------------

    async def ping(self) -> bool:
        engine = self._engine
        if engine is None:
            return False
        try:
            async with asyncio.timeout(5):
                conn: AsyncConnection
                async with engine.connect() as conn:
                    return bool((await conn.execute(sa.text("select 1"))).scalar())
        except Exception:
            return False


def _one_ops_fault(exc: Exception) -> bool:
    """Whether the failure may come from one op's data (a constraint, a bad value, a bug in one
    query) rather than from the connection or the server, which would fail every op."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return not isinstance(exc, OSError | DBAPIError)


def _sqlstate(exc: DBAPIError) -> str | None:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return str(code) if code else None


def _reason(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip() or type(orig).__name__
