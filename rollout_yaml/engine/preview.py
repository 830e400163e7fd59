"""What a payload would make an automation do, computed without sending anything
(`rollout-yaml render`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.engine.mapping import automation_context, passes_filters, render_action_input
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.templates import RenderError
from rollout_yaml.http.auth import sign
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    build_request,
    request_context,
)

STORED_PLACEHOLDER = "<stored>"


@dataclass
class Preview:
    automation: str
    filtered: bool = False
    payload_problems: list[str] = field(default_factory=list)
    input: Any = None
    input_problems: list[str] = field(default_factory=list)
    request: PreparedRequest | None = None
    error: str | None = None


def credential_values(env: CompiledEnvironment, consumer: str, key: str | None) -> dict[str, Any]:
    if key is None:
        return {}
    credential = env.consumers[consumer].credentials.get(key)
    if credential is None:
        return {}
    if credential.values is not None:
        return dict(credential.values)
    fields = env.apps[credential.app].connector.credential_fields()
    return {name: STORED_PLACEHOLDER for name in fields}


def preview(
    env: CompiledEnvironment,
    automation: CompiledAutomation,
    payload: Any,
    event: Mapping[str, Any],
) -> Preview:
    result = Preview(automation.ref)
    app = env.apps[automation.action_app]
    trigger_app = env.apps.get(automation.trigger_app)
    trigger = trigger_app.triggers.get(automation.trigger_key) if trigger_app else None
    if trigger is not None:
        result.payload_problems = [
            f"{v.json_path}: {v.message}" for v in trigger.payload_schema.violations(payload)
        ]
    context = automation_context(env, automation, payload, event)
    try:
        if not passes_filters(trigger, automation, context):
            result.filtered = True
            return result
        result.input = render_action_input(automation, context)
    except RenderError as exc:
        result.error = f"mapping failed: {exc}"
        return result
    action = app.actions[automation.action_key]
    result.input_problems = [
        f"{v.json_path}: {v.message}" for v in action.input_schema.violations(result.input)
    ]
    if result.input_problems:
        return result
    credential = credential_values(env, automation.consumer, automation.action_credential)
    context = request_context(
        app, input=result.input, credential=credential, run={"id": "run_preview", "attempt": 1}
    )
    try:
        result.request = sign(app, build_request(app, action.request, context), context)
        if action.model.idempotency_header:
            result.request.headers[action.model.idempotency_header] = "run_preview"
    except RequestBuildError as exc:
        result.error = str(exc)
    return result
