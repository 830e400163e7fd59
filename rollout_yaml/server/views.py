"""What the API answers, built from store records and the compiled configuration.

Plain dicts with ISO-8601 UTC times; the Rollout-compatible spelling lives in `compat_views`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rollout_yaml.engine.automations import Listed
from rollout_yaml.expr.compiled import CompiledApp, CompiledAutomation, CompiledEnvironment
from rollout_yaml.store.records import Attempt, Run, StoredCredential


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
        "enabled": automation.enabled,
        "status": "ready",
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


def listed_view(
    listed: Listed, last_run: Run | None, webhook_url: str | None = None
) -> dict[str, Any]:
    """An automation of a consumer file (`source: file`, with its file and line) or one
    created over the API (`source: api`, with its version, definition and status)."""
    compiled, stored = listed.compiled, listed.stored
    if stored is None:
        assert compiled is not None
        line, _ = compiled.location()
        view = automation_view(compiled, last_run, webhook_url)
        view.update(
            source="file",
            file=compiled.file,
            line=line,
            version=None,
            definition=None,
            custom_data=None,
            diagnostics=[],
            created_at=None,
            updated_at=None,
        )
        return view
    if compiled is not None:
        view = automation_view(compiled, last_run, webhook_url)
    else:  # invalid: what the definition says, as far as it says it
        definition = stored.definition
        trigger, action = definition.get("trigger"), definition.get("action")
        view = {
            "key": stored.key,
            "consumer": stored.consumer,
            "name": str(definition.get("name") or stored.key),
            "blueprint": definition.get("blueprint"),
            "trigger": trigger if isinstance(trigger, dict) else {},
            "action": action if isinstance(action, dict) else {},
            "last_run": last_run_view(last_run),
            "webhook_url": None,
        }
    view.update(
        source="api",
        file=None,
        line=None,
        enabled=stored.enabled,
        status=str(stored.status),
        version=stored.version,
        definition=stored.definition,
        custom_data=stored.custom_data,
        diagnostics=list(stored.diagnostics),
        created_at=iso(stored.created_at),
        updated_at=iso(stored.updated_at),
    )
    return view


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


def credential_views(
    env: CompiledEnvironment, consumer: str, stored: Sequence[StoredCredential] = ()
) -> list[dict[str, Any]]:
    """A consumer's credentials, named and typed, with the status of stored ones; never their
    values. `source`: `file` (declared in the consumer file) or `api` (created at run time:
    over the API or by a connect flow, or stored under a declaration since removed). `status`:
    `configured` (values in the consumer file), `not_connected`, `active` or `needs_reauth`."""
    found = env.consumers.get(consumer)
    rows = {row.key: row for row in stored if row.consumer == consumer}
    views = []
    for key, credential in sorted(found.credentials.items() if found else ()):
        row = rows.pop(key, None)
        status = "configured" if not credential.stored else "not_connected"
        views.append(_credential_view(key, credential.app, credential.stored, status, row))
    for key, row in sorted(rows.items()):
        views.append(_credential_view(key, row.app, True, str(row.status), row, declared=False))
    return views


def _credential_view(
    key: str,
    app: str,
    stored: bool,
    status: str,
    row: StoredCredential | None,
    *,
    declared: bool = True,
) -> dict[str, Any]:
    return {
        "key": key,
        "app": app,
        "source": "file" if declared else "api",
        "stored": stored,
        "declared": declared,
        "status": str(row.status) if row is not None and stored else status,
        "label": row.label if row is not None else None,
        "tested_at": iso(row.tested_at) if row is not None else None,
        "expires_at": iso(row.expires_at) if row is not None else None,
        "updated_at": iso(row.updated_at) if row is not None else None,
        "error": row.error if row is not None else None,
    }
