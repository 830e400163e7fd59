"""What the run pages show, for an operator (every consumer) or one consumer: the same reads
the API makes (`server/reads.py`), so a page shows exactly what the API would answer,
redacted the same way."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from rollout_yaml.config.types import parse_duration
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.views import run_view
from rollout_yaml.store.records import Run

PAGE_SIZE = 25
MAX_AUTOMATION_CHOICES = 300
SINCE_CHOICES = (
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
)
STATUS_CHOICES = tuple((s, s) for s in reads.STATUSES)
PENDING = frozenset({"queued", "running", "retrying"})


@dataclass(frozen=True, slots=True)
class RunFilters:
    consumer: str = ""
    automation: str = ""
    status: str = ""
    since: str = ""
    cursor: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str], *, operator: bool) -> RunFilters:
        return cls(
            consumer=query.get("consumer", "") if operator else "",
            automation=query.get("automation", ""),
            status=query.get("status", ""),
            since=query.get("since", ""),
            cursor=query.get("cursor", ""),
        )

    def href(self, base: str, **changes: str) -> str:
        values = {
            "consumer": self.consumer,
            "automation": self.automation,
            "status": self.status,
            "since": self.since,
            "cursor": self.cursor,
            **changes,
        }
        query = urlencode({k: v for k, v in values.items() if v})
        return f"{base}/runs" + (f"?{query}" if query else "")


def list_view(run: Run) -> dict[str, Any]:
    """A run as the runs list shows it (no attempts, no payload)."""
    return run_view(run, full=False)


def since_seconds(value: str, now: float) -> float | None:
    """`1h` (a duration back from now), epoch seconds or an ISO time; empty is any time."""
    if not value:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        return reads.parse_since(value)


def automation_choices(runtime: Runtime, consumer: str | None) -> list[tuple[str, str]] | None:
    """The automation keys to pick from, or None when there are too many for a list."""
    keys = sorted({a.key for a in reads.automations_of(runtime, consumer or None)})
    if len(keys) > MAX_AUTOMATION_CHOICES:
        return None
    return [(key, key) for key in keys]


async def runs_page(
    runtime: Runtime, scope: str | None, filters: RunFilters, base: str
) -> dict[str, Any]:
    """The context of a runs page; `scope` is the consumer whose runs these are (None: all)."""
    consumer = scope if scope is not None else (filters.consumer or None)
    problem = None
    try:
        page = await reads.list_runs(
            runtime,
            consumer,
            automation=filters.automation or None,
            status=filters.status or None,
            since=since_seconds(filters.since, time.time()),
            limit=PAGE_SIZE,
            cursor=filters.cursor or None,
        )
    except ApiError as exc:
        page, problem = {"runs": [], "next_cursor": None}, exc.message
    next_cursor = page["next_cursor"]
    return {
        "runs": page["runs"],
        "filters": filters,
        "flash": problem,
        "automation_choices": automation_choices(runtime, consumer),
        "status_choices": STATUS_CHOICES,
        "since_choices": SINCE_CHOICES,
        "older_href": filters.href(base, cursor=next_cursor) if next_cursor else None,
        "newest_href": filters.href(base, cursor=""),
    }


async def run_page(runtime: Runtime, scope: str | None, run_id: str) -> dict[str, Any] | None:
    try:
        run = await reads.get_run(runtime, scope, run_id)
    except ApiError:
        return None
    pending = run["status"] in PENDING
    return {"run": run, "pending": pending, "refresh": 1 if pending else None}


async def replay(runtime: Runtime, scope: str | None, run_id: str) -> str | None:
    """The id of the new run, or None when there is no such run in this scope."""
    try:
        run = await reads.replay(runtime, scope, run_id)
    except ApiError:
        return None
    return str(run["id"])
