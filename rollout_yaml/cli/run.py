"""`rollout-yaml run`: the daemon. Its heavy imports (server, database) load only when it runs,
so `validate` and friends start fast."""

from __future__ import annotations

import asyncio
import sys
import time

import click

from rollout_yaml.cli.common import EXIT_USAGE, print_diagnostics, project_option
from rollout_yaml.config.project import Layout


@click.command()
@project_option
@click.option("--env", required=True, help="The environment to run (environments/<env>/).")
@click.option("--once", is_flag=True, help="Execute what is due, drain the queue, exit.")
@click.option("--host", default=None, help="Listen address (default: server.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: server.port).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text on a terminal, json otherwise (default).",
)
def run(
    layout: Layout, env: str, once: bool, host: str | None, port: int | None, log_format: str | None
) -> None:
    """Run an environment: serve the API and webhooks, execute automations, reload on change."""
    from rollout_yaml.daemon.process import CannotStart, RunOptions, compile_for_run, serve
    from rollout_yaml.daemon.processes import process_count, supervise
    from rollout_yaml.store.factory import UnsupportedDatabase

    files_read_at = time.time()
    compiled, errors = compile_for_run(layout, env)
    if compiled is None:
        print_diagnostics(errors, layout.root, err=True)
        click.echo(f"environment `{env}` is not valid; nothing started", err=True)
        sys.exit(EXIT_USAGE)
    options = RunOptions(
        env=env,
        host=host,
        port=port,
        once=once,
        log_format=log_format or ("text" if sys.stderr.isatty() else "json"),
        files_read_at=files_read_at,
    )
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        loop_factory = None
    processes = 1 if once else process_count(compiled.settings.runtime.processes)
    try:
        if processes > 1:
            code = supervise(layout, options, compiled, processes, loop_factory)
        else:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                code = runner.run(serve(layout, options, compiled))
    except (CannotStart, UnsupportedDatabase) as exc:
        click.echo(f"error: cannot start: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(code)
