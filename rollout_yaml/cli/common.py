"""What every command shares: `--project`, exit codes, JSON and rich output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich.console import Console

from rollout_yaml.config.project import Layout, find_project

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2


def project_option(func: F) -> F:
    """`--project DIR` on every command: the folder holding connectors/ and environments/."""

    def resolve(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Layout:
        return Layout(find_project(value) if value is None else value.resolve())

    return click.option(
        "--project",
        "layout",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        callback=resolve,
        help="Project folder (default: the nearest parent holding connectors/ or environments/).",
    )(func)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output for people (text) or programs (json).",
    )(func)


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def read_payload(path: Path) -> Any:
    """JSON, or YAML for a .yaml/.yml file; `-` reads standard input (JSON)."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
