"""The reads and writes the consumer and admin APIs share; `consumer=None` means every
consumer (admin). Scoping happens here, once: a consumer never sees another's records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.server.body import parse
from rollout_yaml.server.errors import ApiError, not_found
from rollout_yaml.server.schemas import EventBatchIn, EventIn, EventsAccepted
from rollout_yaml.server.views import automation_view, run_view
from rollout_yaml.store.records import RunQuery, RunStatus

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
    """Newest first; `next_cursor` is the last id of this page when there is another."""
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


def automation_cursor(automation: CompiledAutomation) -> str:
    return f"{automation.consumer}/{automation.key}"


async def list_automations(
    runtime: Runtime, consumer: str | None, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """Sorted by (consumer, key); the cursor is the last `consumer/key` of the page."""
    found = automations_of(runtime, consumer)
    if cursor:
        found = [a for a in found if automation_cursor(a) > cursor]
    page = found[:limit]
    urls = await runtime.webhook_urls(consumer) if page else {}
    return {
        "automations": [await _with_last_run(runtime, a, urls) for a in page],
        "next_cursor": automation_cursor(page[-1]) if len(found) > limit and page else None,
    }


async def get_automation(runtime: Runtime, consumer: str, key: str) -> dict[str, Any]:
    automation = runtime.config.current.automations.get((consumer, key))
    if automation is None:
        raise not_found(f"automation `{key}`")
    return await _with_last_run(runtime, automation, await runtime.webhook_urls(consumer))


async def _with_last_run(
    runtime: Runtime, automation: CompiledAutomation, urls: dict[tuple[str, str], str]
) -> dict[str, Any]:
    latest = await runtime.store.list_runs(
        RunQuery(consumer=automation.consumer, automation=automation.key, limit=1)
    )
    url = urls.get((automation.consumer, automation.key))
    return automation_view(automation, latest[0] if latest else None, url)


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
    return EventsAccepted(event_ids=result.event_ids, runs_queued=result.runs_queued).model_dump()
