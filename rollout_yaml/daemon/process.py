"""`rollout-yaml run`: one process serving one environment until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from rollout_yaml.config.diagnostics import Diagnostic, Severity, format_text
from rollout_yaml.config.project import Layout
from rollout_yaml.daemon.logs import configure
from rollout_yaml.daemon.watch import Watcher, watched_folders
from rollout_yaml.engine.runtime import Runtime
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


def compile_for_run(
    layout: Layout, env: str
) -> tuple[CompiledEnvironment | None, list[Diagnostic]]:
    """Like `validate`, but an unset variable is an error: the runner needs every secret."""
    compiled, diagnostics = load_and_compile(layout, env, missing_secret=Severity.ERROR)
    errors = [d for d in diagnostics if d.is_error]
    return (None if errors else compiled), errors


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon drains the engine first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(layout: Layout, options: RunOptions, env: CompiledEnvironment) -> int:
    store = open_store(env.settings.database, layout.env_dir(options.env))
    try:
        applied = await store.open()
    except Exception as exc:
        raise CannotStart(str(exc)) from exc
    if applied:
        log.info("database migrated to version %d", applied[-1])
    runtime = Runtime(env, store)
    configure(options.log_format, lambda: runtime.config.current.secret_values)
    if options.once:
        return await _run_once(runtime, options)
    return await _run_forever(layout, options, runtime)


async def _run_once(runtime: Runtime, options: RunOptions) -> int:
    await runtime.start(claim=False)
    finished = await runtime.drain_queue(options.once_timeout)
    await runtime.stop(grace=5)
    await runtime.store.close()
    log.info("--once: %s", "queue drained" if finished else "timed out with work left")
    return 0 if finished else 1


async def _run_forever(layout: Layout, options: RunOptions, runtime: Runtime) -> int:
    from rollout_yaml.server.address import published
    from rollout_yaml.server.app import create_app

    settings = runtime.config.current.settings
    host = options.host or settings.server.host
    port = options.port if options.port is not None else settings.server.port
    runtime.listening = f"http://{host}:{port}"
    server = _Server(
        uvicorn.Config(
            create_app(runtime),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
        )
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        log.info("received %s: draining", signal.Signals(signum).name)
        server.should_exit = True
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)

    async def reload() -> None:
        started = time.perf_counter()
        compiled, errors = await asyncio.to_thread(compile_for_run, layout, options.env)
        if compiled is None:
            runtime.config.reject(errors)
            runtime.metrics.reload_failures.inc()
            log.error("configuration not reloaded, the running one stays:\n%s", format_text(errors))
            return
        runtime.swap(compiled)
        watcher.watch(folders(compiled))
        log.info(
            "configuration reloaded in %.0f ms (generation %d, %d automations)",
            (time.perf_counter() - started) * 1000,
            runtime.config.generation,
            len(compiled.automations),
            extra={"generation": runtime.config.generation},
        )

    def folders(env: CompiledEnvironment) -> list[Path]:
        return watched_folders(layout.root, layout.env_dir(options.env), env.settings.release)

    watcher = Watcher(folders(runtime.config.current), reload)
    await runtime.start()
    watcher.start()
    log.info(
        "environment %s running on http://%s:%d (%d automations)",
        options.env,
        host,
        port,
        len(runtime.config.current.automations),
    )
    try:
        with published(layout.env_dir(options.env), host, port):
            await server.serve()
    finally:
        watcher.stop()
        await runtime.stop()
        await runtime.store.close()
        log.info("stopped")
    return 0
