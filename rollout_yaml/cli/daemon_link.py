"""How the run commands reach an environment: through its running daemon, or its database.

`events send` and `runs replay` need the daemon (it executes what they queue), so they only
talk to its admin API. `runs list|show` ask the daemon first and open the database file only
when no daemon answers: a SQLite store is held under an exclusive lock by the process that
runs it, so while the daemon runs, the file is not ours to open.

The daemon is the one whose address file names this environment and a live process
(`server/address.py`), and it must answer `/healthz` with that file's instance id before the
admin token is sent; or the one `--url` names. No address is guessed from `server.port`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import click
import httpx

from rollout_yaml.cli.common import EXIT_USAGE, fail, print_diagnostics
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.server.address import read_address
from rollout_yaml.server.redaction import redact_data
from rollout_yaml.server.views import run_view
from rollout_yaml.store.base import DatabaseUnavailable, Store
from rollout_yaml.store.factory import UnsupportedDatabase, open_store
from rollout_yaml.store.records import RunQuery
from rollout_yaml.store.sqlite import SQLiteStore, StoreLocked

T = TypeVar("T")
TIMEOUT = 10.0


url_option = click.option(
    "--url",
    default=None,
    help="The daemon's address (default: the one this environment's running daemon "
    "published in its folder).",
)


class DaemonUnreachable(Exception):
    """No daemon answers at the environment's address."""


class DaemonRefused(Exception):
    """The daemon answered with an error (`{"error": {...}}`)."""

    def __init__(self, status: int, code: str, message: str, details: list[Any]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Environment:
    layout: Layout
    name: str
    compiled: CompiledEnvironment
    url: str | None  # None: no daemon runs this environment from this folder
    instance: str | None = None  # the instance id the daemon must answer with (from its file)

    @property
    def secrets(self) -> frozenset[str]:
        return self.compiled.secret_values

    def redacted(self, data: T) -> T:
        """`data` with every secret of the environment replaced by `***`."""
        return cast(T, redact_data(data, self.secrets))


def load(layout: Layout, env: str, url: str | None = None) -> Environment:
    """The compiled environment (exit 2 if it cannot be loaded) and its daemon's address:
    `--url`, else the one a running daemon published, else none (commands then work on the
    database directly)."""
    compiled, diagnostics = load_and_compile(layout, env)
    if compiled is None:
        print_diagnostics(diagnostics, layout.root, err=True)
        fail(f"environment `{env}` cannot be loaded")
    assert compiled is not None
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        click.echo(
            f"warning: environment `{env}` has {len(errors)} error(s); "
            f"see `rollout-yaml validate --env {env}`",
            err=True,
        )
    if url is not None:
        return Environment(layout, env, compiled, url.rstrip("/"))
    address = read_address(layout.env_dir(env), env)
    if address is None:
        return Environment(layout, env, compiled, None)
    return Environment(layout, env, compiled, address.url.rstrip("/"), address.instance)


def verified_url(env: Environment) -> str:
    """The daemon's URL once the process there proved to be this environment's daemon."""
    if env.url is None:
        raise DaemonUnreachable(
            f"no rollout-yaml daemon runs environment `{env.name}` from this folder "
            "(no address published in .rollout/daemon.json); start one, or pass --url"
        )
    if env.instance is None:  # --url: the caller named the daemon
        return env.url
    try:
        answer = httpx.get(env.url + "/healthz", timeout=TIMEOUT).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DaemonUnreachable(f"no rollout-yaml daemon answers at {env.url} ({exc})") from exc
    found = answer.get("instance") if isinstance(answer, dict) else None
    if found != env.instance:
        raise DaemonUnreachable(
            f"the process at {env.url} is not the daemon of environment `{env.name}` that "
            "published this address (another daemon took its port?); nothing was sent to it"
        )
    return env.url


# -- the daemon ----------------------------------------------------------------------------


def admin_call(
    env: Environment,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """One admin API request; its JSON answer, or DaemonUnreachable / DaemonRefused."""
    token = env.compiled.settings.auth.admin_token
    if not token:
        raise DaemonUnreachable(
            "auth.admin_token is not set for this environment, so the daemon's admin API "
            "cannot be used"
        )
    query = {k: v for k, v in (params or {}).items() if v is not None}
    url = verified_url(env)
    try:
        response = httpx.request(
            method,
            url + path,
            params=query,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
    except httpx.TransportError as exc:
        raise DaemonUnreachable(f"no rollout-yaml daemon answers at {url} ({exc})") from exc
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.is_success:
        return data
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        raise DaemonRefused(response.status_code, "http_error", response.text[:200], [])
    raise DaemonRefused(
        response.status_code,
        str(error.get("code", "error")),
        str(error.get("message", "")),
        list(error.get("details") or []),
    )


# -- reads: the daemon if it answers, else the database ------------------------------------


def list_runs(env: Environment, query: RunQuery) -> dict[str, Any]:
    params = {
        "consumer": query.consumer,
        "automation": query.automation,
        "status": query.status,
        "since": query.since,
        "limit": query.limit,
        "cursor": query.before_id,
    }

    async def from_store(store: Store) -> dict[str, Any]:
        runs = await store.list_runs(RunQuery(**{**vars_of(query), "limit": query.limit + 1}))
        page = runs[: query.limit]
        more = len(runs) > query.limit
        return {
            "runs": [run_view(r, full=False) for r in page],
            "next_cursor": page[-1].id if more and page else None,
        }

    try:
        page: dict[str, Any] = admin_call(env, "GET", "/admin/v1/runs", params=params)
        return env.redacted(page)
    except DaemonUnreachable:
        return env.redacted(_with_store(env, from_store, {"runs": [], "next_cursor": None}))


def get_run(env: Environment, run_id: str) -> dict[str, Any] | None:
    async def from_store(store: Store) -> dict[str, Any] | None:
        run = await store.get_run(run_id)
        return None if run is None else run_view(run)

    try:
        run: dict[str, Any] = admin_call(env, "GET", f"/admin/v1/runs/{run_id}")
        return env.redacted(run)
    except DaemonRefused as exc:
        if exc.status == 404:
            return None
        raise
    except DaemonUnreachable:
        found = _with_store(env, from_store, None)
        return None if found is None else env.redacted(found)


def vars_of(query: RunQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in RunQuery.__dataclass_fields__}


def _with_store(env: Environment, read: Callable[[Store], Awaitable[T]], empty: T) -> T:
    """Open the environment's database, read, close. No database file yet: `empty`."""
    return on_store(env, read, empty=empty)


_NO_EMPTY: Any = object()


def on_store(env: Environment, work: Callable[[Store], Awaitable[T]], *, empty: T = _NO_EMPTY) -> T:
    """`work` on the environment's database (migrated first), with no daemon running it; the
    store is closed after. With `empty`, a SQLite file not created yet gives `empty` instead.
    A database in a daemon's hands, or unreachable, exits with what to do about it."""
    try:
        store = open_store(env.compiled.settings.database, env.layout.env_dir(env.name))
    except UnsupportedDatabase as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits
    if empty is not _NO_EMPTY and isinstance(store, SQLiteStore) and not store.path.exists():
        return empty

    async def go() -> T:
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except StoreLocked as exc:
        where = f"at {env.url}" if env.url else "(it has published no address)"
        fail(
            f"{exc}. A daemon seems to run this environment but its admin API {where} "
            "does not answer (is auth.admin_token set, and the address right? see --url)",
            EXIT_USAGE,
        )
        raise  # unreachable
    except DatabaseUnavailable as exc:
        fail(str(exc))
        raise  # unreachable
