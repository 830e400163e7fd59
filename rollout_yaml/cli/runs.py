"""`rollout-yaml runs list|show|replay`: the record of what ran, and running it again.

Reads go to the running daemon when it answers and to the database file otherwise; a replay
needs the daemon, which executes it (see `daemon_link`).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rollout_yaml.cli import daemon_link
from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    console,
    fail,
    format_option,
    print_json,
    project_option,
)
from rollout_yaml.cli.daemon_link import DaemonRefused, DaemonUnreachable, url_option
from rollout_yaml.config.project import Layout
from rollout_yaml.config.types import parse_duration
from rollout_yaml.server.reads import STATUSES
from rollout_yaml.store.records import RunQuery

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "retrying": "yellow",
    "running": "cyan",
    "queued": "blue",
    "filtered": "dim",
    "dry_run": "magenta",
}

PIPED_WIDTH = 160


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: write a number and a unit, e.g. 30m, 1h, 7d") from exc


@click.group()
def runs() -> None:
    """Automation runs of an environment: list, show, replay."""


@runs.command("list")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", default=None, help="Only this consumer's runs.")
@click.option("--automation", default=None, help="Only this automation's runs.")
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only runs in this status."
)
@click.option("--since", default=None, callback=_duration, help="Only runs this recent, e.g. 1h.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", default=None, help="`next_cursor` of the previous page.")
@click.option(
    "--wide", is_flag=True, help="Whole ids and timestamps (the default fits 80 columns)."
)
@url_option
@format_option
def list_runs(
    layout: Layout,
    env: str,
    consumer: str | None,
    automation: str | None,
    status: str | None,
    since: float | None,
    limit: int,
    cursor: str | None,
    wide: bool,
    url: str | None,
    output_format: str,
) -> None:
    """Runs, newest first: short ids (`runs show` takes them), ages and durations; `--wide`
    for whole ids and timestamps."""
    target = daemon_link.load(layout, env, url)
    query = RunQuery(
        consumer, automation, status, None if since is None else time.time() - since, cursor, limit
    )
    try:
        page = daemon_link.list_runs(target, query)
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}")
        return
    if output_format == "json":
        print_json(page)
        return
    out = table_console()
    if not page["runs"]:
        out.print("no runs")
        return
    out.print(_wide_table(page["runs"]) if wide else _short_table(page["runs"], time.time()))
    if page.get("next_cursor"):
        out.print(f"more: --cursor {page['next_cursor']}", style="dim")


def _status(run: dict[str, Any]) -> Text:
    return Text(run["status"], style=STATUS_STYLE.get(run["status"], ""))


def _wide_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    widest = max(len(run["id"]) for run in rows)
    table.add_column("id", no_wrap=True, min_width=widest)  # ids are copied: never cut
    for name in ("automation", "status", "attempts", "created", "finished"):
        table.add_column(name)
    for run in rows:
        table.add_row(
            run["id"],
            f"{run['consumer']}/{run['automation']}",
            _status(run),
            str(run.get("attempt_count", "")),
            _when(run["created_at"]),
            _when(run["finished_at"]),
        )
    return table


def _short_table(rows: list[dict[str, Any]], now: float) -> Table:
    """Fits 80 columns: the id's last characters, the automation cut with an ellipsis when
    it must be, the age and the duration instead of two timestamps."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=SHORT_ID)
    table.add_column("automation", no_wrap=True, overflow="ellipsis")
    table.add_column("status", no_wrap=True)
    table.add_column("tries", no_wrap=True, justify="right")
    # as wide as their usual values (`59m ago`, `999ms`), so that the layout stays put
    table.add_column("age", no_wrap=True, justify="right", min_width=7)
    table.add_column("took", no_wrap=True, justify="right", min_width=6)
    for run in rows:
        created, finished = _moment(run["created_at"]), _moment(run["finished_at"])
        table.add_row(
            short_id(run["id"]),
            f"{run['consumer']}/{run['automation']}",
            _status(run),
            str(run.get("attempt_count", "")),
            age(now - created) if created is not None else "",
            duration(finished - created) if created is not None and finished is not None else "",
        )
    return table


SHORT_ID = 8
"""Characters of a run id shown by default: the end of its ULID, which is random (the start
is the time, shared by runs created together)."""


def short_id(run_id: str) -> str:
    return run_id[-SHORT_ID:]


