"""`rollout-yaml automations list|export|import`: the automations consumers created over the
API, next to the ones in consumer files, and the bridge between the two: `export` writes them
as consumer-file YAML a partner can commit, `import` loads such YAML into the database (checked
as every API write is). Through the running daemon's admin API, else on the database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from rich import box
from rich.table import Table

from rollout_yaml.cli import daemon_link
from rollout_yaml.cli.common import console, fail, format_option, print_json, project_option
from rollout_yaml.cli.daemon_link import DaemonRefused, DaemonUnreachable, Environment, url_option
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.automations import AutomationRefused, Automations
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.incremental import Change
from rollout_yaml.server.views import listed_view
from rollout_yaml.store.base import Store

T = TypeVar("T")
env_option = click.option("--env", required=True, help="The environment (environments/<env>/).")
consumer_option = click.option("--consumer", default=None, help="Only this consumer's.")


def _offline(env: Environment, work: Callable[[Automations], Awaitable[T]]) -> T:
    """`work` on the environment's database (migrated first), with no daemon running it."""

    async def with_automations(store: Store) -> T:
        config = LiveConfig(env.compiled)

        def activate(compiled: CompiledEnvironment, change: Change) -> None:
            config.swap_changed(compiled, change, reloaded=False)

        service = Automations(config, store, Metrics(), activate)
        await service.load()
        return await work(service)

    return daemon_link.on_store(env, with_automations)


def _views(env: Environment, consumer: str | None) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"consumer": consumer, "limit": 500, "cursor": cursor}
            page = daemon_link.admin_call(env, "GET", "/admin/v1/automations", params=params)
            found += page["automations"]
            cursor = page.get("next_cursor")
            if not cursor:
                return found
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}")
        raise  # unreachable
    except DaemonUnreachable:

        async def read(service: Automations) -> list[dict[str, Any]]:
            return [listed_view(listed, None) for listed in await service.list(consumer)]

        return _offline(env, read)


@click.group()
def automations() -> None:
    """Automations of consumer files and those created over the API."""


@automations.command("list")
@project_option
@env_option
@consumer_option
@url_option
@format_option
def list_automations(
    layout: Layout, env: str, consumer: str | None, url: str | None, output_format: str
) -> None:
    """Both kinds, with where each comes from (a file and line, or the API and its version)."""
    target = daemon_link.load(layout, env, url)
    views = target.redacted(_views(target, consumer))
    if output_format == "json":
        print_json({"automations": views})
        return
    out = console()
    if not views:
        out.print("no automations")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("consumer", "key", "source", "status", "enabled", "version"):
        table.add_column(name)
    for view in views:
        where = f"{view['file']}:{view['line']}" if view["source"] == "file" else "api"
        status = view["status"]
        table.add_row(
            view["consumer"],
            view["key"],
            where,
            f"[red]{status}[/]" if status == "invalid" else status,
            "yes" if view["enabled"] else "no",
            "" if view["version"] is None else str(view["version"]),
        )
    out.print(table)


def consumer_documents(views: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Automations created over the API as consumer-file data, by consumer."""
    documents: dict[str, dict[str, Any]] = {}
    for view in views:
        if view["source"] != "api":
            continue
        entry = dict(view["definition"] or {})
        if not view["enabled"]:
            entry["enabled"] = False
        document = documents.setdefault(
            view["consumer"], {"consumer": view["consumer"], "automations": {}}
        )
        document["automations"][view["key"]] = entry
    return documents


@automations.command("export")
@project_option
@env_option
@consumer_option
@url_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write <consumer>.yaml files into this folder (default: YAML documents on stdout).",
)
def export(
    layout: Layout, env: str, consumer: str | None, url: str | None, out_dir: Path | None
) -> None:
    """Automations created over the API as consumer-file YAML (`custom_data` is not part of a
    consumer file and is left out)."""
    target = daemon_link.load(layout, env, url)
    documents = consumer_documents(target.redacted(_views(target, consumer)))
    if out_dir is None:
        click.echo(yaml.safe_dump_all(list(documents.values()), sort_keys=False), nl=False)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for key, document in documents.items():
        (out_dir / f"{key}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    click.echo(f"wrote {len(documents)} file(s) to {out_dir}")


def _entries(path: Path, only: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read {path}: {exc}")
        raise  # unreachable
    found = []
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("consumer"), str):
            fail(f"{path}: each document is a consumer file (`consumer:` and `automations:`)")
        owner = document["consumer"]
        if only is not None and owner != only:
            continue
        for key, entry in (document.get("automations") or {}).items():
            if not isinstance(entry, dict):
                fail(f"{path}: automation `{key}` of `{owner}` is not a mapping")
            found.append((owner, str(key), entry))
    return found


def _import_one(env: Environment, consumer: str, body: dict[str, Any]) -> str:
    key = body["key"]
    try:
        daemon_link.admin_call(env, "POST", "/admin/v1/automations", body=body)
        return "created"
    except DaemonRefused as exc:
        if exc.code != "conflict":
            raise
    path = f"/admin/v1/automations/{consumer}/{key}"
    daemon_link.admin_call(
        env, "PUT", path, body={k: v for k, v in body.items() if k != "consumer"}
    )
    return "updated"


@automations.command("import")
@project_option
@env_option
@consumer_option
@url_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(layout: Layout, env: str, consumer: str | None, url: str | None, file: Path) -> None:
    """Load consumer-file YAML (as `export` writes it) into the database: each automation is
    created, or replaced where its key exists, after the checks every API write has."""
    target = daemon_link.load(layout, env, url)
    entries = _entries(file, consumer)
    outcomes: list[tuple[str, str, str, list[dict[str, Any]]]] = []
    try:
        for owner, key, entry in entries:
            body = {"key": key, "consumer": owner, **entry}
            try:
                outcomes.append((owner, key, _import_one(target, owner, body), []))
            except DaemonRefused as exc:
                outcomes.append((owner, key, f"refused: {exc.message}", exc.details))
    except DaemonUnreachable:

        async def write(service: Automations) -> list[tuple[str, str, str, list[Any]]]:
            done: list[tuple[str, str, str, list[Any]]] = []
            for owner, key, entry in entries:
                body = {"key": key, **entry}
                try:
                    try:
                        await service.create(owner, body, admin=True)
                        done.append((owner, key, "created", []))
                    except AutomationRefused as exc:
                        if exc.code != "conflict":
                            raise
                        await service.replace(owner, key, body, None, admin=True)
                        done.append((owner, key, "updated", []))
                except AutomationRefused as exc:
                    done.append((owner, key, f"refused: {exc.message}", exc.details))
            return done

        outcomes = _offline(target, write)
    refused = 0
    for owner, key, outcome, details in outcomes:
        click.echo(f"{owner}/{key}: {outcome}")
        for detail in details:
            if isinstance(detail, dict) and "code" in detail:
                click.echo(f"  {detail.get('path', '$')}: [{detail['code']}] {detail['message']}")
        refused += outcome.startswith("refused")
    if refused:
        fail(f"{refused} of {len(outcomes)} automation(s) refused", code=1)
