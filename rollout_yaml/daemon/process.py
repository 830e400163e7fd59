"""`rollout-yaml run`: one process serving one environment until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from rollout_yaml.config.diagnostics import Diagnostic, Severity, format_text
from rollout_yaml.config.loader import load_consumer_file
from rollout_yaml.config.project import Layout
from rollout_yaml.daemon import heap
from rollout_yaml.daemon.logs import configure
from rollout_yaml.daemon.watch import Watcher, watched_folders
from rollout_yaml.engine.cipher import CredentialCipher, EncryptionKeyError
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import public_base
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.store.factory import open_store

log = logging.getLogger("rollout_yaml.daemon")


class CannotStart(Exception):
    """The environment is invalid or its resources are unavailable (exit code 2)."""


@dataclass(frozen=True)
class RunOptions:
    env: str
    host: str | None = None
    port: int | None = None
    once: bool = False
    once_timeout: float = 300.0
    log_format: str = "json"
    files_read_at: float | None = None
    """When the configuration the daemon starts with was read: a file saved after that, before
    the watcher was watching (a process of several still starting), is reloaded at start."""


def consumer_files(env_dir: Path, changed: frozenset[Path]) -> list[Path]:
    """The changed paths when each is an existing consumer file of the environment (those are
    recompiled on their own); else nothing (a full reload)."""
    folder = (env_dir / "consumers").resolve()
    if not changed:
        return []
    for path in changed:
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            return []
        if path.resolve().parent != folder:
            return []
    return sorted(changed)


def compile_for_run(
    layout: Layout, env: str
) -> tuple[CompiledEnvironment | None, list[Diagnostic]]:
    """Like `validate`, but an unset variable is an error: the runner needs every secret."""
    compiled, diagnostics = load_and_compile(layout, env, missing_secret=Severity.ERROR)
    errors = [d for d in diagnostics if d.is_error]
    return (None if errors else compiled), errors


def shared_port_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound to `host:port` with `SO_REUSEPORT`: the daemon's processes each
    listen on one (the kernel spreads connections over them); the daemon holds one that does
    not listen, so the port stays its own while they start and stop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host.strip("[]"), port))
        if listen:
            sock.listen(2048)
            sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon drains the engine first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def key_problem(env: CompiledEnvironment) -> str | None:
    """Why `encryption_key` cannot encrypt (it is set but not a Fernet key), or None."""
    if not env.settings.encryption_key:
        return None
    try:
        CredentialCipher(env.settings.encryption_key)
    except EncryptionKeyError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Member:
    """This process is one of a daemon's `runtime.processes`: the daemon (daemon/processes.py)
    prepared the store, holds the port and publishes the address; this one listens on its own
    socket of the port (`SO_REUSEPORT`) and answers `/healthz` with the daemon's instance id."""

    instance: str
    port: int
    number: int


async def serve(
    layout: Layout, options: RunOptions, env: CompiledEnvironment, member: Member | None = None
) -> int:
    problem = key_problem(env)
    if problem is not None:
        raise CannotStart(problem)
    store = open_store(
        env.settings.database, layout.env_dir(options.env), among_processes=member is not None
    )
    try:
        applied = await store.open()
    except Exception as exc:
        raise CannotStart(str(exc)) from exc
    if applied:
        log.info("database migrated to version %d", applied[-1])
    runtime = Runtime(env, store)
    if member is not None:
        runtime.instance = member.instance
    configure(options.log_format, lambda: runtime.config.current.secret_values)
    if options.once:
        return await _run_once(runtime, options)
    return await _run_forever(layout, options, runtime, member)


async def _run_once(runtime: Runtime, options: RunOptions) -> int:
    await runtime.start(claim=False)
    finished = await runtime.drain_queue(options.once_timeout)
    await runtime.stop(grace=5)
    await runtime.store.close()
    log.info("--once: %s", "queue drained" if finished else "timed out with work left")
    return 0 if finished else 1


