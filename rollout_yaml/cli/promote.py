"""`rollout-yaml diff SRC DST` and `rollout-yaml promote SRC DST [--check] [--yes]`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    fail,
    format_option,
    print_json,
    project_option,
)
from rollout_yaml.config.diagnostics import format_text
from rollout_yaml.config.project import Layout
from rollout_yaml.gitops.promote import CannotPromote, Plan, compute_diff, plan_promotion, promote


@click.command()
@project_option
@click.argument("source")
@click.argument("target")
@format_option
def diff(layout: Layout, source: str, target: str, output_format: str) -> None:
    """What promoting SOURCE to TARGET would change: per App its version, auth, triggers and
    actions added, removed or changed; blueprints; files."""
    try:
        changes, problems = compute_diff(layout, source, target)
    except CannotPromote as exc:
        fail(str(exc), EXIT_USAGE)
        return
    if output_format == "json":
        print_json({**changes.to_dict(), "problems": [d.to_dict() for d in problems]})
    else:
        click.echo(changes.to_text())
        if problems:
            click.echo(format_text(problems, layout.root), err=True)
    sys.exit(EXIT_CHECK_FAILED if problems else EXIT_OK)


@click.command()
@project_option
@click.argument("source")
@click.argument("target")
@click.option("--check", is_flag=True, help="Validate and check only; write nothing (for CI).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@format_option
def promote_command(
    layout: Layout, source: str, target: str, check: bool, yes: bool, output_format: str
) -> None:
    """Freeze what SOURCE runs into TARGET's release/, after checking that no automation of
    TARGET breaks. Never copies consumer files, credentials, secrets or databases."""
    try:
        with _progress(f"checking {target} against {source}", output_format):
            plan = plan_promotion(layout, source, target)
    except CannotPromote as exc:
        fail(str(exc), EXIT_USAGE)
        return
    written: list[str] = []
    if plan.ok and not check and plan.needs_writing:
        if output_format == "text":
            click.echo(plan.diff.to_text())
        if not yes and sys.stdin.isatty() and sys.stderr.isatty():
            where = layout.display(plan.target_dir)
            if not click.confirm(f"Write {where}/?", default=False, err=True):
                click.echo("nothing written", err=True)
                sys.exit(EXIT_CHECK_FAILED)
        written = promote(plan)
    if output_format == "json":
        print_json(_report(layout, plan, check, written))
    else:
        _print_text(layout, plan, check, written)
    sys.exit(EXIT_OK if plan.ok else EXIT_CHECK_FAILED)


promote_command.name = "promote"


@contextlib.contextmanager
def _progress(what: str, output_format: str) -> Iterator[None]:
    """A spinner on a terminal; nothing when piped or asked for JSON."""
    if output_format != "text" or not sys.stderr.isatty():
        yield
        return
    with console(stderr=True).status(what + "…"):
        yield


def _report(layout: Layout, plan: Plan, check: bool, written: list[str]) -> dict[str, Any]:
    release = layout.display(plan.target_dir)
    return {
        "ok": plan.ok,
        "check": check,
        "source": plan.source,
        "target": plan.target,
        "diff": plan.diff.to_dict(),
        "source_errors": [d.to_dict() for d in plan.source_errors],
        "broken": [b.to_dict() for b in plan.broken],
        "checked": {"consumers": plan.checked_consumers, "automations": plan.checked_automations},
        "written": [f"{release}/{name}" for name in written],
    }


def _print_text(layout: Layout, plan: Plan, check: bool, written: list[str]) -> None:
    source, target = plan.source, plan.target
    if plan.source_errors:
        click.echo(format_text(plan.source_errors, layout.root))
        click.echo(f"refused: {source} does not validate; fix it before promoting it")
        return
    if not written:
        click.echo(plan.diff.to_text())
    if plan.broken:
        automations = {(b.consumer, b.automation) for b in plan.broken if b.automation}
        what = f"{len(automations)} {target} automation(s)" if automations else target
        click.echo(
            f"refused: promoting {source} to {target} would break {what} "
            f"({len(plan.broken)} problem(s)):"
        )
        for breakage in plan.broken:
            click.echo(breakage.to_text())
        click.echo("nothing written")
        return
    checked = (
        f"{plan.checked_automations} {target} automation(s) of "
        f"{plan.checked_consumers} consumer(s) checked"
    )
    if check:
        click.echo(f"ok: promoting {source} to {target} breaks nothing ({checked})")
    elif written:
        release = layout.display(plan.target_dir)
        click.echo(f"promoted {source} to {target} ({checked}); wrote {release}/:")
        for name in written:
            click.echo(f"  {name}")
    else:
        click.echo(f"{target} already runs what {source} runs: nothing written")