def _moment(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def age(seconds: float) -> str:
    """`12s ago`, `5m ago`, `3h ago`, `2d ago`."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def duration(seconds: float) -> str:
    """`85ms`, `2.4s`, `3m05s`."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def resolve_run_id(target: daemon_link.Environment, given: str) -> str:
    """A whole run id as it is; a short one (the end of an id, as `runs list` shows it) is
    looked up among the most recent runs, and must name exactly one."""
    if given.startswith("run_") and len(given) >= 30:
        return given
    wanted = given.upper()
    found: list[str] = []
    cursor: str | None = None
    for _ in range(SHORT_ID_PAGES):
        page = daemon_link.list_runs(target, RunQuery(None, None, None, None, cursor, 500))
        found.extend(r["id"] for r in page["runs"] if r["id"].upper().endswith(wanted))
        cursor = page.get("next_cursor")
        if not cursor or len(found) > 1:
            break
    if len(found) > 1:
        fail(
            f"`{given}` is the end of several run ids ({', '.join(found[:3])}…); give more "
            "of it, or the whole id (`runs list --wide`)"
        )
    return found[0] if found else given


SHORT_ID_PAGES = 20
"""A short id is looked for among the 10,000 most recent runs."""


@runs.command("show")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.argument("run_id")
@url_option
@format_option
def show_run(layout: Layout, env: str, run_id: str, url: str | None, output_format: str) -> None:
    """One run with every attempt: request, response or error, timings."""
    target = daemon_link.load(layout, env, url)
    try:
        run_id = resolve_run_id(target, run_id)
        run = daemon_link.get_run(target, run_id)
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}")
        return
    if run is None:
        fail(f"no run `{run_id}` in environment `{env}`", EXIT_CHECK_FAILED)
        return
    if output_format == "json":
        print_json(run)
        return
    _print_run(run)


@runs.command("replay")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.argument("run_id")
@url_option
@format_option
def replay_run(layout: Layout, env: str, run_id: str, url: str | None, output_format: str) -> None:
    """Run it again as a new run (the running daemon executes it)."""
    target = daemon_link.load(layout, env, url)
    try:
        run_id = resolve_run_id(target, run_id)
        run = target.redacted(
            daemon_link.admin_call(target, "POST", f"/admin/v1/runs/{run_id}/replay")
        )
    except DaemonUnreachable as exc:
        fail(f"{exc}; start it with `rollout-yaml run --env {env}`")
        return
    except DaemonRefused as exc:
        code = EXIT_CHECK_FAILED if exc.status == 404 else EXIT_USAGE
        fail(exc.message if exc.status == 404 else f"the daemon refused: {exc.message}", code)
        return
    if output_format == "json":
        print_json(run)
        return
    click.echo(f"queued {run['id']} (replay of {run_id})")


def table_console() -> Console:
    """A terminal's width on a terminal; wide enough for a whole row when piped."""
    out = console()
    return out if out.is_terminal else Console(highlight=False, width=PIPED_WIDTH)


def _when(value: str | None) -> str:
    return "" if not value else value.replace("T", " ")[:19]


def _key(event: dict[str, Any]) -> str:
    key = event.get("key")
    return f", id {key}" if key and key != event["id"] else ""


def _block(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def _print_run(run: dict[str, Any]) -> None:
    out = console()
    status = Text(run["status"], style=STATUS_STYLE.get(run["status"], ""))
    out.print(Text.assemble(Text(f"run {run['id']}  ", style="bold"), status))
    event = run["event"]
    rows = [
        ("automation", f"{run['consumer']}/{run['automation']}"),
        ("event", f"{event['id']} ({event['app']}/{event['trigger']}){_key(event)}"),
        ("created", _when(run["created_at"])),
        ("finished", _when(run["finished_at"])),
        ("replay of", run.get("replay_of") or ""),
        ("error", run.get("error") or ""),
    ]
    for label, value in rows:
        if value:
            out.print(f"{label:<11} {value}", markup=False)
    for label in ("input", "output"):
        if run.get(label) is not None:
            out.print(f"{label}:", style="bold")
            out.print(_block(run[label]), markup=False)
    if "payload" in event:
        out.print("payload:", style="bold")
        out.print(_block(event["payload"]), markup=False)
    for attempt in run.get("attempts", []):
        _print_attempt(attempt)
    sys.stdout.flush()


def _print_attempt(attempt: dict[str, Any]) -> None:
    out = console()
    out.rule(
        f"attempt {attempt['number']}  {_when(attempt['started_at'])}  "
        f"{attempt['duration_ms']:.0f} ms"
    )
    request = attempt.get("request") or {}
    if request:
        out.print(f"{request.get('method', '')} {request.get('url', '')}", markup=False)
        for name, value in (request.get("headers") or {}).items():
            out.print(f"  {name}: {value}", markup=False, style="dim")
        if request.get("body") is not None:
            out.print(_block(request["body"]), markup=False)
    response = attempt.get("response")
    if response:
        out.print(f"→ {response.get('status', '')}", style="bold", markup=False)
        if response.get("body") is not None:
            out.print(_block(response["body"]), markup=False)
    if attempt.get("error"):
        out.print(f"error: {attempt['error']}", style="red", markup=False)
