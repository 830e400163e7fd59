"""`rollout-yaml poll`: run one poll of an automation's trigger now and show what it read.

Without `--emit` nothing is written: the stored cursor and seen ids are read when the database
can be opened, so the output tells new items from seen ones. With `--emit` the poll is the
runner's own (under the poll group's lease): new items are stored as events with their runs
queued for the runner, seen ids and the cursor are saved.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from rollout_yaml.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    automation_or_exit,
    compiled_or_exit,
    fail,
    format_option,
    project_option,
)
from rollout_yaml.cli.progress import Counter, progress_counter
from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import Credentials
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.poller import PolledItemView, Poller, PollReport
from rollout_yaml.engine.polls import PollFailed, PollFetch, PollGroup, group_of
from rollout_yaml.engine.runtime import owner_id
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store, sqlite_path
from rollout_yaml.store.sqlite import StoreLocked


@click.command()
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumerKey.")
@click.option("--automation", required=True, help="The automation whose poll trigger to run.")
@click.option(
    "--emit",
    is_flag=True,
    help="Store new items as events and queue their runs, save seen ids and the cursor "
    "(as the runner does). The runner executes the runs.",
)
@format_option
def poll(
    layout: Layout, env: str, consumer: str, automation: str, emit: bool, output_format: str
) -> None:
    """Run one poll now: pages, items with their ids, the cursor, and each payload."""
    compiled = compiled_or_exit(layout, env, missing_secret=Severity.ERROR)
    target = automation_or_exit(compiled, consumer, automation)
    group = group_of(compiled, target)
    if group is None:
        fail(
            f"automation `{automation}` is triggered by `{target.trigger_app}/"
            f"{target.trigger_key}`, which is not a poll trigger"
        )
        return
    report, note = asyncio.run(_poll(layout, env, compiled, group, emit))
    secrets = report.redact or compiled.secret_values
    trigger = compiled.apps[group.app].triggers[group.trigger]
    assert trigger.poll is not None
    data = _as_dict(group, report, note, stored=emit, initial=trigger.poll.initial)
    for item in data["items"]:  # the runner emits them anyway; the connector should know
        violations = trigger.payload_schema.violations(item["payload"])
        item["payload_problems"] = [f"{v.json_path}: {v.message}" for v in violations]
    text = (
        json.dumps(data, indent=2, ensure_ascii=False, default=str)
        if output_format == "json"
        else _as_text(data)
    )
    click.echo(redact(text, secrets))
    sys.exit(EXIT_CHECK_FAILED if report.error else EXIT_OK)


async def _poll(
    layout: Layout, env: str, compiled: CompiledEnvironment, group: PollGroup, emit: bool
) -> tuple[PollReport, str | None]:
    clients = AppClients()
    store: Store | None = None
    try:
        if emit:
            store = open_store(compiled.settings.database, layout.env_dir(env))
            try:
                await store.open()
            except StoreLocked:
                store = None
                fail(
                    "the daemon runs this environment and polls on its own; "
                    "run `poll` without --emit to look, or stop the daemon"
                )
            assert store is not None
            owner = owner_id()
            poller = Poller(
                LiveConfig(compiled),
                store,
                clients,
                Metrics(),
                None,
                owner=owner,
                lease=0.0,  # the queued runs are the runner's to claim at once
                credentials=Credentials(store, clients, owner),
            )
            with progress_counter("polling and storing"):
                report = await poller.poll_group(group, force=True)
            if report is None:
                fail("another process is polling this group right now; try again")
            assert report is not None
            return report, None
        store, note = await _reader(layout, env, compiled)
        return await _look(compiled, group, clients, store), note
    finally:
        await clients.close()
        if store is not None:
            await store.close()


async def _reader(
    layout: Layout, env: str, compiled: CompiledEnvironment
) -> tuple[Store | None, str | None]:
    """The database, to read the cursor and seen ids, when it exists and is free."""
    if compiled.settings.database == "sqlite" and not sqlite_path(layout.env_dir(env)).exists():
        return None, "no database yet: this is what a first poll reads"
    store = open_store(compiled.settings.database, layout.env_dir(env))
    try:
        await store.open()
    except StoreLocked:
        return None, (
            "the running daemon holds the database: shown from an empty cursor, "
            "without telling new items from seen ones"
        )
    return store, None


async def _look(
    env: CompiledEnvironment, group: PollGroup, clients: AppClients, store: Store | None
) -> PollReport:
    """One poll, every page, read only; a terminal shows the pages as they come."""
    with progress_counter("polling") as progress:
        return await _pages(env, group, clients, store, progress)


async def _pages(
    env: CompiledEnvironment,
    group: PollGroup,
    clients: AppClients,
    store: Store | None,
    progress: Counter | None,
) -> PollReport:
    state: dict[str, Any] | None = None
    if store is not None:
        found = (await store.load_states(group.state_key)).get(group.state_key)
        state = found if isinstance(found, dict) else None
    initial = state is None or not state.get("initialized")
    # stored credentials are read (and OAuth2 tokens refreshed) when the database is free
    credentials = Credentials(store, clients, owner_id()) if store is not None else None
    outbound = Outbound(clients, credentials)
    fetch = PollFetch(env, group, outbound, state.get("cursor") if state else None)
    report = PollReport(
        group.key,
        cursor_before=fetch.cursor,
        initial=initial,
        emitted=False,
    )
    every_item: list[Any] = []
    try:
        async for page in fetch.pages():
            report.pages.append(page)
            every_item.extend(item.item for item in page.items)
            known: set[str] = set()
            if store is not None:
                known = await store.seen_ids(group.key, [i.id for i in page.items])
            report.items.extend(
                PolledItemView(i.id, i.id not in known, i.payload) for i in page.items
            )
            if progress is not None:
                progress.describe(f"polling: page {page.number}, {len(every_item)} items")
                progress.advance()
        report.cursor_after = fetch.next_cursor(every_item)
        report.stopped = fetch.stopped
    except PollFailed as failed:
        report.error = str(failed)
        report.stopped = "failed"
    report.without_id = fetch.without_id
    report.redact = fetch.secrets
    return report


def _as_dict(
    group: PollGroup, report: PollReport, note: str | None, *, stored: bool, initial: str
) -> dict[str, Any]:
    return {
        "group": group.key,
        "consumer": group.consumer,
        "automations": group.refs,
        "every": group.interval,
        "initial": initial,
        "first_poll": report.initial,
        "stored": stored,
        "emitted": stored and report.emitted,
        "note": note,
        "cursor_before": report.cursor_before,
        "cursor_after": report.cursor_after,
        "pages": [
            {
                "number": page.number,
                "method": page.request.method,
                "url": page.request.full_url(),
                "status": page.status,
                "items": page.count,
                "elapsed_ms": round(page.elapsed_ms, 1),
            }
            for page in report.pages
        ],
        "stopped": report.stopped,
        "items": [{"id": i.id, "new": i.new, "payload": i.payload} for i in report.items],
        "without_id": report.without_id,
        "events_stored": report.events_stored,
        "runs_queued": report.runs_queued,
        "error": report.error,
    }


def _as_text(data: dict[str, Any]) -> str:
    lines = [
        f"poll group {data['group']} of {data['consumer']} "
        f"(automations: {', '.join(data['automations'])}; every {data['every']:g}s)"
    ]
    if data["note"]:
        lines.append(f"  note: {data['note']}")
    for page in data["pages"]:
        lines.append(
            f"page {page['number']}: {page['method']} {page['url']} → {page['status']}, "
            f"{page['items']} items, {page['elapsed_ms']:g} ms"
        )
    if data["error"]:
        lines.append(f"failed: {data['error']} (the cursor stays {_show(data['cursor_before'])})")
    else:
        lines.append(f"stopped: {data['stopped']}")
        lines.append(f"cursor: {_show(data['cursor_before'])} → {_show(data['cursor_after'])}")
    new = sum(1 for i in data["items"] if i["new"])
    lines.append(f"items: {len(data['items'])} ({new} new)")
    for item in data["items"]:
        flag = "new " if item["new"] else "seen"
        lines.append(f"  {flag} {item['id']}  {_show(item['payload'])}")
        for problem in item["payload_problems"]:
            lines.append(f"       payload does not match payload_schema at {problem}")
    if data["without_id"]:
        lines.append(f"  {data['without_id']} items without an id were left out")
    skipping = data["first_poll"] and data["initial"] == "skip"
    if data["emitted"]:
        lines.append(f"events stored: {data['events_stored']}, runs queued: {data['runs_queued']}")
    elif data["stored"]:
        lines.append("first poll with `initial: skip`: items recorded as seen, no events")
    else:
        also = "; as a first poll with `initial: skip` it would only record them"
        lines.append("nothing stored (--emit stores the events)" + (also if skipping else ""))
    return "\n".join(lines)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
