"""`rollout-yaml schema`: JSON Schemas of every file kind, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rollout_yaml.config.jsonschema_export import FILE_KINDS, file_schema


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write <kind>.schema.json files into this folder (default: print them all).",
)
@click.option(
    "--project", type=click.Path(file_okay=False, path_type=Path), default=None, hidden=True
)
def schema(out_dir: Path | None, project: Path | None) -> None:
    """JSON Schemas of connector, blueprint, consumer, environment and release files."""
    schemas = {kind: file_schema(kind) for kind in FILE_KINDS}
    if out_dir is None:
        click.echo(json.dumps(schemas, indent=2))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, document in schemas.items():
        path = out_dir / f"{kind}.schema.json"
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        click.echo(f"wrote {path}")
