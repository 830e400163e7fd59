"""`rollout-yaml run`: the daemon."""

from __future__ import annotations

import asyncio
import sys

import click

from rollout_yaml.cli.common import EXIT_USAGE, project_option
from rollout_yaml.config.diagnostics import format_text
from rollout_yaml.config.project import Layout
from rollout_yaml.daemon.process import CannotStart, RunOptions, compile_for_run, serve
from rollout_yaml.store.factory import UnsupportedDatabase


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
    compiled, errors = compile_for_run(layout, env)
    if compiled is None:
        click.echo(format_text(errors, layout.root), err=True)
        click.echo(f"environment `{env}` is not valid; nothing started", err=True)
        sys.exit(EXIT_USAGE)
    options = RunOptions(
        env=env,
        host=host,
        port=port,
        once=once,
        log_format=log_format or ("text" if sys.stderr.isatty() else "json"),
    )
    try:
        code = _run(layout, options, compiled)
    except (CannotStart, UnsupportedDatabase) as exc:
        click.echo(f"error: cannot start: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(code)


def _run(layout: Layout, options: RunOptions, compiled: object) -> int:
    from rollout_yaml.expr.compiled import CompiledEnvironment

    assert isinstance(compiled, CompiledEnvironment)
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(serve(layout, options, compiled))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(serve(layout, options, compiled))
