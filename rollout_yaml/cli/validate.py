"""`rollout-yaml validate`: every static check, every file, one pass; compiler-style output."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import click

from rollout_yaml.cli.common import EXIT_CHECK_FAILED, EXIT_OK, project_option
from rollout_yaml.config.diagnostics import (
    Diagnostic,
    format_github,
    format_json,
    format_text,
    sorted_unique,
)
from rollout_yaml.config.loader import FileCache, load_definitions
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiler import collector_paused, compile_definitions, load_and_compile
from rollout_yaml.expr.context import CompileContext


def validate_project(
    layout: Layout,
    envs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    keep: list[object] | None = None,
    parallel: bool = False,
) -> tuple[list[Diagnostic], dict[str, int]]:
    """Validate the project's definitions and the given environments (default: all of them)."""
    cache, ctx = FileCache(parallel_reads=parallel), CompileContext()
    diagnostics: list[Diagnostic] = []
    with collector_paused():
        definitions = load_definitions(layout.root, layout, cache)
        _, _, more = compile_definitions(definitions, ctx)
    diagnostics.extend(definitions.diagnostics)
    diagnostics.extend(more)
    counts = {
        "connectors": len(definitions.connectors) - 1,  # without the built-in schedule app
        "blueprints": len(definitions.blueprints),
        "environments": 0,
        "consumers": 0,
        "automations": 0,
    }
    for env in layout.environments() if envs is None else envs:
        compiled, found = load_and_compile(layout, env, environ=environ, cache=cache, ctx=ctx)
        diagnostics.extend(found)
        if keep is not None:
            keep.append(compiled)
        if compiled is not None:
            counts["environments"] += 1
            counts["consumers"] += len(compiled.consumers)
            counts["automations"] += len(compiled.automations)
    return sorted_unique(diagnostics), counts


@click.command()
@project_option
@click.option("--env", "env", default=None, help="Validate one environment (default: all).")
@click.option("--all", "all_envs", is_flag=True, help="Validate every environment (the default).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(
    layout: Layout, env: str | None, all_envs: bool, output_format: str, strict: bool
) -> None:
    """Check every file of the project: syntax, keys, references, templates, schemas, secrets."""
    if env and all_envs:
        raise click.UsageError("give either --env or --all, not both")
    compiled: list[object] = []
    diagnostics, counts = validate_project(
        layout, [env] if env else None, keep=compiled, parallel=True
    )
    failed = any(d.is_error or strict for d in diagnostics)
    if output_format == "json":
        click.echo(format_json(diagnostics))
    elif output_format == "github":
        if diagnostics:
            click.echo(format_github(diagnostics))
    else:
        if diagnostics:
            click.echo(format_text(diagnostics, layout.root))
        if not failed:
            summary = (
                f"{counts['connectors']} connectors, {counts['blueprints']} blueprints, "
                f"{counts['environments']} environments ({counts['consumers']} consumers, "
                f"{counts['automations']} automations)"
            )
            click.echo(
                f"ok: {summary}" + (": no problems" if not diagnostics else ""),
                err=bool(diagnostics),
            )
    exit_now(EXIT_CHECK_FAILED if failed else EXIT_OK)


def exit_now(code: int) -> None:
    """Exit without freeing the compiled project object by object: for a large project that
    teardown alone takes over a second, and a one-shot command has nothing left to clean up."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
