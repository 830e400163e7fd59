"""`rollout-yaml credentials list|set|test|delete|rotate`: a consumer's stored credentials.

Like `runs`, these go to the running daemon's admin API when it answers and to the database
otherwise (a SQLite file is the daemon's while it runs). Values are never printed: `list`
shows keys, Apps and statuses; `set` reads secret fields from a hidden prompt or standard input
(`--secret NAME`) so that they stay out of shell history and `ps`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from rich import box
from rich.table import Table

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
from rollout_yaml.cli.daemon_link import DaemonRefused, DaemonUnreachable, Environment, url_option
from rollout_yaml.config.project import Layout
from rollout_yaml.engine import auth_test
from rollout_yaml.engine.cipher import EncryptionKeyError
from rollout_yaml.engine.credentials import CredentialRejected, Credentials, in_use
from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.runtime import owner_id
from rollout_yaml.http.client import AppClients
from rollout_yaml.server.views import credential_views
from rollout_yaml.store.base import Store

T = TypeVar("T")

STATUS_STYLE = {
    "active": "green",
    "configured": "green",
    "needs_reauth": "red",
    "not_connected": "yellow",
}


def _offline(env: Environment, work: Callable[[Store, Credentials], Awaitable[T]]) -> T:
    """Run `work` on the environment's database (migrated first), with no daemon."""

    async def with_credentials(store: Store) -> T:
        clients = AppClients()
        try:
            return await work(store, Credentials(store, clients, owner_id()))
        finally:
            await clients.close()

    return daemon_link.on_store(env, with_credentials)


def _check_consumer(env: Environment, consumer: str) -> None:
    if consumer not in env.compiled.consumers:
        fail(f"no consumer `{consumer}` in environment `{env.name}`")


@click.group()
def credentials() -> None:
    """Stored credentials of a consumer (values are never printed)."""


@credentials.command("list")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumer whose credentials to list.")
@url_option
@format_option
def list_credentials(
    layout: Layout, env: str, consumer: str, url: str | None, output_format: str
) -> None:
    """Credentials with their App and status: configured (in the consumer file),
    not_connected, active or needs_reauth."""
    target = daemon_link.load(layout, env, url)
    _check_consumer(target, consumer)
    try:
        page = daemon_link.admin_call(
            target, "GET", "/admin/v1/credentials", params={"consumer": consumer}
        )
        views: list[dict[str, Any]] = page["credentials"]
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}")
        return
    except DaemonUnreachable:

        async def read(store: Store, _credentials: Credentials) -> list[dict[str, Any]]:
            rows = await store.list_credentials(consumer)
            return credential_views(target.compiled, consumer, rows)

        views = _offline(target, read)
    views = target.redacted(views)
    if output_format == "json":
        print_json({"credentials": views})
        return
    out = console()
    if not views:
        out.print("no credentials")
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("key", "app", "source", "label", "status", "expires", "updated", "error"):
        table.add_column(name)
    for view in views:
        status = view["status"]
        table.add_row(
            view["key"],
            view["app"],
            view.get("source") or "",
            view.get("label") or "",
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]" if status in STATUS_STYLE else status,
            view.get("expires_at") or "",
            view.get("updated_at") or "",
            view.get("error") or "",
        )
    out.print(table)


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--value")
        found[name] = value
    return found


@credentials.command("set")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumer the credential belongs to.")
@click.argument("key")
@click.option(
    "--app", default=None, help="The App of a credential no consumer file declares (created)."
)
@click.option("--value", "values", multiple=True, help="NAME=VALUE of a field that is no secret.")
@click.option(
    "--secret",
    "secret_names",
    multiple=True,
    help="A secret field, read from a hidden prompt (or a line of standard input).",
)
@url_option
def set_credential(
    layout: Layout,
    env: str,
    consumer: str,
    key: str,
    app: str | None,
    values: tuple[str, ...],
    secret_names: tuple[str, ...],
    url: str | None,
) -> None:
    """Store the values of credential KEY (declared `stored: true` in the consumer file, or,
    with --app, one no file declares), encrypted with the environment's encryption_key."""
    target = daemon_link.load(layout, env, url)
    if app is None:  # a credential of a consumer file; with --app, of any consumer
        _check_consumer(target, consumer)
    given: dict[str, Any] = _pairs(values)
    for name in secret_names:
        given[name] = click.prompt(name, hide_input=True, err=True)
    if not given:
        fail("give the credential's fields with --value NAME=VALUE and/or --secret NAME")
    try:
        if app is None:
            view = daemon_link.admin_call(
                target, "PUT", f"/admin/v1/credentials/{consumer}/{key}", body={"values": given}
            )
        else:
            body = {"consumer": consumer, "key": key, "app": app, "values": given}
            view = daemon_link.admin_call(target, "POST", "/admin/v1/credentials", body=body)
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}", EXIT_CHECK_FAILED)
        return
    except DaemonUnreachable:

        async def put(store: Store, service: Credentials) -> dict[str, Any]:
            try:
                await service.put(target.compiled, consumer, key, given, app)
            except CredentialRejected as exc:
                fail(str(exc), EXIT_CHECK_FAILED)
            rows = await store.list_credentials(consumer)
            views = credential_views(target.compiled, consumer, rows)
            return next(v for v in views if v["key"] == key)

        view = _offline(target, put)
    click.echo(f"stored credential `{key}` of `{consumer}` (app {view['app']}, {view['status']})")


