"""`rollout-yaml events send`: push one event of a `push` trigger to the running daemon.

It goes through the daemon's admin API (not into the database directly) so that the daemon
validates, stores and executes it exactly as it does an event pushed over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from rollout_yaml.cli import daemon_link
from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    fail,
    format_option,
    print_json,
    project_option,
    read_payload,
)
from rollout_yaml.cli.daemon_link import DaemonRefused, DaemonUnreachable, url_option
from rollout_yaml.config.project import Layout


@click.group()
def events() -> None:
    """Trigger events: push one to the running daemon."""


@events.command("send")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumerKey the event belongs to.")
@click.option("--app", required=True, help="appKey of the push trigger.")
@click.option("--trigger", required=True, help="triggerKey of the push trigger.")
@click.option(
    "--payload",
    "payload_file",
    required=True,
    type=click.Path(path_type=Path, allow_dash=True),
    help="JSON (or .yaml) file with the payload; - for standard input.",
)
@click.option("--id", "event_id", default=None, help="Event id: the same id again is ignored.")
@url_option
@format_option
def send(
    layout: Layout,
    env: str,
    consumer: str,
    app: str,
    trigger: str,
    payload_file: Path,
    event_id: str | None,
    url: str | None,
    output_format: str,
) -> None:
    """Push an event of a `push` trigger; the daemon queues and runs what it triggers."""
    target = daemon_link.load(layout, env, url)
    try:
        payload = read_payload(payload_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        fail(f"cannot read payload {payload_file}: {exc}")
        return
    body = {"consumer": consumer, "app": app, "trigger": trigger, "payload": payload}
    if event_id is not None:
        body["id"] = event_id
    try:
        answer = daemon_link.admin_call(target, "POST", "/admin/v1/events", body=body)
    except DaemonUnreachable as exc:
        fail(f"{exc}; start it with `rollout-yaml run --env {env}`")
        return
    except DaemonRefused as exc:
        problems = "".join(
            f"\n  {d.get('path', '$')}: {d.get('message', '')}"
            for d in exc.details
            if isinstance(d, dict)
        )
        message = target.redacted(f"event refused ({exc.status} {exc.code}): {exc.message}")
        code = EXIT_CHECK_FAILED if exc.status in (404, 413, 422) else 2
        fail(message + target.redacted(problems), code)
        return
    answer = target.redacted(answer)
    if output_format == "json":
        print_json(answer)
        return
    ids = ", ".join(answer.get("event_ids", []))
    click.echo(f"event {ids}: {answer.get('runs_queued', 0)} run(s) queued")
