"""The embedded store: one SQLite file in WAL mode, one writer thread with grouped commits.

Every write is handed to the writer thread, which commits whatever has queued up in one
transaction: under load, hundreds of events share one commit, and the event loop never waits
on a commit of its own. Reads run on a small pool of other connections (WAL lets them proceed
while the writer commits). Only one process may run an environment on a SQLite file; a lock
file enforces it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from rollout_yaml.store import queries
from rollout_yaml.store.migrations import apply_migrations
from rollout_yaml.store.query_store import QueryStore

T = TypeVar("T")
MAX_BATCH = 1000


class StoreLocked(RuntimeError):
    """Another process already runs this environment on the same SQLite file."""


class _Op:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()

    def resolve(self, value: Any) -> None:
        self.loop.call_soon_threadsafe(_set_result, self.future, value)

    def fail(self, exc: BaseException) -> None:
        self.loop.call_soon_threadsafe(_set_exception, self.future, exc)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _configure(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9);
    # only a power loss may drop the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SQLiteStore(QueryStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._engine: sa.Engine | None = None
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqlite-read")
        self._lock_file: IO[str] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> list[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._engine = sa.create_engine(
            f"sqlite:///{self.path}",
            poolclass=QueuePool,
            pool_size=5,
            connect_args={"check_same_thread": False},
        )
        event.listen(self._engine, "connect", _configure)
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()
        return list(await self._write(_migrate))

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join, 10)
            self._writer = None
        self._readers.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _take_lock(self) -> None:
        lock = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise StoreLocked(
                f"{self.path} is in use by another rollout-yaml process; SQLite environments "
                "run in one process (use PostgreSQL to run several)"
            ) from exc
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock_file = lock

    # -- plumbing ------------------------------------------------------------------------

    def _write(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        op = _Op(fn, args, asyncio.get_running_loop())
        self._queue.put(op)
        return op.future

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        engine = self._engine
        assert engine is not None

        def run() -> T:
            with engine.connect() as conn:
                return fn(conn, *args)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def _write_loop(self) -> None:
        assert self._engine is not None
        conn = self._engine.connect()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        op = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if op is None:
                        stop = True
                        break
                    batch.append(op)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sa.Connection, batch: list[_Op]) -> None:
        """Commit a batch in one transaction; ingests and records of many callers are merged
        into a few multi-row statements."""
        try:
            with conn.begin():
                results = queries.apply_grouped(conn, [(op.fn, op.args) for op in batch])
        except Exception:  # one bad op must not fail its neighbours: retry them one by one
            for op in batch:
                try:
                    with conn.begin():
                        op.resolve(op.fn(conn, *op.args))
                except Exception as exc:
                    op.fail(exc)
            return
        for op, result in zip(batch, results, strict=True):
            op.resolve(result)

    # -- the Store protocol --------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self._read(lambda c: c.execute(sa.text("select 1")).scalar()))
        except Exception:
            return False


def _migrate(conn: sa.Connection) -> list[int]:
    applied = apply_migrations(conn)
    # This process holds the file lock, so any lease in the file belongs to a process that is
    # gone (a crash): its runs are claimable at once instead of after the lease expires.
    queries.release_all(conn)
    return applied
