"""The consumer's connections (credentials) as the portal shows them: how each is connected
(an App's OAuth2 consent in a popup, or a form of the App's credential fields), its status,
and never a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.errors import ApiError
from rollout_yaml.server.ui.forms import FormField, ReadForm, build_fields, read_form, scoped

PREFIX = "values"
FORM_AUTH = ("api_key", "bearer", "basic")
NEW_KEY = "new_key"


@dataclass(frozen=True, slots=True)
class Connection:
    key: str
    app: str
    app_name: str
    status: str
    how: str  # "oauth2": consent popup, "form": fields, "file": given by the partner
    declared: bool
    connected: bool
    error: str | None
    authorize_url: str | None
    fields: tuple[FormField, ...]
    problem: str | None
    label: str | None = None
    """The account the App's `auth.test` named, when it was tested."""
    tested: str | None = None  # the outcome of "Test connection", when just run
    testable: bool = False


@dataclass(frozen=True, slots=True)
class NewConnection:
    """A connection no consumer file declares, that the consumer may add: the App's credential
    fields (and a key of its choosing), or its OAuth2 consent for a new key."""

    app: str
    app_name: str
    how: str  # "oauth2" or "form"
    fields: tuple[FormField, ...]
    problem: str | None


def fields_schema(runtime: Runtime, app: str) -> dict[str, Any]:
    """The App's credential fields as an object schema (secret fields are password inputs)."""
    found = runtime.config.current.apps.get(app)
    fields = found.connector.credential_fields() if found is not None else {}
    required = [name for name, spec in fields.items() if not spec.get("optional")]
    return {"type": "object", "properties": fields, "required": required}


def _auth_type(runtime: Runtime, app: str) -> str:
    found = runtime.config.current.apps.get(app)
    return found.connector.auth.type if found is not None else "none"


async def connection_rows(
    runtime: Runtime,
    consumer: str,
    views: Sequence[Mapping[str, Any]],
    *,
    callback: str,
    base_url: str,
    errors: Mapping[str, Mapping[str, str]],
    tested: Mapping[str, str] | None = None,
) -> list[Connection]:
    rows = []
    apps = runtime.config.current.apps
    for view in views:
        key, app = str(view["key"]), str(view["app"])
        kind = _auth_type(runtime, app)
        stored = bool(view["stored"])
        how = "file" if not stored else "oauth2" if kind == "oauth2" else "form"
        authorize_url = problem = None
        if how == "oauth2":
            try:
                authorize_url, _ = await reads.connect_url(
                    runtime, consumer, app, key, callback, base_url
                )
            except ApiError as exc:
                problem = exc.message
        given = errors.get(key, {})
        fields = (
            scoped(build_fields(fields_schema(runtime, app), {}, given, prefix=PREFIX), key)
            if how == "form"
            else []
        )
        rows.append(
            Connection(
                key=key,
                app=app,
                app_name=apps[app].connector.name if app in apps else app,
                status=str(view["status"]),
                how=how,
                declared=bool(view.get("declared", True)),
                connected=str(view["status"]) in ("active", "configured"),
                error=view.get("error"),
                authorize_url=authorize_url,
                fields=tuple(fields),
                problem=problem or given.get("$"),
                label=view.get("label"),
                tested=(tested or {}).get(key),
                testable=stored and _has_test(runtime, app),
            )
        )
    return rows


def _has_test(runtime: Runtime, app: str) -> bool:
    found = runtime.config.current.apps.get(app)
    return found is not None and getattr(found.connector.auth, "test", None) is not None


def new_connections(
    runtime: Runtime, errors: Mapping[str, Mapping[str, str]]
) -> list[NewConnection]:
    """The Apps a consumer may add a connection of: those with OAuth2 or credential fields."""
    found = []
    for key, app in sorted(runtime.config.current.apps.items()):
        kind = app.connector.auth.type
        if kind != "oauth2" and kind not in FORM_AUTH:
            continue
        given = errors.get(key, {})
        fields: list[FormField] = []
        if kind in FORM_AUTH:
            name = FormField(
                name=f"{NEW_KEY}",
                path="$.key",
                label="Name of this connection",
                widget="text",
                description="Lowercase letters, digits and dashes; left empty, one is made up.",
                error=given.get("$.key"),
            )
            fields = [name, *build_fields(fields_schema(runtime, key), {}, given, prefix=PREFIX)]
            fields = scoped(fields, f"new-{key}")
        how = "oauth2" if kind == "oauth2" else "form"
        found.append(NewConnection(key, app.connector.name, how, tuple(fields), given.get("$")))
    return found


async def app_of(runtime: Runtime, consumer: str, key: str) -> str | None:
    """The App of a credential the consumer may set values of: declared `stored: true` in its
    file, or stored at run time; None otherwise."""
    target = await runtime.credentials.target(runtime.config.current, consumer, key)
    if target is None or not target.credential.stored:
        return None
    return target.credential.app


def read_values(runtime: Runtime, app: str, form: Mapping[str, Sequence[str]]) -> ReadForm:
    """The values a connection form of `app` posts."""
    return read_form(fields_schema(runtime, app), form, prefix=PREFIX)


def credential_problems(message: str, details: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """A refused credential write's problems at the field their path names (a value's
    `$.values.<field>`, a new connection's `$.key`), the rest above its form (`$`)."""
    found: dict[str, str] = {}
    for detail in details:
        path = str(detail.get("path") or "$")
        if not (path == "$.key" or path.startswith(f"$.{PREFIX}.")):
            path = "$"
        text = str(detail.get("message") or message)
        found[path] = f"{found[path]}; {text}" if path in found else text
    return found or {"$": message}
