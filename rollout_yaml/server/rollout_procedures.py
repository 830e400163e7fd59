"""The tRPC procedures `@rollout/connect-react` calls (through `@rollout/api-client-react`),
answered as a Rollout Project Environment answers them, from the same reads and writes as
`/v1` (`reads`) and in the shapes of `compat`. The wire protocol is `trpc`'s."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rollout_yaml.engine import auth_test
from rollout_yaml.engine.automations import AutomationRefused, Listed
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.expr.compiled import CompiledApp, CompiledEnvironment
from rollout_yaml.server import compat, reads, trpc
from rollout_yaml.server.auth import VerifiedTokens, bearer
from rollout_yaml.server.body import parse as parse_body
from rollout_yaml.server.connect_react_api import PREFIX as CONNECT_REACT
from rollout_yaml.server.trpc import (
    Procedure,
    TRPCError,
    as_trpc_error,
    bad_input,
    mutation,
    query,
)

TRPC_PATH = "/api/trpc"
EVENT_TYPE = re.compile(r"^[A-Za-z0-9 _.:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: the consumer of the request's JWT, and the address the request came to."""

    consumer: str
    base_url: str


class _Input(BaseModel):
    # zod's default: keys a procedure does not know are dropped, not refused
    model_config = ConfigDict(extra="ignore")


class AppKeyIn(_Input):
    appKey: str


class AutomationIdIn(_Input):
    automationId: str


class BlueprintKeyIn(_Input):
    blueprintKey: str


class PayloadSchemaIn(_Input):
    appKey: str
    triggerKey: str
    credentialKey: str | None = None
    inputParams: dict[str, Any] = Field(default_factory=dict)
    automationId: str | None = None


class TriggerRefIn(_Input):
    appKey: str
    triggerKey: str
    credentialKey: str | None = None
    inputParams: dict[str, Any] = Field(default_factory=dict)


class ActionRefIn(_Input):
    appKey: str
    actionKey: str
    credentialKey: str | None = None
    inputParams: dict[str, Any] = Field(default_factory=dict)


class AutomationDataIn(_Input):
    """connect-react's `AutomationFormData`, with what `onBeforeAutomationCreate` may add."""

    name: str
    trigger: TriggerRefIn
    action: ActionRefIn
    blueprintKey: str | None = None
    customData: dict[str, Any] | None = None
    active: bool | None = None


class UpdateIn(_Input):
    id: str
    automationData: AutomationDataIn


class ToggleIn(_Input):
    id: str
    active: bool


class IdIn(_Input):
    id: str


class TestConnectionIn(_Input):
    appKey: str
    apiToken: dict[str, Any] = Field(default_factory=dict)
    """The values connect-react's form collected (`authInfo.customParams`' keys)."""


class AddApiTokenIn(_Input):
    appKey: str
    credential: dict[str, Any]


class DeleteCredentialIn(_Input):
    credentialKey: str
    appKey: str | None = None


class AuthorizeIn(_Input):
    appKey: str
    customParams: dict[str, Any] | None = None


class LogEventIn(_Input):
    eventType: str


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], given: Any) -> M:
    """The call's input as `model`; a refusal naming each field is answered BAD_REQUEST (as
    zod refuses) by `trpc.as_trpc_error`."""
    return parse_body(model, {} if given is None else given)


# -- shapes ------------------------------------------------------------------------------


def static_schema(schema: Mapping[str, Any], prefix: str = "payload.") -> list[dict[str, str]]:
    """A payload schema as Rollout's variables: `[{key, label}]`, nested objects' properties
    with dotted keys; labels are the properties' `title`s, else their paths. A key is the
    template expression that reads the field (`payload.customer.name`): connect-react writes a
    variable as `{{<key>}}`, which is then a rollout-yaml template as it stands."""
    found: list[dict[str, str]] = []
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return found
    for name, spec in properties.items():
        key = f"{prefix}{name}"
        title = spec.get("title") if isinstance(spec, Mapping) else None
        label = title if isinstance(title, str) else key.removeprefix("payload.")
        found.append({"key": key, "label": label})
        if isinstance(spec, Mapping) and spec.get("type") == "object":
            found.extend(static_schema(spec, key + "."))
    return found


def triggers_list(env: CompiledEnvironment) -> dict[str, Any]:
    return {
        key: {
            "name": app.connector.name,
            "triggers": {
                trigger.key: {
                    "name": trigger.model.name,
                    "payloadConfiguration": {
                        "type": "static",
                        "staticSchema": static_schema(trigger.payload_schema.schema),
                    },
                }
                for trigger in app.triggers.values()
            },
        }
        for key, app in sorted(env.apps.items())
        if app.triggers
    }


def actions_list(env: CompiledEnvironment) -> dict[str, Any]:
    return {
        key: {
            "name": app.connector.name,
            "actions": {action.key: {"name": action.model.name} for action in app.actions.values()},
        }
        for key, app in sorted(env.apps.items())
        if app.actions
    }


