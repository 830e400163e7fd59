"""`rollout-yaml init`: scaffold a project that validates, tests and runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rollout_yaml.cli.common import EXIT_USAGE
from rollout_yaml.cli.scaffold import FILES
from rollout_yaml.config.jsonschema_export import FILE_KINDS, file_schema


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option(
    "--project", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True
)
def init(directory: Path, project: Path | None) -> None:
    """Create a project: one connector, one blueprint, environments/dev with a consumer."""
    target = project or directory
    existing = [name for name in FILES if (target / name).exists()]
    if existing:
        click.echo(f"error: {target} already has {', '.join(existing)}; nothing written", err=True)
        sys.exit(EXIT_USAGE)
    for name, text in FILES.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    schemas = target / ".schemas"
    schemas.mkdir(exist_ok=True)
    for kind in FILE_KINDS:
        (schemas / f"{kind}.schema.json").write_text(json.dumps(file_schema(kind), indent=2))
    click.echo(
        f"created a rollout-yaml project in {target}\n"
        f"next: cd {target} && rollout-yaml validate && rollout-yaml test"
    )
