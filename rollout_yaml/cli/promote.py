"""`rollout-yaml diff SRC DST` and `rollout-yaml promote SRC DST [--check] [--yes]`."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.text import Text

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    console,
    fail,
    format_option,
    print_diagnostics,
    print_json,
    project_option,
)
from rollout_yaml.cli.progress import progress_bar
from rollout_yaml.config.project import Layout
from rollout_yaml.config.render import print_lines
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
        print_diff(changes.to_text())
        if problems:
            print_diagnostics(problems, layout.root, err=True)
    sys.exit(EXIT_CHECK_FAILED if problems else EXIT_OK)


@click.command()
@project_option
@click.argument("source")
@click.argument("target")
@click.option("--check", is_flag=True, help="Validate and check only; write nothing (for CI).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option(
    "--database",
    default=None,
    help="The target's database URL: also check the automations created there over the API "
    "(each one that would turn invalid is named).",
)
@format_option
def promote_command(
    layout: Layout,
    source: str,
    target: str,
    check: bool,
    yes: bool,
    database: str | None,
    output_format: str,
) -> None:
    """Freeze what SOURCE runs into TARGET's release/, after checking that no automation of
    TARGET breaks. Never copies consumer files, credentials, secrets or databases."""
    from rollout_yaml.cli.validate import consumer_files

    try:
        total = 2 * consumer_files(layout, [source, target]) if output_format == "text" else 0
        with progress_bar(f"checking {target} against {source}", total) as progress:
            plan = plan_promotion(layout, source, target, progress=progress)
    except CannotPromote as exc:
        fail(str(exc), EXIT_USAGE)
        return
    if database is not None and not plan.source_errors:
        from rollout_yaml.cli.promote_database import runtime_breakages
        from rollout_yaml.store.base import DatabaseUnavailable

        try:
            checked, broken = runtime_breakages(layout, plan, database)
        except (DatabaseUnavailable, OSError) as exc:
            fail(f"cannot read the target's database: {exc}", EXIT_USAGE)
            return
        plan.checked_automations += checked
        plan.broken.extend(broken)
    written: list[str] = []
    if plan.ok and not check and plan.needs_writing:
        if output_format == "text":
            print_diff(plan.diff.to_text())
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


DIFF_STYLE = {"+": "green", "-": "red", "~": "yellow"}


def diff_lines(text: str) -> list[Text]:
    """The diff's text, each added, removed and changed line in its colour (on a terminal)."""
    lines = []
    for line in text.splitlines():
        sign = line.lstrip()[:2]
        style = DIFF_STYLE.get(sign[0], "") if len(sign) == 2 and sign[1] == " " else ""
        lines.append(Text(line, style=style or ("bold" if line.endswith(":") else "")))
    return lines


def print_diff(text: str) -> None:
    print_lines(console(), diff_lines(text))


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
        print_diagnostics(plan.source_errors, layout.root)
        click.echo(f"refused: {source} does not validate; fix it before promoting it")
        return
    if not written:
        print_diff(plan.diff.to_text())
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