def auth_info(app: CompiledApp) -> dict[str, Any]:
    """`{type, singleCredentialOnly?, customParams?}`: an API-token App asks for its
    credential fields (the auth kind's own and the connector's `fields`)."""
    kind = app.connector.auth.type
    info: dict[str, Any] = {"type": compat.AUTH_TYPES[kind]}
    if kind in compat.IMPLICIT_CREDENTIAL:
        info["singleCredentialOnly"] = True
    elif kind != "oauth2":
        info["customParams"] = [
            {
                "type": "textfield",
                "key": name,
                "label": str(spec.get("title") or name),
                # connect-react renders infoHTML as HTML: the description goes as text
                **({"infoHTML": escape(str(spec["description"]))} if "description" in spec else {}),
            }
            for name, spec in app.connector.credential_fields().items()
        ]
    return info


def in_rollouts_terms(exc: AutomationRefused) -> TRPCError:
    """A refused write with each problem's path in Rollout's `automationData`."""
    refused = as_trpc_error(exc)
    assert refused is not None
    details = [
        {**d, "path": compat.rollout_path(d["path"])} if isinstance(d.get("path"), str) else d
        for d in exc.details
    ]
    return TRPCError(refused.code, compat.rollout_path(exc.message), details)


# -- the procedures ------------------------------------------------------------------------


