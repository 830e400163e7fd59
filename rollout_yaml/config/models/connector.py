"""`connectors/<app>.yaml`: one App's API — auth, triggers, actions and offline tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from rollout_yaml.config.models.base import JsonSchema, Model
from rollout_yaml.config.models.request import (
    Paginate,
    RateLimit,
    Request,
    RequestDefaults,
    RetryPolicy,
)
from rollout_yaml.config.types import Duration, Key, SemVer

OBJECT_SCHEMA: JsonSchema = {"type": "object"}


class AuthTest(Model):
    """A request that succeeds only with a working credential (Slack's `auth.test`, GitHub's
    `GET /user`): `POST /v1/credentials/{key}/test` sends it."""

    request: Request
    success: str | None = None
    """JMESPath over the answer's body that must be true, besides a 2xx status."""


class _Auth(Model):
    fields: dict[str, JsonSchema] = Field(default_factory=dict)
    """Credential fields beyond the kind's own, as JSON Schema properties (`secret: true`)."""
    test: AuthTest | None = None
    label: str | None = None
    """JMESPath over the answer of `test`: what names the credential in lists (the account)."""

    @model_validator(mode="after")
    def _label_reads_the_test(self) -> _Auth:
        if self.label is not None and self.test is None:
            raise PydanticCustomError(
                "RY103", "auth `label` reads the answer of `auth.test`: add `test:`", {}
            )
        return self


class NoAuth(Model):
    type: Literal["none"]


class ApiKeyAuth(_Auth):
    type: Literal["api_key"]
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _applied_somewhere(self) -> ApiKeyAuth:
        if not self.headers and not self.query:
            raise PydanticCustomError(
                "RY103", "api_key auth needs `headers:` or `query:` to say how the key is sent", {}
            )
        return self


class JwtAuth(_Auth):
    """Rollout's `defineJWTAuth`: the credential is the `authData` the consumer's JWT carries in
    its `"rollout.com"` claim (a string is the field `token`, an object gives its fields). It
    is never stored: the runner keeps the latest one of each consumer in memory until the token
    that carried it expires. `headers:` / `query:` say how it is sent (templates over
    `credential`); by default `Authorization: Bearer {{ credential.token }}`."""

    type: Literal["jwt"]
    headers: dict[str, str] = Field(
        default_factory=lambda: {"Authorization": "Bearer {{ credential.token }}"}
    )
    query: dict[str, str] = Field(default_factory=dict)


class BearerAuth(_Auth):
    type: Literal["bearer"]


class BasicAuth(_Auth):
    type: Literal["basic"]


class OAuth2Auth(_Auth):
    type: Literal["oauth2"]
    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    authorize_url: str | None = None
    token_url: str
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    token_auth: Literal["body", "basic"] = "body"
    authorize_params: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _authorize_url_for_code_grant(self) -> OAuth2Auth:
        if self.grant == "authorization_code" and not self.authorize_url:
            raise PydanticCustomError(
                "RY103", "oauth2 with grant authorization_code needs `authorize_url`", {}
            )
        return self


Auth = Annotated[
    NoAuth | ApiKeyAuth | JwtAuth | BearerAuth | BasicAuth | OAuth2Auth,
    Field(discriminator="type"),
]

# Fields each auth kind implies; these are always secret where marked.
IMPLIED_FIELDS: dict[str, dict[str, JsonSchema]] = {
    "none": {},
    "api_key": {},
    "jwt": {"token": {"type": "string", "secret": True}},
    "bearer": {"token": {"type": "string", "secret": True}},
    "basic": {"username": {"type": "string"}, "password": {"type": "string", "secret": True}},
    "oauth2": {
        "access_token": {"type": "string", "secret": True},
        "refresh_token": {"type": "string", "secret": True},
        "expires_at": {"type": ["string", "number"]},
    },
}


class PollSpec(Model):
    every: Duration
    request: Request
    paginate: Paginate | None = None
    items: str = "@"
    id: str
    cursor: str | None = None
    payload: str | None = None
    initial: Literal["skip", "emit"] = "skip"

    @model_validator(mode="after")
    def _at_least_a_second(self) -> PollSpec:
        if self.every < 1:
            raise PydanticCustomError("RY104", "poll `every` must be at least 1s", {})
        return self


class Verify(Model):
    scheme: Literal["hmac", "standard-webhooks", "stripe", "slack", "github"]
    secret: Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(min_length=1)]
    """A template, or several (secret rotation: a delivery signed by any of them verifies)."""
    header: str | None = None
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    tolerance: Duration = 300.0

    @property
    def secrets(self) -> list[str]:
        return [self.secret] if isinstance(self.secret, str) else list(self.secret)

    @model_validator(mode="after")
    def _hmac_needs_header(self) -> Verify:
        if self.scheme == "hmac" and not self.header:
            raise PydanticCustomError(
                "RY103", "verify scheme hmac needs `header:` (where the signature is sent)", {}
            )
        return self


class Subscribe(Model):
    request: Request
    id: str | None = None


class Unsubscribe(Model):
    request: Request


class WebhookSpec(Model):
    verify: Verify | None = None
    items: str | None = None
    id: str | None = None
    payload: str | None = None
    subscribe: Subscribe | None = None
    unsubscribe: Unsubscribe | None = None


class PushSpec(Model):
    """Events come from the partner's backend through `POST /v1/events`."""


