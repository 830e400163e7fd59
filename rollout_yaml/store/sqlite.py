"""The embedded store: one SQLite file in WAL mode, one writer thread with grouped commits.

Every write is handed to the writer thread, which commits whatever has queued up in one
transaction: under load, hundreds of events share one commit, and the event loop never waits
on a commit of its own. Reads run on a small pool of other connections (WAL lets them proceed
while the writer commits). Only one daemon may run an environment on a SQLite file; a lock
file enforces it. That daemon may run several equal processes on the file (`runtime.processes`):
it opens the file alone first (migrations, leases of a crashed predecessor released), then
holds the lock shared with its processes, whose stores open it with `among_processes`: their
writers take the file's write lock at the start of each transaction (`BEGIN IMMEDIATE`), so a
claim's read and its update are never split by another process's commit, and leases, claims
and named leases coordinate them as they do PostgreSQL replicas.

Between the processes the writers take turns on a `flock` of `<file>.write-lock` before each
transaction, so the one waiting wakes the moment the other commits. Left to SQLite alone, a
writer that finds the file locked sleeps in its busy handler (1, 2, 5 … 100 ms) and retries:
under load two processes each waited out those sleeps, and p99 event→action latency went from
tens of milliseconds to seconds.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from rollout_yaml import json_codec
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


def _set_results(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, value in answers:
        _set_result(future, value)


def _resolve_all(batch: list[_Op], results: list[Any]) -> None:
    """Answer a committed batch with one wakeup of each event loop it came from, not one per
    write: each wakeup is a system call and a hand-over of the GIL to the loop's thread."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for op, result in zip(batch, results, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result))
    for loop, answers in by_loop.items():
        loop.call_soon_threadsafe(_set_results, answers)


def _configure(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9);
    # only a power loss may drop the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(path: Path) -> sa.Engine:
    """The store's engine for the file at `path`: its JSON codec and, on every connection, WAL,
    `synchronous=NORMAL`, a busy timeout and foreign keys."""
    engine = sa.create_engine(
        f"sqlite:///{path}",
        poolclass=QueuePool,
        pool_size=5,
        connect_args={"check_same_thread": False},
        json_serializer=json_codec.dumps_text,
        json_deserializer=json_codec.loads_stored,
    )
    event.listen(engine, "connect", _configure)
    return engine


def _begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class SQLiteStore(QueryStore):
    def __init__(
        self, path: Path, *, among_processes: bool = False, lock_wait: float = 0.0
    ) -> None:
        self.path = path
        self.lock_wait = lock_wait  # how long to wait for another daemon's lock to go
        # one of the processes of one daemon: the daemon holds the file's lock (shared with
        # them), migrated the file and released its leases before starting them
        self.among_processes = among_processes
        self.shared = among_processes  # rate-limit quotas live in the file, for all of them
        self._engine: sa.Engine | None = None
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqlite-read")
        self._lock_file: IO[str] | None = None
        self._turns: IO[str] | None = None  # `<file>.write-lock`, among processes only

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> list[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._engine = create_engine(self.path)
        if self.among_processes:
            self._turns = open(self.path.with_suffix(".write-lock"), "a")  # noqa: SIM115
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()
        return list(await self._write(_migrate, not self.among_processes))

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
        if self._turns is not None:
            self._turns.close()
            self._turns = None

    def _take_lock(self) -> None:
        lock = open(self.path.with_suffix(".lock"), "a")  # noqa: SIM115 - held while open
        mode = fcntl.LOCK_SH if self.among_processes else fcntl.LOCK_EX
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(lock, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                lock.close()
                raise StoreLocked(
                    f"{self.path} is in use by another rollout-yaml process; a SQLite "
                    "environment is run by one daemon (its `runtime.processes` share the file; "
                    "use PostgreSQL to run several daemons)"
                ) from exc
        if not self.among_processes:
            lock.truncate(0)
            lock.write(str(os.getpid()))
            lock.flush()
        self._lock_file = lock

    def share_lock(self) -> IO[str]:
        """Hold the file's lock shared from now on, for this daemon's processes to open the
        file beside it (`among_processes`); the caller keeps the returned file open while they
        run, and this store no longer closes it."""
        lock = self._lock_file
        assert lock is not None and not self.among_processes
        fcntl.flock(lock, fcntl.LOCK_SH)
        self._lock_file = None
        return lock

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
        # the driver's own transaction handling off, so that each commit starts with the file's
        # write lock taken (other processes of the daemon may write between two commits)
        conn.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
        event.listen(conn, "begin", _begin_immediate)
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
        if self._turns is None:
            self._commit_batch(conn, batch)
            return
        fcntl.flock(self._turns, fcntl.LOCK_EX)  # the writer thread waits; the loop does not
        try:
            self._commit_batch(conn, batch)
        finally:
            fcntl.flock(self._turns, fcntl.LOCK_UN)

    def _commit_batch(self, conn: sa.Connection, batch: list[_Op]) -> None:
        try:
            with conn.begin():
                results = queries.apply_grouped(conn, [(op.fn, op.args) for op in batch])
        except Exception:  # one bad op must not fail its neighbours: retry them one by one
            for op in batch:
                try:
                    with conn.begin():
                        result = op.fn(conn, *op.args)
                except Exception as exc:
                    op.fail(exc)
                else:  # answered once committed: a caller never acts on an uncommitted write
                    op.resolve(result)
            return
        _resolve_all(batch, results)

    # -- the Store protocol --------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return bool(await self._read(lambda c: c.execute(sa.text("select 1")).scalar()))
        except Exception:
            return False


def _migrate(conn: sa.Connection, alone: bool) -> list[int]:
    applied = apply_migrations(conn)
    if alone:
        # This process holds the file lock alone, so any lease in the file belongs to a
        # process that is gone (a crash): its runs are claimable at once, not at its expiry.
        queries.release_all(conn)
    return applied
