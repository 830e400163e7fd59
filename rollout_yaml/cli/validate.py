"""`rollout-yaml validate`: every static check, every file, one pass; compiler-style output."""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence

import click

from rollout_yaml.cli.common import EXIT_CHECK_FAILED, EXIT_OK, console, project_option
from rollout_yaml.cli.progress import progress_bar
from rollout_yaml.config.codes import ignorable
from rollout_yaml.config.diagnostics import (
    Diagnostic,
    Severity,
    format_github,
    format_json,
    sorted_unique,
)
from rollout_yaml.config.loader import (
    Definitions,
    FileCache,
    consumer_paths,
    load_definitions,
    load_environment,
)
from rollout_yaml.config.progress import NO_PROGRESS, Progress
from rollout_yaml.config.project import Layout, yaml_files
from rollout_yaml.config.render import print_lines, report_lines
from rollout_yaml.config.sarif import format_sarif
from rollout_yaml.expr.compiler import (
    check_consumer_files,
    check_environment,
    collector_paused,
    compile_definitions,
)
from rollout_yaml.expr.context import CompileContext
from rollout_yaml.expr.parallel import processes_for, start_forked

MANY_FILES = 100
"""From this many consumer files on, a terminal shows a progress bar."""


def validate_project(
    layout: Layout,
    envs: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    keep: list[object] | None = None,
    parallel: bool = False,
    *,
    ignore: Collection[str] = (),
    progress: Progress = NO_PROGRESS,
    compile_processes: int | None = None,
) -> tuple[list[Diagnostic], dict[str, int]]:
    """Validate the project's definitions and the given environments (default: all of them).

    `parallel` reads files and compiles consumers on every CPU (forked processes: one-shot
    commands only) when there are enough of them; `compile_processes` sets how many processes
    compile the consumers regardless of their number.

    An unset variable is an error in an environment named in `envs` (as `run` would refuse
    it) and a warning when every environment is checked (CI has no secrets). Warnings whose
    code is in `ignore`, or in an environment's `validate.ignore` for its own files, are left
    out; errors never are.
    """
    cache = FileCache(parallel_reads=parallel, progress=progress)
    ctx = CompileContext(progress=progress)
    missing_secret = Severity.WARNING if envs is None else Severity.ERROR
    diagnostics: list[Diagnostic] = []
    names = layout.environments() if envs is None else envs
    several = (
        compile_processes or (processes_for(consumer_files(layout, names)) if parallel else 1)
    ) > 1
    with collector_paused():
        definitions = load_definitions(layout.root, layout, cache)
        if several:  # the definitions alone are checked in a child while this process goes on
            alone = start_forked(_check_definitions, [definitions])
        else:
            _, _, more = compile_definitions(definitions, ctx)
    diagnostics.extend(definitions.diagnostics)
    if not several:
        diagnostics.extend(more)
    counts = {
        "connectors": len(definitions.connectors) - 1,  # without the built-in schedule app
        "blueprints": len(definitions.blueprints),
        "environments": 0,
        "consumers": 0,
        "automations": 0,
    }
    for env in names:
        with collector_paused():
            paths, duplicates = consumer_paths(layout, env)
            processes = compile_processes or (processes_for(len(paths)) if parallel else 1)
            # On several processes each reads, checks and compiles its own share of the
            # consumer files: no file's text or model is sent from one process to another.
            split = processes > 1
            config, found = load_environment(
                layout,
                env,
                missing_secret=missing_secret,
                environ=environ,
                cache=cache,
                read_consumers=not split,
            )
            consumers = 0
            if config is not None:
                if keep is not None:
                    keep.append(config)
                if split:
                    found += duplicates
                    more, consumers, automations = check_consumer_files(
                        config, paths, ctx, processes, missing_secret=missing_secret, keep=keep
                    )
                else:
                    more, automations = check_environment(config, ctx, processes, keep)
                    consumers = len(config.consumers)
                found += more
        if config is not None and config.settings.model.validate_.ignore:
            own = layout.display(layout.env_dir(env)) + "/"
            found = list(_without(found, config.settings.model.validate_.ignore, own))
        diagnostics.extend(found)
        if config is not None:
            counts["environments"] += 1
            counts["consumers"] += consumers
            counts["automations"] += automations
    if several:
        diagnostics.extend(alone())
    if ignore:
        diagnostics = list(_without(diagnostics, ignore))
    return sorted_unique(diagnostics), counts


def _check_definitions(definitions: Sequence[Definitions], _: Progress) -> list[Diagnostic]:
    """What the connectors and blueprints alone are found to have (with default App settings)."""
    with collector_paused():
        return compile_definitions(definitions[0], CompileContext())[2]


def _without(
    diagnostics: Iterable[Diagnostic], codes: Collection[str], folder: str = ""
) -> Iterable[Diagnostic]:
    """The diagnostics, less the warnings of `codes` in files under `folder`."""
    for d in diagnostics:
        if d.is_error or d.code not in codes or not d.file.startswith(folder):
            yield d


def consumer_files(layout: Layout, envs: Sequence[str] | None) -> int:
    """How many consumer files validating these environments reads (for the progress bar)."""
    names = layout.environments() if envs is None else envs
    return sum(len(yaml_files(layout.env_dir(env) / "consumers")) for env in names)


def _codes(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> set[str]:
    codes = set()
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    codes.add(ignorable(part))
                except ValueError as exc:
                    raise click.BadParameter(str(exc)) from exc
    return codes


@click.command()
@project_option
@click.option("--env", "env", default=None, help="Validate one environment (default: all).")
@click.option("--all", "all_envs", is_flag=True, help="Validate every environment (the default).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github", "sarif"]),
    default="text",
    show_default=True,
    help="For people (text), programs (json), GitHub Actions annotations (github), or code "
    "scanning and editors (sarif, SARIF 2.1.0).",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    callback=_codes,
    metavar="CODE",
    help="Leave out warnings of this code (repeat it, or separate codes with commas). "
    "Errors are always reported.",
)
def validate(
    layout: Layout,
    env: str | None,
    all_envs: bool,
    output_format: str,
    strict: bool,
    ignore: set[str],
) -> None:
    """Check every file of the project: syntax, keys, references, templates, schemas, secrets."""
    if env and all_envs:
        raise click.UsageError("give either --env or --all, not both")
    envs = [env] if env else None
    compiled: list[object] = []
    total = 2 * consumer_files(layout, envs)  # read, then compiled
    with progress_bar("validating", total, threshold=2 * MANY_FILES) as progress:
        diagnostics, counts = validate_project(
            layout, envs, keep=compiled, parallel=True, ignore=ignore, progress=progress
        )
    failed = any(d.is_error or strict for d in diagnostics)
    if output_format == "json":
        click.echo(format_json(diagnostics))
    elif output_format == "github":
        if diagnostics:
            click.echo(format_github(diagnostics))
    elif output_format == "sarif":
        click.echo(format_sarif(diagnostics, layout.root))
    else:
        if diagnostics:
            print_lines(console(), report_lines(diagnostics, layout.root))
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
