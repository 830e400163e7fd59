"""`rollout-yaml render`: the request a payload would make, with secrets redacted."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    automation_or_exit,
    compiled_or_exit,
    format_option,
    project_option,
    read_payload,
)
from rollout_yaml.config.project import Layout
from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.preview import Preview, preview


@click.command()
@project_option
@click.option("--env", required=True)
@click.option("--consumer", required=True)
@click.option("--automation", required=True)
@click.option(
    "--payload",
    "payload_file",
    required=True,
    type=click.Path(path_type=Path),
    help="JSON (or .yaml) file with the trigger payload; - for standard input.",
)
@format_option
def render(
    layout: Layout, env: str, consumer: str, automation: str, payload_file: Path, output_format: str
) -> None:
    """Show the action request this payload would make. Nothing is sent."""
    compiled = compiled_or_exit(layout, env)
    target = automation_or_exit(compiled, consumer, automation)
    try:
        payload = read_payload(payload_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        click.echo(f"error: cannot read payload {payload_file}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    event = {
        "id": "evt_preview",
        "received_at": None,
        "app": target.trigger_app,
        "trigger": target.trigger_key,
    }
    result = preview(compiled, target, payload, event)
    text = _as_json(result) if output_format == "json" else _as_text(result)
    click.echo(redact(text, compiled.secret_values))
    failed = bool(result.error or result.input_problems or result.payload_problems)
    sys.exit(EXIT_CHECK_FAILED if failed else EXIT_OK)


def _as_dict(result: Preview) -> dict[str, Any]:
    request = result.request
    return {
        "automation": result.automation,
        "filtered": result.filtered,
        "payload_problems": result.payload_problems,
        "input": result.input,
        "input_problems": result.input_problems,
        "error": result.error,
        "request": None
        if request is None
        else {
            "method": request.method,
            "url": request.full_url(),
            "headers": request.headers,
            "json": request.json_body if request.has_json else None,
            "form": request.form,
            "body": request.body,
        },
    }


def _as_json(result: Preview) -> str:
    return json.dumps(_as_dict(result), indent=2, ensure_ascii=False, default=str)


def _as_text(result: Preview) -> str:
    lines = [f"automation {result.automation}"]
    for problem in result.payload_problems:
        lines.append(f"  payload does not match payload_schema: {problem}")
    if result.filtered:
        lines.append("  filtered: the filter says no, no action would run")
        return "\n".join(lines)
    if result.input is not None:
        lines.append("  input: " + json.dumps(result.input, ensure_ascii=False))
    for problem in result.input_problems:
        lines.append(f"  input fails the action's input_schema: {problem}")
    if result.error:
        lines.append(f"  error: {result.error}")
    request = result.request
    if request is not None:
        lines.append(f"{request.method} {request.full_url()}")
        lines.extend(f"{name}: {value}" for name, value in request.headers.items())
        content = request.content()
        if content:
            lines.append("")
            lines.append(content.decode("utf-8", errors="replace"))
    return "\n".join(lines)
