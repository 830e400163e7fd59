"""The reads and writes the consumer and admin APIs share; `consumer=None` means every
consumer (admin). Scoping happens here, once: a consumer never sees another's records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollout_yaml.engine import auth_test
from rollout_yaml.engine.automations import Listed
from rollout_yaml.engine.credentials import CredentialRejected, in_use
from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import DeliveryResult
from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.server.body import parse
from rollout_yaml.server.errors import ApiError, not_found
from rollout_yaml.server.schemas import EventBatchIn, EventIn
from rollout_yaml.server.views import credential_views, listed_view, run_view
from rollout_yaml.store.records import RunQuery, RunStatus, StoredCredential

STATUSES = tuple(str(s) for s in RunStatus)


def parse_since(value: str | None) -> float | None:
    """`since` as epoch seconds or an ISO-8601 time (UTC unless it says otherwise)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(
            422,
            "invalid_request",
            "since: expected epoch seconds or an ISO-8601 time",
            [{"path": "since", "message": "expected epoch seconds or an ISO-8601 time"}],
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        message = f"unknown status {status!r}; one of {', '.join(STATUSES)}"
        raise ApiError(422, "invalid_request", message, [{"path": "status", "message": message}])


async def list_runs(
    runtime: Runtime,
    consumer: str | None,
    *,
    automation: str | None,
    status: str | None,
    since: float | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """Newest first; `next_cursor` is the last id of this page when there is another. Empty
    filters (`status=`) are absent ones, as a form with an empty field sends them."""
    status = status or None
    automation = automation or None
    check_status(status)
    query = RunQuery(consumer, automation, status, since, cursor or None, limit + 1)
    runs = await runtime.store.list_runs(query)
    page = runs[:limit]
    more = len(runs) > limit
    return {
        "runs": [run_view(r, full=False) for r in page],
        "next_cursor": page[-1].id if more and page else None,
    }


async def get_run(runtime: Runtime, consumer: str | None, run_id: str) -> dict[str, Any]:
    run = await runtime.store.get_run(run_id, consumer)
    if run is None:
        raise not_found(f"run `{run_id}`")
    return run_view(run)


async def replay(runtime: Runtime, consumer: str | None, run_id: str) -> dict[str, Any]:
    run = await runtime.replay(run_id, consumer)
    if run is None:
        raise not_found(f"run `{run_id}`")
    return run_view(run)


def automations_of(runtime: Runtime, consumer: str | None) -> list[CompiledAutomation]:
    env = runtime.config.current
    found = [a for (owner, _), a in env.automations.items() if consumer in (None, owner)]
    return sorted(found, key=lambda a: (a.consumer, a.key))


def automation_cursor(automation: CompiledAutomation | Listed) -> str:
    return f"{automation.consumer}/{automation.key}"


async def list_automations(
    runtime: Runtime, consumer: str | None, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """File and stored automations, sorted by (consumer, key); the cursor is the last
    `consumer/key` of the page."""
    found = await runtime.automations.list(consumer)
    if cursor:
        found = [a for a in found if automation_cursor(a) > cursor]
    page = found[:limit]
    urls = await runtime.webhook_urls(consumer) if page else {}
    return {
        "automations": [await _with_last_run(runtime, a, urls) for a in page],
        "next_cursor": automation_cursor(page[-1]) if len(found) > limit and page else None,
    }


async def get_automation(runtime: Runtime, consumer: str, key: str) -> dict[str, Any]:
    listed = await runtime.automations.get(consumer, key)
    if listed is None:
        raise not_found(f"automation `{key}`")
    return await _with_last_run(runtime, listed, await runtime.webhook_urls(consumer))


async def _with_last_run(
    runtime: Runtime, listed: Listed, urls: dict[tuple[str, str], str]
) -> dict[str, Any]:
    latest = await runtime.store.list_runs(
        RunQuery(consumer=listed.consumer, automation=listed.key, limit=1)
    )
    url = urls.get((listed.consumer, listed.key))
    return listed_view(listed, latest[0] if latest else None, url)


def events_of(data: Any) -> tuple[list[EventIn], bool]:
    """A single event or `{"events": [...]}`; the flag says which (for error paths)."""
    if isinstance(data, dict) and "events" in data:
        return parse(EventBatchIn, data).events, True
    return [parse(EventIn, data)], False


async def push(
    runtime: Runtime, consumer: str, events: list[EventIn], *, batch: bool
) -> dict[str, Any]:
    pushed = [PushEvent(e.app, e.trigger, e.id, e.payload) for e in events]
    result = await runtime.push(consumer, pushed, batch=batch)
    # `EventsAccepted`'s fields, without building the model for every push (the routed
    # endpoints declare it as their response model; the fast lane writes this as it is)
    return {"event_ids": result.event_ids, "runs_queued": result.runs_queued}


def delivery_answer(result: DeliveryResult) -> dict[str, Any]:
    """A webhook delivery's answer: Slack's challenge echoed, else what was stored."""
    if result.challenge is not None:
        return {"challenge": result.challenge}
    return {"event_ids": result.event_ids, "runs_queued": result.runs_queued}


# -- stored credentials --------------------------------------------------------------------


def _rejected(exc: CredentialRejected) -> ApiError:
    if exc.not_found:
        return ApiError(404, "not_found", str(exc))
    status, code = (409, "conflict") if exc.conflict else (422, "invalid_request")
    detail = {"code": exc.code, "message": str(exc), "path": exc.path, "help": exc.help}
    return ApiError(status, code, str(exc), [detail])


async def list_credentials(runtime: Runtime, consumer: str) -> list[dict[str, Any]]:
    rows = await runtime.store.list_credentials(consumer)
    return credential_views(runtime.config.current, consumer, rows)


async def list_consumers_credentials(
    runtime: Runtime, consumer: str | None
) -> list[dict[str, Any]]:
    """The credentials of one consumer or of all (admin), each with its `consumer`: those of
    consumer files and those stored at run time, for consumers with no file too."""
    env = runtime.config.current
    rows = await runtime.store.list_credentials(consumer)
    if consumer is not None and consumer not in env.consumers and not rows:
        raise ApiError(404, "not_found", f"no consumer `{consumer}` in this environment")
    by_consumer: dict[str, list[StoredCredential]] = {}
    for row in rows:
        by_consumer.setdefault(row.consumer, []).append(row)
    keys = [consumer] if consumer is not None else sorted({*env.consumers, *by_consumer})
    return [
        {**view, "consumer": key}
        for key in keys
        for view in credential_views(env, key, by_consumer.get(key, ()))
    ]


async def credential(runtime: Runtime, consumer: str, key: str) -> dict[str, Any]:
    for view in await list_credentials(runtime, consumer):
        if view["key"] == key:
            return view
    raise not_found(f"credential `{key}`")


async def put_credential(
    runtime: Runtime, consumer: str, key: str | None, app: str | None, values: dict[str, Any]
) -> dict[str, Any]:
    """Store values for a credential the consumer file declares `stored: true`, or create (or
    replace) one no file declares: `app` named, `key` made up when not given."""
    env = runtime.config.current
    try:
        row = await runtime.credentials.put(env, consumer, key, values, app)
    except CredentialRejected as exc:
        raise _rejected(exc) from exc
    return await credential(runtime, consumer, row.key)


async def delete_credential(runtime: Runtime, consumer: str, key: str) -> None:
    """Delete a stored credential. One declared in no consumer file is gone afterwards, so
    it is refused (409, naming each one) while automations use it; deleting the values of a
    declared one disconnects it (its automations fail until it is set or connected again)."""
    using = in_use(runtime.config.current, consumer, key)
    if using:
        names = ", ".join(f"`{a.key}`" for a in using)
        details = [
            {
                "code": "in_use",
                "message": f"automation `{a.key}` ({a.file}) uses credential `{key}`",
                "path": f"automations.{a.key}",
                "help": "change or delete the automation first",
            }
            for a in using
        ]
        message = f"credential `{key}` is used by automation(s) {names}"
        raise ApiError(409, "conflict", message, details)
    if not await runtime.store.delete_credential(consumer, key):
        raise not_found(f"stored credential `{key}`")


async def run_auth_test(runtime: Runtime, consumer: str, key: str) -> dict[str, Any]:
    """Run the App's `auth.test` with the credential; its label and time are stored."""
    env = runtime.config.current
    try:
        result = await auth_test.run(runtime.outbound, runtime.credentials, env, consumer, key)
    except CredentialRejected as exc:
        raise _rejected(exc) from exc
    view = await credential(runtime, consumer, key)
    return {**view, "test": result.view()}


async def connect_url(
    runtime: Runtime,
    consumer: str,
    app: str,
    credential_key: str | None,
    redirect: str | None,
    base_url: str,
) -> tuple[str, str]:
    """The App's authorize URL for the consumer's browser and the key of the credential it
    connects (a new one when `credential_key` is None); the App comes back to
    `{server.public_url}/oauth/callback`, or without one to the address the daemon listens
    on (the base of its webhook URLs too), or to this request's."""
    env = runtime.config.current
    public = env.settings.server.public_url or runtime.listening or base_url
    callback = public.rstrip("/") + "/oauth/callback"
    try:
        return await runtime.connect.start(env, consumer, app, credential_key, redirect, callback)
    except CredentialRejected as exc:
        raise _rejected(exc) from exc
