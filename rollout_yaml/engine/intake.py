"""Event intake: validate, match automations, apply filters, store durably, then dispatch.

An event is acknowledged only after `Store.ingest` returns, i.e. after the commit that holds
the event and one run per matching automation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.live_config import Active
from rollout_yaml.engine.mapping import automation_context, passes_filters
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.store.records import EventRecord, NewEvent, NewRun, RunStatus, new_id

log = logging.getLogger("rollout_yaml.engine")


@dataclass(frozen=True, slots=True)
class PushEvent:
    app: str
    trigger: str
    id: str | None
    payload: Any


@dataclass(frozen=True, slots=True)
class PushResult:
    event_ids: list[str]
    runs_queued: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """Events turned into rows, and the work to dispatch once they are committed."""

    batch: list[tuple[NewEvent, list[NewRun]]]
    work: dict[str, WorkItem]


def prepare_push(
    active: Active,
    consumer: str,
    events: Sequence[PushEvent],
    *,
    owner: str,
    lease: float,
    batch_paths: bool,
) -> Prepared:
    """Check every event first (one bad event refuses the whole request), then build rows."""
    env = active.env
    for index, item in enumerate(events):
        where = f"$.events[{index}]" if batch_paths else "$"
        app = env.apps.get(item.app)
        if app is None:
            raise EventRejected(
                404,
                "not_found",
                f"unknown app `{item.app}`",
                [{"path": f"{where}.app", "message": "no such app"}],
            )
        trigger = app.triggers.get(item.trigger)
        if trigger is None or trigger.kind != "push":
            why = "no such trigger" if trigger is None else f"a {trigger.kind} trigger"
            raise EventRejected(
                404 if trigger is None else 422,
                "not_found" if trigger is None else "invalid_request",
                f"`{item.app}/{item.trigger}` is not a push trigger ({why})",
                [{"path": f"{where}.trigger", "message": why}],
            )
        violations = trigger.payload_schema.violations(item.payload)
        if violations:
            details = [
                {"path": f"{where}.payload{v.json_path[1:]}", "message": v.message}
                for v in violations
            ]
            raise EventRejected(
                422,
                "invalid_request",
                f"payload does not match `{item.app}/{item.trigger}`'s "
                f"payload_schema: {violations[0].message}",
                details,
            )
    now = time.time()
    prepared = Prepared([], {})
    for item in events:
        event_id = new_id("evt")
        dedupe = item.id if item.id is not None else event_id
        record = EventRecord(
            event_id, consumer, item.app, item.trigger, dedupe, item.payload, now, "push"
        )
        matching = active.index.automations(consumer, item.app, item.trigger)
        add_event(active, record, matching, prepared, owner=owner, lease=lease)
    return prepared


def add_event(
    active: Active,
    record: EventRecord,
    automations: Iterable[CompiledAutomation],
    prepared: Prepared,
    *,
    owner: str,
    lease: float,
    delivery: Mapping[str, Any] | None = None,
) -> None:
    """One stored event and a run for each automation it starts: `queued` (leased to `owner`,
    to dispatch after the commit), `filtered` when a filter says no, or `failed` when a filter
    raises (its error recorded; the event's other runs go on). `delivery` is what filters see
    of a webhook delivery besides its payload (`headers`, `query`)."""
    env = active.env
    trigger = env.apps[record.app].triggers[record.trigger]
    now = record.received_at
    event_view = {
        "id": record.dedupe_key,
        "received_at": now,
        "app": record.app,
        "trigger": record.trigger,
    }
    runs = []
    for automation in automations:
        context = automation_context(env, automation, record.payload, event_view)
        run_id = new_id("run")
        error = None
        try:
            queued = passes_filters(trigger, automation, context, delivery)
        except Exception as exc:  # one automation's filter must not refuse the event for all
            reason = redact(f"{type(exc).__name__}: {exc}", env.secret_values)
            queued, error = False, f"filter failed: {reason}"
            where = {"consumer": record.consumer, "automation": automation.key, "run_id": run_id}
            log.warning("run failed: %s", error, extra=where)
        runs.append(
            NewRun(
                run_id,
                record.consumer,
                automation.key,
                record.id,
                record.dedupe_key,
                RunStatus.QUEUED
                if queued
                else RunStatus.FILTERED
                if error is None
                else RunStatus.FAILED,
                None,
                now,
                lease_owner=owner if queued else None,
                lease_expires_at=now + lease if queued else None,
                error=error,
                error_kind=None if error is None else "filter",
            )
        )
        if queued:
            prepared.work[run_id] = WorkItem(run_id, record.consumer, automation.key, record)
    prepared.batch.append((record, runs))