@credentials.command("test")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumer the credential belongs to.")
@click.argument("key")
@url_option
def test_credential(layout: Layout, env: str, consumer: str, key: str, url: str | None) -> None:
    """Try credential KEY with its App's `auth.test`; the label it reads (the account's name)
    is kept with the credential. Exits 1 when the App refuses it."""
    target = daemon_link.load(layout, env, url)
    try:
        answer = daemon_link.admin_call(
            target, "POST", f"/admin/v1/credentials/{consumer}/{key}/test"
        )
        result = dict(answer["test"])
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}", EXIT_CHECK_FAILED)
        return
    except DaemonUnreachable:

        async def run(_store: Store, service: Credentials) -> dict[str, Any]:
            outbound = Outbound(service.clients, service)
            try:
                found = await auth_test.run(outbound, service, target.compiled, consumer, key)
            except CredentialRejected as exc:
                fail(str(exc), EXIT_CHECK_FAILED)
                raise  # unreachable
            return found.view()

        result = _offline(target, run)
    if not result["ok"]:
        status = f"HTTP {result['status']}: " if result.get("status") else ""
        message = f"credential `{key}` of `{consumer}` failed its test: {status}{result['error']}"
        fail(message, EXIT_CHECK_FAILED)
    label = f" as {result['label']}" if result.get("label") else ""
    click.echo(f"credential `{key}` of `{consumer}` works{label}")


@credentials.command("delete")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@click.option("--consumer", required=True, help="The consumer the credential belongs to.")
@click.argument("key")
@url_option
def delete_credential(layout: Layout, env: str, consumer: str, key: str, url: str | None) -> None:
    """Delete stored credential KEY (runs using it fail until it is set or connected again)."""
    target = daemon_link.load(layout, env, url)
    _check_consumer(target, consumer)
    try:
        daemon_link.admin_call(target, "DELETE", f"/admin/v1/credentials/{consumer}/{key}")
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}", EXIT_CHECK_FAILED)
        return
    except DaemonUnreachable:
        using = in_use(target.compiled, consumer, key)
        if using:
            names = ", ".join(f"`{a.key}` ({a.file})" for a in using)
            fail(f"credential `{key}` is used by automation(s) {names}", EXIT_CHECK_FAILED)

        async def delete(store: Store, _credentials: Credentials) -> bool:
            return await store.delete_credential(consumer, key)

        if not _offline(target, delete):
            fail(f"no stored credential `{key}` for `{consumer}`", EXIT_CHECK_FAILED)
    click.echo(f"deleted credential `{key}` of `{consumer}`")


@credentials.command("rotate")
@project_option
@click.option("--env", required=True, help="The environment (environments/<env>/).")
@url_option
def rotate(layout: Layout, env: str, url: str | None) -> None:
    """Re-encrypt every stored credential with the first key of encryption_key (after a new
    key was put first); the old key can then be removed."""
    target = daemon_link.load(layout, env, url)
    try:
        answer = daemon_link.admin_call(target, "POST", "/admin/v1/credentials/rotate")
        count = int(answer["rotated"])
    except DaemonRefused as exc:
        fail(f"the daemon refused: {exc.message}", EXIT_CHECK_FAILED)
        return
    except DaemonUnreachable:

        async def go(_store: Store, service: Credentials) -> int:
            try:
                return await service.rotate(target.compiled)
            except EncryptionKeyError as exc:
                fail(str(exc), EXIT_USAGE)
                raise  # unreachable

        count = _offline(target, go)
    click.echo(f"re-encrypted {count} stored credential(s) with the first key")
