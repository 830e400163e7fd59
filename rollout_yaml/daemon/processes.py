"""`runtime.processes: auto | N`: one daemon as N equal processes, so every core serves and
executes.

The daemon (this process) prepares what must happen once: it opens the store alone (migrations;
on SQLite the leases of a crashed predecessor released, then the file's lock held shared with
its processes), holds the port (a socket bound with `SO_REUSEPORT` that never listens) and
publishes the address file. Then it forks the processes: each is a whole daemon of its own
(`daemon/process.py` `serve` as a `Member`): its own socket on the port, so the kernel spreads
connections over them; its own runtime, workers and lease owner, coordinated through the store
as replicas are (leases, claims, named leases for schedules, polls and pruning; rate-limit
quotas in the store); its own watcher, so a saved configuration reloads in every process.

SIGTERM or SIGINT is passed to every process, each drains as a single daemon does, and the
daemon exits when all have. If a process dies, the daemon stops the others and exits non-zero
(a supervisor restarts it; the restarted daemon releases the dead one's leases at once). Each
process dies with the daemon (`PR_SET_PDEATHSIG`), so `kill -9` of the daemon leaves nothing
running on the file or the port.

The daemon forks before any thread or event loop exists in it (fork and threads do not mix).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import IO, Literal

from rollout_yaml.config.project import Layout
from rollout_yaml.daemon.logs import configure
from rollout_yaml.daemon.process import (
    CannotStart,
    Member,
    RunOptions,
    key_problem,
    serve,
    shared_port_socket,
)
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.server.address import published
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import new_id
from rollout_yaml.store.sqlite import SQLiteStore

log = logging.getLogger("rollout_yaml.daemon")

LOCK_WAIT = 2.0
"""Seconds to wait for the SQLite lock at start: the processes of a daemon killed a moment ago
may still be exiting."""
_PR_SET_PDEATHSIG = 1


def process_count(setting: int | Literal["auto"]) -> int:
    """`auto`: one process per CPU this daemon may run on."""
    if setting == "auto":
        if hasattr(os, "sched_getaffinity"):
            return max(len(os.sched_getaffinity(0)), 1)
        return os.cpu_count() or 1
    return setting


def supervise(
    layout: Layout,
    options: RunOptions,
    env: CompiledEnvironment,
    count: int,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> int:
    """Run the environment as `count` processes until SIGTERM; the exit code."""
    configure(options.log_format, lambda: env.secret_values)
    problem = key_problem(env)
    if problem is not None:
        raise CannotStart(problem)
    lock = asyncio.run(_prepare_store(layout, options, env))
    settings = env.settings
    host = options.host or settings.server.host
    port = options.port if options.port is not None else settings.server.port
    try:
        holder = shared_port_socket(host, port, listen=False)
    except OSError as exc:
        raise CannotStart(f"cannot listen on {host}:{port}: {exc}") from exc
    port = int(holder.getsockname()[1])
    instance = new_id("daemon")
    children: dict[int, int] = {}  # pid → process number
    for number in range(1, count + 1):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is its own process's
            _child(layout, options, env, Member(instance, port, number), loop_factory)
        children[pid] = number
    log.info("daemon started %d processes on port %d", count, port)
    try:
        return _wait(layout, options, host, port, instance, children)
    finally:  # the port and the SQLite lock are let go only when every process has exited
        holder.close()
        if lock is not None:
            lock.close()


async def _prepare_store(
    layout: Layout, options: RunOptions, env: CompiledEnvironment
) -> IO[str] | None:
    """Migrate and (SQLite) release a dead predecessor's leases, alone; then hold the SQLite
    file's lock shared for the processes. Every thread the store started is gone after."""
    store = open_store(env.settings.database, layout.env_dir(options.env), lock_wait=LOCK_WAIT)
    try:
        applied = await store.open()
    except Exception as exc:
        await store.close()
        raise CannotStart(str(exc)) from exc
    if applied:
        log.info("database migrated to version %d", applied[-1])
    lock = store.share_lock() if isinstance(store, SQLiteStore) else None
    await store.close()
    return lock


def _child(
    layout: Layout,
    options: RunOptions,
    env: CompiledEnvironment,
    member: Member,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    """A process of the daemon: serve until SIGTERM, then exit (never return to the caller)."""
    code = 1
    try:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches the daemon
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            code = runner.run(serve(layout, options, env, member))
    except CannotStart as exc:
        log.error("process %d cannot start: %s", member.number, exc)
        code = 2
    except BaseException:
        log.exception("process %d failed", member.number)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the daemon dies, however it dies."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the daemon died before the call
        os._exit(1)


def _wait(
    layout: Layout,
    options: RunOptions,
    host: str,
    port: int,
    instance: str,
    children: dict[int, int],
) -> int:
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            log.info(
                "received %s: draining %d processes", signal.Signals(signum).name, len(children)
            )
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    code = 0
    with published(layout.env_dir(options.env), host, port, options.env, instance):
        while children:
            pid, status = os.waitpid(-1, 0)
            number = children.pop(pid, None)
            if number is None:
                continue
            exit_code = os.waitstatus_to_exitcode(status)
            if not stopping:
                log.error("process %d exited with code %d: stopping the others", number, exit_code)
                code = exit_code if exit_code > 0 else 1
                stopping = True
                for other in children:
                    _signal(other, signal.SIGTERM)
            elif exit_code not in (0, -signal.SIGTERM) and code == 0:
                # (killed by SIGTERM: it had not started serving yet, nothing was in hand)
                code = exit_code if exit_code > 0 else 1
    log.info("stopped")
    return code


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
