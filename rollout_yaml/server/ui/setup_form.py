"""The form that switches a blueprint on for a consumer: a key, the credentials its Apps need,
and the blueprint's params (generated from its JSON Schema by `forms`).

Every field is named after its place in the body of `POST /v1/automations`
(`key`, `credentials.action`, `params.channel`), so the validator's 422 details, whose paths
are JSON paths in that body, land next to the field they are about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollout_yaml.expr.compiled import CompiledBlueprint, CompiledEnvironment
from rollout_yaml.server.ui.forms import FormField, Option, build_fields, read_form

ROLES = (("trigger", "trigger"), ("action", "action"))


@dataclass(frozen=True, slots=True)
class SetupForm:
    fields: list[FormField]
    params: list[FormField]
    missing_connections: list[str]  # Apps that need a connection the consumer does not have


def _needs_credential(env: CompiledEnvironment, app: str) -> bool:
    found = env.apps.get(app)
    return found is not None and found.connector.auth.type != "none"


def _apps(blueprint: CompiledBlueprint) -> dict[str, str]:
    model = blueprint.model
    return {"trigger": model.trigger.app, "action": model.action.app}


def free_key(blueprint: str, taken: set[str]) -> str:
    """The blueprint's key, or `key-2`, `key-3`… when the consumer already uses it."""
    if blueprint not in taken:
        return blueprint
    n = 2
    while f"{blueprint}-{n}" in taken:
        n += 1
    return f"{blueprint}-{n}"


def setup_form(
    env: CompiledEnvironment,
    blueprint: CompiledBlueprint,
    credentials: Sequence[Mapping[str, Any]],
    taken: set[str],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
) -> SetupForm:
    """The fields of the setup page, filled with a previous post's `values` and `errors`."""
    given = values or {}
    found = errors or {}
    fields = [
        FormField(
            name="key",
            path="$.key",
            label="Automation key",
            widget="text",
            required=True,
            description="Lowercase letters, digits and dashes; names this automation in runs.",
            value=str(given.get("key") or free_key(blueprint.key, taken)),
            error=found.get("$.key"),
        ),
    ]
    missing = []
    chosen = given.get("credentials") or {}
    for role, label in ROLES:
        app = _apps(blueprint)[role]
        if not _needs_credential(env, app):
            continue
        usable = [c for c in credentials if c["app"] == app]
        if not usable:
            missing.append(app)
        pick = chosen.get(role) or (usable[0]["key"] if len(usable) == 1 else None)
        options = tuple(
            Option(str(c["key"]), f"{c['key']} ({c['status']})", c["key"] == pick) for c in usable
        )
        blank = () if pick else (Option("", "—", True),)
        name = env.apps[app].connector.name
        fields.append(
            FormField(
                name=f"credentials.{role}",
                path=f"$.credentials.{role}",
                label=f"{name} connection ({label})",
                widget="select",
                required=True,
                options=blank + options,
                error=found.get(f"$.credentials.{role}"),
            )
        )
    params = build_fields(
        blueprint.model.params,
        given.get("params") if values is not None else None,
        found,
        prefix="params",
        use_defaults=values is None,
    )
    return SetupForm(fields, params, missing)


@dataclass(frozen=True, slots=True)
class SetupPost:
    body: dict[str, Any]  # the body of POST /v1/automations
    errors: dict[str, str]  # fields that could not be read at all


def read_setup(blueprint: CompiledBlueprint, form: Mapping[str, Sequence[str]]) -> SetupPost:
    def one(name: str) -> str:
        values = form.get(name)
        return values[-1].strip() if values else ""

    read = read_form(blueprint.model.params, form, prefix="params")
    credentials = {
        role: one(f"credentials.{role}") for role, _ in ROLES if one(f"credentials.{role}")
    }
    body: dict[str, Any] = {"key": one("key"), "blueprint": blueprint.key, "params": read.values}
    if credentials:
        body["credentials"] = credentials
    return SetupPost(body, read.errors)


def _with_help(detail: Mapping[str, Any]) -> str:
    message = str(detail.get("message") or "invalid")
    help = detail.get("help")
    return f"{message} ({help})" if isinstance(help, str) and help else message


def refusal_details(
    status: int, message: str, details: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """A refused write's problems in the shape `forms.field_errors` places: a 422's details
    (with their help); any other refusal (the key exists, a file owns it) as its message, at
    the path its details name."""
    if status == 422 and details:
        return [{"path": str(d.get("path") or "$"), "message": _with_help(d)} for d in details]
    path = next((str(d["path"]) for d in details if d.get("path")), "$")
    return [{"path": path, "message": message}]