def handed_out_urls(env: CompiledEnvironment, listening: str) -> str:
    """Which base the daemon puts in the URLs it gives other Apps, and why (said at start-up:
    a webhook registered with the wrong host is a silent failure)."""
    base = public_base(env, listening)
    if env.settings.server.public_url:
        return f"webhook URLs and the OAuth2 redirect_uri start with {base} (server.public_url)"
    return (
        f"webhook URLs and the OAuth2 redirect_uri start with {base}, the address this daemon "
        "listens on (server.public_url is not set; set it where other Apps must reach "
        "this daemon from elsewhere)"
    )


async def _run_forever(
    layout: Layout, options: RunOptions, runtime: Runtime, member: Member | None = None
) -> int:
    from rollout_yaml.server.address import local_url, published
    from rollout_yaml.server.app import create_app

    settings = runtime.config.current.settings
    host = options.host or settings.server.host
    port = options.port if options.port is not None else settings.server.port
    if member is not None:
        port = member.port
    config = uvicorn.Config(
        create_app(runtime),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    if member is None:
        listening = config.bind_socket()  # bound here: with port 0 the OS picks a free one
    else:
        listening = shared_port_socket(host, port, listen=True)
    port = int(listening.getsockname()[1])
    runtime.listening = local_url(host, port)
    server = _Server(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        log.info("received %s: draining", signal.Signals(signum).name)
        server.should_exit = True
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)

    async def reload(changed: frozenset[Path]) -> None:
        started = time.perf_counter()
        saved = consumer_files(layout.env_dir(options.env), changed)
        if saved:
            await reload_consumers(saved, started)
            return
        compiled, errors = await asyncio.to_thread(compile_for_run, layout, options.env)
        if compiled is None:
            runtime.config.reject(errors)
            runtime.metrics.reload_failures.inc()
            log.error("configuration not reloaded, the running one stays:\n%s", format_text(errors))
            return
        problem = key_problem(compiled)
        if problem is not None:
            runtime.metrics.reload_failures.inc()
            log.error("configuration not reloaded, the running one stays: %s", problem)
            return
        await runtime.reload(compiled)
        heap.settle()  # the previous configuration is garbage now
        watcher.watch(folders(compiled))
        log.info(
            "configuration reloaded in %.0f ms (generation %d, %d automations)",
            (time.perf_counter() - started) * 1000,
            runtime.config.generation,
            len(compiled.automations),
            extra={"generation": runtime.config.generation},
        )

    async def reload_consumers(paths: list[Path], started: float) -> None:
        """Saved consumer files, each compiled on its own against the running connectors and
        blueprints: one consumer's edit costs that consumer."""
        for path in paths:
            variables = runtime.config.current.source.variables
            loaded, found = load_consumer_file(
                layout, options.env, path, variables, missing_secret=Severity.ERROR
            )
            errors = [d for d in found if d.is_error]
            if loaded is not None and not errors:
                errors = await runtime.reload_consumer(loaded)
            if errors:
                runtime.config.reject(errors)
                runtime.metrics.reload_failures.inc()
                log.error(
                    "%s not reloaded, the running one stays:\n%s",
                    layout.display(path),
                    format_text(errors),
                )
                continue
            log.info(
                "consumer %s reloaded in %.0f ms (generation %d)",
                path.stem,
                (time.perf_counter() - started) * 1000,
                runtime.config.generation,
                extra={"generation": runtime.config.generation},
            )

    def folders(env: CompiledEnvironment) -> list[Path]:
        return watched_folders(layout.root, layout.env_dir(options.env), env.settings.release)

    watcher = Watcher(folders(runtime.config.current), reload)
    await runtime.start()
    heap.settle()  # configuration, app and modules are loaded: out of later collections
    watcher.start()
    if options.files_read_at is not None:
        watcher.catch_up(options.files_read_at)
    log.info(
        "environment %s running on http://%s:%d (%d automations)%s",
        options.env,
        host,
        port,
        len(runtime.config.current.automations),
        "" if member is None else f" in process {member.number}",
    )
    log.info("%s", handed_out_urls(runtime.config.current, runtime.listening))
    address = (
        published(layout.env_dir(options.env), host, port, options.env, runtime.instance)
        if member is None
        else contextlib.nullcontext()
    )
    try:
        with address:
            await server.serve(sockets=[listening])
    finally:
        watcher.stop()
        await runtime.stop()
        await runtime.store.close()
        log.info("stopped")
    return 0