def procedures(runtime: Runtime) -> dict[str, Procedure[Caller]]:
    def env() -> CompiledEnvironment:
        return runtime.config.current

    def app_of(key: str) -> CompiledApp:
        found = env().apps.get(key)
        if found is None:
            raise TRPCError("NOT_FOUND", f"app `{key}` not found")
        return found

    async def own(consumer: str) -> list[Listed]:
        return await runtime.automations.list(consumer)

    def view(listed: Listed | None) -> dict[str, Any]:
        assert listed is not None
        return compat.listed_view(env().name, env().blueprints, listed)

    async def automation_of(consumer: str, automation_id: str) -> Listed:
        found = compat.find_listed(env().name, await own(consumer), automation_id)
        if found is None:
            raise TRPCError("NOT_FOUND", f"automation `{automation_id}` not found")
        return found

    async def list_triggers(_caller: Caller, _given: Any) -> Any:
        return triggers_list(env())

    async def list_actions(_caller: Caller, _given: Any) -> Any:
        return actions_list(env())

    async def list_automations(caller: Caller, _given: Any) -> Any:
        return [view(a) for a in await own(caller.consumer)]

    async def get_automation(caller: Caller, given: Any) -> Any:
        wanted = parse(AutomationIdIn, given)
        return view(await automation_of(caller.consumer, wanted.automationId))

    def body_of(consumer: str, data: AutomationDataIn) -> dict[str, Any]:
        given = data.model_dump(exclude_none=True)
        return compat.definition_of(env(), consumer, given)

    async def create_automation(caller: Caller, given: Any) -> Any:
        data = parse(AutomationDataIn, given)
        body = {
            "key": compat.new_key(data.name),
            "enabled": True if data.active is None else data.active,
            "custom_data": data.customData,
            **body_of(caller.consumer, data),
        }
        try:
            stored = await runtime.automations.create(caller.consumer, body, admin=False)
        except AutomationRefused as exc:
            raise in_rollouts_terms(exc) from exc
        return view(await runtime.automations.get(caller.consumer, stored.key))

    async def update_automation(caller: Caller, given: Any) -> Any:
        wanted = parse(UpdateIn, given)
        current = await automation_of(caller.consumer, wanted.id)
        data = wanted.automationData
        enabled = current.stored.enabled if current.stored else True
        custom = data.customData
        if custom is None and current.stored is not None:
            custom = current.stored.custom_data
        body = {"enabled": enabled, "custom_data": custom, **body_of(caller.consumer, data)}
        try:
            await runtime.automations.replace(caller.consumer, current.key, body, None, admin=False)
        except AutomationRefused as exc:
            raise in_rollouts_terms(exc) from exc
        return view(await runtime.automations.get(caller.consumer, current.key))

    async def toggle_active(caller: Caller, given: Any) -> Any:
        wanted = parse(ToggleIn, given)
        current = await automation_of(caller.consumer, wanted.id)
        change = {"enabled": wanted.active}
        await runtime.automations.patch(caller.consumer, current.key, change, None, admin=False)
        return view(await runtime.automations.get(caller.consumer, current.key))

    async def delete_automation(caller: Caller, given: Any) -> Any:
        current = await automation_of(caller.consumer, parse(IdIn, given).id)
        shown = view(current)
        await runtime.automations.delete(caller.consumer, current.key)
        return shown

    async def payload_schema(_caller: Caller, given: Any) -> Any:
        wanted = parse(PayloadSchemaIn, given)
        trigger = app_of(wanted.appKey).triggers.get(wanted.triggerKey)
        if trigger is None:
            raise TRPCError("NOT_FOUND", f"trigger `{wanted.appKey}.{wanted.triggerKey}` not found")
        return static_schema(trigger.payload_schema.schema)

    async def app_credentials(caller: Caller, given: Any) -> Any:
        app = app_of(parse(AppKeyIn, given).appKey)
        if app.connector.auth.type in compat.IMPLICIT_CREDENTIAL:
            name = env().consumers.get(caller.consumer)
            label = name.name if name is not None else caller.consumer
            return [{"credentialKey": caller.consumer, "credentialType": "PRIMARY", "label": label}]
        views = await reads.list_credentials(runtime, caller.consumer)
        return [
            {
                "credentialKey": v["key"],
                "credentialType": "PRIMARY",
                "label": v.get("label") or v["key"],
            }
            for v in views
            if v["app"] == app.key and v["status"] in ("configured", "active")
        ]

    async def app_auth_info(_caller: Caller, given: Any) -> Any:
        return auth_info(app_of(parse(AppKeyIn, given).appKey))

    async def blueprint_automation(caller: Caller, given: Any) -> Any:
        key = parse(BlueprintKeyIn, given).blueprintKey
        if key not in env().blueprints:
            raise TRPCError("NOT_FOUND", f"blueprint `{key}` not found")
        found = [a for a in await own(caller.consumer) if compat.blueprint_of(a) == key]
        return view(found[0]) if found else None

    async def authorize_url(caller: Caller, given: Any) -> Any:
        wanted = parse(AuthorizeIn, given)
        app_of(wanted.appKey)
        request_id = str(uuid.uuid4())
        base = caller.base_url.rstrip("/")
        done = f"{base}{CONNECT_REACT}/oauth-done?{urlencode({'requestId': request_id})}"
        url, _ = await reads.connect_url(
            runtime, caller.consumer, wanted.appKey, None, done, base + "/"
        )
        return {"url": url, "requestId": request_id}

    async def test_connection(caller: Caller, given: Any) -> Any:
        wanted = parse(TestConnectionIn, given)
        app = api_token_app(wanted.appKey)
        now = runtime.credentials.clock()
        result = await auth_test.try_values(
            runtime.outbound, env(), app, caller.consumer, wanted.apiToken, now
        )
        return True if result is None else result.ok  # no `auth.test`: checked when saved

    async def add_api_token(caller: Caller, given: Any) -> Any:
        wanted = parse(AddApiTokenIn, given)
        app = api_token_app(wanted.appKey)
        view = await reads.put_credential(
            runtime, caller.consumer, None, app.key, wanted.credential
        )
        if app.auth_test is not None:  # its label names it in the lists
            await reads.run_auth_test(runtime, caller.consumer, view["key"])
        return {"credentialKey": view["key"]}

    async def delete_credential(caller: Caller, given: Any) -> Any:
        wanted = parse(DeleteCredentialIn, given)
        current = await reads.credential(runtime, caller.consumer, wanted.credentialKey)
        if wanted.appKey is not None and current["app"] != wanted.appKey:
            raise TRPCError("NOT_FOUND", f"credential `{wanted.credentialKey}` not found")
        await reads.delete_credential(runtime, caller.consumer, wanted.credentialKey)
        return None

    def api_token_app(key: str) -> CompiledApp:
        app = app_of(key)
        if compat.AUTH_TYPES[app.connector.auth.type] != "apiKey":
            message = f"app `{key}` takes no API token (its auth is {app.connector.auth.type})"
            raise bad_input("$.appKey", message)
        return app

    async def log_event(_caller: Caller, given: Any) -> Any:
        event = parse(LogEventIn, given).eventType
        runtime.metrics.connect_events.labels(event if EVENT_TYPE.match(event) else "other").inc()
        return None

    return {
        "triggers.list": query(list_triggers),
        "triggers.getPayloadSchema": query(payload_schema),
        "actions.list": query(list_actions),
        "automations.list": query(list_automations),
        "automations.get": query(get_automation),
        "automations.create": mutation(create_automation),
        "automations.update": mutation(update_automation),
        "automations.toggleActive": mutation(toggle_active),
        "automations.delete": mutation(delete_automation),
        "apps.credentials": query(app_credentials),
        "apps.authInfo": query(app_auth_info),
        "blueprints.getAutomation": query(blueprint_automation),
        "credentials.testConnection": mutation(test_connection),
        "credentials.addApiToken": mutation(add_api_token),
        "credentials.delete": mutation(delete_credential),
        "oauth.getAuthorizeURL": mutation(authorize_url),
        "analytics.logEvent": mutation(log_event),
    }


def router(runtime: Runtime) -> APIRouter:
    """`/api/trpc`, with the consumer JWT of `/v1` (verified through the application's one
    token cache)."""
    table = procedures(runtime)

    async def caller(request: Request) -> Caller:
        tokens: VerifiedTokens = request.app.state.tokens
        env = runtime.config.current
        consumer = tokens.verify(bearer(request.headers.get("authorization")), env.settings.auth)
        runtime.credentials.from_tokens.remember(consumer.key, consumer.claims)
        base = env.settings.server.public_url or runtime.listening or str(request.base_url)
        return Caller(consumer.key, base)

    def body_limit() -> int:
        return runtime.config.current.settings.runtime.limits.max_payload_bytes

    return trpc.router(TRPC_PATH, table, caller, body_limit)