class ScheduleSpec(Model):
    """A schedule given in the connector; the built-in `schedule` app takes it from inputParams."""

    cron: str | None = None
    every: Duration | None = None
    timezone: str | None = None


TRIGGER_KINDS = ("poll", "webhook", "push", "schedule")


class Trigger(Model):
    name: str
    description: str | None = None
    input_schema: JsonSchema = Field(default_factory=lambda: dict(OBJECT_SCHEMA))
    payload_schema: JsonSchema = Field(default_factory=lambda: dict(OBJECT_SCHEMA))
    filter: str | None = None
    poll: PollSpec | None = None
    webhook: WebhookSpec | None = None
    push: PushSpec | None = None
    schedule: ScheduleSpec | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Trigger:
        given = [kind for kind in TRIGGER_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "RY107",
                "a trigger needs exactly one of poll, webhook, push, schedule; got {got}",
                {"got": ", ".join(given) or "none"},
            )
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in TRIGGER_KINDS if getattr(self, kind) is not None)


class Action(Model):
    name: str
    description: str | None = None
    input_schema: JsonSchema = Field(default_factory=lambda: dict(OBJECT_SCHEMA))
    output_schema: JsonSchema | None = None
    request: Request
    success: str | None = None
    error: str | None = None
    output: str | None = None
    idempotency_header: str | None = None
    retry: RetryPolicy | None = None


class ConnectorTest(Model):
    """An offline test: a canned App response in, expected payloads / request / output out."""

    name: str
    trigger: Key | None = None
    action: Key | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    credential: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    response: Any = None
    response_status: Annotated[int, Field(ge=100, le=599)] = 200
    response_headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    """A webhook delivery's headers (what `items`, `id`, `payload` read as `headers`)."""
    query: dict[str, Any] = Field(default_factory=dict)
    """A webhook delivery's URL query (read as `query`)."""
    expect_payloads: list[Any] | None = None
    expect_ids: list[str] | None = None
    expect_request: dict[str, Any] | None = None
    expect_output: Any = None
    expect_error: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ConnectorTest:
        if (self.trigger is None) == (self.action is None):
            raise PydanticCustomError(
                "RY107", "a connector test names exactly one of `trigger` or `action`", {}
            )
        return self


class Connector(Model):
    app: Key
    name: str
    version: SemVer
    description: str | None = None
    base_url: str | None = None
    """Where request paths start. Only a connector that sends no request (push and schedule
    triggers, webhooks without subscribe/unsubscribe) may leave it out."""
    auth: Auth = Field(default_factory=lambda: NoAuth(type="none"))
    defaults: RequestDefaults = Field(default_factory=RequestDefaults)
    rate_limit: RateLimit | None = None
    icon: str | None = None
    """The App's icon in Rollout's embedded components: an image file (SVG, PNG, …) relative to
    this connector file, or a `data:` URL (a monogram of `name` without one)."""
    schemas: dict[str, JsonSchema] = Field(default_factory=dict)
    triggers: dict[Key, Trigger] = Field(default_factory=dict)
    actions: dict[Key, Action] = Field(default_factory=dict)
    tests: list[ConnectorTest] = Field(default_factory=list)

    def credential_fields(self) -> dict[str, JsonSchema]:
        """Every field a credential of this App holds, the auth kind's own first."""
        fields = dict(IMPLIED_FIELDS[self.auth.type])
        if isinstance(self.auth, _Auth):
            fields.update(self.auth.fields)
        return fields

    def requests(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Each request the connector sends, as (what, where in the file), in file order."""
        for key, trigger in self.triggers.items():
            at = ("triggers", key)
            if trigger.poll is not None:
                yield f"the poll of trigger `{key}`", (*at, "poll", "request")
            hook = trigger.webhook
            for step in ("subscribe", "unsubscribe"):
                if hook is not None and getattr(hook, step) is not None:
                    yield f"the {step} of trigger `{key}`", (*at, "webhook", step, "request")
        for key in self.actions:
            yield f"action `{key}`", ("actions", key, "request")

    def secret_fields(self) -> set[str]:
        return {name for name, spec in self.credential_fields().items() if spec.get("secret")}

    def retry_for(self, action: Action) -> RetryPolicy:
        return action.retry or self.defaults.retry


def builtin_schedule() -> Connector:
    """The always-present `schedule` App: `cron` and `every` triggers."""
    payload = {
        "type": "object",
        "properties": {
            "scheduled_at": {"type": "string", "format": "date-time"},
            "fired_at": {"type": "string", "format": "date-time"},
        },
    }
    return Connector(
        app="schedule",
        name="Schedule",
        version="1.0.0",
        base_url="",
        triggers={
            "cron": Trigger(
                name="On a cron schedule",
                input_schema={
                    "type": "object",
                    "required": ["cron"],
                    "properties": {
                        "cron": {"type": "string", "description": "5-field cron expression"},
                        "timezone": {"type": "string", "description": "IANA zone, default UTC"},
                    },
                    "additionalProperties": False,
                },
                payload_schema=payload,
                schedule=ScheduleSpec(),
            ),
            "every": Trigger(
                name="Every interval",
                input_schema={
                    "type": "object",
                    "required": ["every"],
                    "properties": {"every": {"type": "string", "pattern": r"^\d+(ms|s|m|h|d)$"}},
                    "additionalProperties": False,
                },
                payload_schema=payload,
                schedule=ScheduleSpec(),
            ),
        },
    )


__all__ = ["Action", "Connector", "ConnectorTest", "Duration", "Trigger"]
