"""What the API answers, built from store records and the compiled configuration.

Plain dicts with ISO-8601 UTC times; the Rollout-compatible spelling lives in `compat_views`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rollout_yaml.expr.compiled import CompiledApp, CompiledAutomation, CompiledEnvironment
from rollout_yaml.store.records import Attempt, Run


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "started_at": iso(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "request": attempt.request,
        "response": attempt.response,
        "error": attempt.error,
    }


def run_view(run: Run, *, full: bool = True) -> dict[str, Any]:
    """A run; `full=False` (lists) leaves out the attempts and the event payload."""
    event: dict[str, Any] = {
        "id": run.event.id,
        "key": run.event.dedupe_key,
        "app": run.event.app,
        "trigger": run.event.trigger,
        "received_at": iso(run.event.received_at),
    }
    view: dict[str, Any] = {
        "id": run.id,
        "automation": run.automation,
        "consumer": run.consumer,
        "status": str(run.status),
        "event": event,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "error_kind": run.error_kind,
        "attempt_count": run.attempts,
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at),
        "next_attempt_at": iso(run.next_attempt_at),
        "replay_of": run.replay_of,
    }
    if full:
        event["payload"] = run.event.payload
        view["attempts"] = [attempt_view(a) for a in run.attempt_log]
    return view


def last_run_view(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": str(run.status),
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at),
    }


def automation_view(
    automation: CompiledAutomation, last_run: Run | None, webhook_url: str | None = None
) -> dict[str, Any]:
    return {
        "key": automation.key,
        "consumer": automation.consumer,
        "name": automation.name,
        "blueprint": automation.blueprint,
        "status": "enabled" if automation.enabled else "disabled",
        "trigger": {
            "app": automation.trigger_app,
            "trigger": automation.trigger_key,
            "credential": automation.trigger_credential,
            "input": dict(automation.trigger_input),
        },
        "action": {
            "app": automation.action_app,
            "action": automation.action_key,
            "credential": automation.action_credential,
        },
        "last_run": last_run_view(last_run),
        # set for webhook triggers once the runner has made the automation's hookId
        "webhook_url": webhook_url,
    }


def app_view(app: CompiledApp) -> dict[str, Any]:
    return {
        "key": app.key,
        "name": app.connector.name,
        "triggers": [
            {
                "key": trigger.key,
                "name": trigger.model.name,
                "description": trigger.model.description,
                "kind": trigger.kind,
                "input_schema": trigger.input_schema.schema,
                "payload_schema": trigger.payload_schema.schema,
            }
            for trigger in app.triggers.values()
        ],
        "actions": [
            {
                "key": action.key,
                "name": action.model.name,
                "description": action.model.description,
                "input_schema": action.input_schema.schema,
                "output_schema": action.model.output_schema,
            }
            for action in app.actions.values()
        ],
    }


def credential_views(env: CompiledEnvironment, consumer: str) -> list[dict[str, Any]]:
    """A consumer's credentials, named and typed, never with their values."""
    found = env.consumers.get(consumer)
    if found is None:
        return []
    return [
        {"key": key, "app": credential.app, "stored": credential.stored}
        for key, credential in sorted(found.credentials.items())
    ]
