"""Request and response bodies, as pydantic models: they validate what comes in and document
(in /openapi.json) what goes out. Responses are built as plain dicts by `views`; these models
only describe them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from rollout_yaml.config.types import CONSUMER_KEY_PATTERN
from rollout_yaml.store.schema import MAX_EVENT_KEY

MAX_BATCH = 500


def _integer_id_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


EventId = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_EVENT_KEY)] | None,
    BeforeValidator(_integer_id_as_text),
    Field(
        description="Your id for the event (a string or integer, at most "
        f"{MAX_EVENT_KEY} characters): the same id again makes no new run",
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(Strict):
    """One push-trigger event."""

    app: Annotated[str, Field(min_length=1, description="appKey of the trigger's App")]
    trigger: Annotated[str, Field(min_length=1, description="triggerKey of a push trigger")]
    id: EventId = None
    payload: Annotated[Any, Field(description="Must match the trigger's payload_schema")]


class EventBatchIn(Strict):
    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class AdminEventIn(EventIn):
    consumer: Annotated[str, Field(min_length=1, description="consumerKey the event belongs to")]


class AdminEventBatchIn(EventBatchIn):
    consumer: Annotated[str, Field(min_length=1)]


class RolloutPushIn(BaseModel):
    """Rollout's `POST /api/trigger-push-event` body (unknown fields are ignored, as there)."""

    appKey: Annotated[str, Field(min_length=1)]
    triggerKey: Annotated[str, Field(min_length=1)]
    payload: Any
    id: EventId = None


# -- responses (documentation) ---------------------------------------------------------------


class ErrorDetail(BaseModel):
    path: str
    message: str
    code: str | None = Field(default=None, description="A diagnostic code (RY…) or a word")
    help: str | None = Field(default=None, description="A one-line fix")


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorOut(BaseModel):
    error: ErrorInfo


class EventsAccepted(BaseModel):
    event_ids: list[str]
    runs_queued: int


class EventOut(BaseModel):
    id: str
    key: str
    app: str
    trigger: str
    received_at: str
    payload: Any = None


class AttemptOut(BaseModel):
    number: int
    started_at: str
    duration_ms: float
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    error: str | None


class RunOut(BaseModel):
    id: str
    automation: str
    consumer: str
    status: str
    event: EventOut
    input: Any
    output: Any
    error: str | None
    error_kind: str | None
    attempt_count: int
    attempts: list[AttemptOut] | None = None
    created_at: str
    finished_at: str | None
    next_attempt_at: str | None
    replay_of: str | None


class RunList(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class LastRun(BaseModel):
    id: str
    status: str
    created_at: str
    finished_at: str | None


class AutomationOut(BaseModel):
    key: str
    consumer: str
    name: str
    blueprint: str | None
    source: Literal["file", "api"] = Field(
        description="`file`: a consumer file's (read-only here); `api`: created over the API"
    )
    file: str | None = Field(description="The consumer file (source `file`)")
    line: int | None = Field(description="Its line in that file")
    enabled: bool
    status: Literal["ready", "invalid"] = Field(
        description="`invalid`: no longer compiles (see `diagnostics`); kept, not run"
    )
    diagnostics: list[dict[str, Any]]
    version: int | None = Field(description="Bumped on every write; send it as If-Match")
    definition: dict[str, Any] | None = Field(
        description="As a consumer file would hold it under `automations.<key>`"
    )
    custom_data: Any = None
    created_at: str | None
    updated_at: str | None
    trigger: dict[str, Any]
    action: dict[str, Any]
    last_run: LastRun | None
    webhook_url: str | None


class AutomationIn(BaseModel):
    """A blueprint with its params and credentials, or trigger, filter and action written
    out (when `self_service.inline` allows it): what a consumer file holds under
    `automations.<key>`. Checked exactly as `validate` checks a consumer file."""

    model_config = ConfigDict(extra="allow")

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)
    blueprint: str | None = None
    name: str | None = None
    enabled: bool = True
    params: dict[str, Any] | None = None
    credentials: dict[str, str] | None = Field(
        None, description="`{trigger: <credentialKey>, action: <credentialKey>}`"
    )
    trigger: dict[str, Any] | None = None
    filter: str | None = None
    action: dict[str, Any] | None = None
    custom_data: Any = Field(None, description="Free JSON of the partner's, returned as given")


class AdminAutomationIn(AutomationIn):
    consumer: str = Field(description="The consumerKey the automation belongs to")


class AutomationPatchIn(BaseModel):
    """Only these fields; `params` and `credentials` replace the stored ones whole."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    params: dict[str, Any] | None = None
    credentials: dict[str, str] | None = None
    custom_data: Any = None


class AutomationList(BaseModel):
    automations: list[AutomationOut]
    next_cursor: str | None


class AppOut(BaseModel):
    key: str
    name: str
    triggers: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class AppList(BaseModel):
    apps: list[AppOut]
    next_cursor: str | None


class CredentialOut(BaseModel):
    key: str
    app: str
    source: Literal["file", "api"] = Field(
        description="`file`: declared in the consumer file; `api`: created at run time"
    )
    stored: bool = Field(description="Kept in the database (else given in the consumer file)")
    declared: bool = Field(description="Declared in the consumer file (`source: file`)")
    status: Literal["configured", "not_connected", "active", "needs_reauth"]
    label: str | None = Field(description="What the App's `auth.test` named (the account)")
    tested_at: str | None = Field(description="When `auth.test` last succeeded")
    expires_at: str | None = Field(description="When the OAuth2 access token expires")
    updated_at: str | None
    error: str | None = Field(description="Why it needs to be connected again")


class CredentialIn(Strict):
    """A credential's values: of one the consumer file declares `stored: true`, or of a new
    one declared in no file (`app` required; `key` made up when left out)."""

    key: Annotated[
        str | None, Field(min_length=1, description="credentialKey (made up when left out)")
    ] = None
    app: Annotated[
        str | None,
        Field(description="The App; required for a credential no consumer file declares"),
    ] = None
    values: Annotated[
        dict[str, Any], Field(description="Fields of the App's credentials (auth `fields`)")
    ]


class AdminCredentialIn(CredentialIn):
    consumer: Annotated[
        str,
        Field(
            min_length=1, max_length=200, pattern=CONSUMER_KEY_PATTERN, description="consumerKey"
        ),
    ]


class CredentialValuesIn(Strict):
    values: dict[str, Any]


class AuthTestOut(BaseModel):
    ok: bool
    status: int | None = Field(description="The App's HTTP status, if it answered")
    label: str | None = Field(description="What `auth.label` read from the answer")
    error: str | None = Field(description="Why the test failed (secrets redacted)")
    tested_at: str


class CredentialTestOut(CredentialOut):
    test: AuthTestOut


class ConnectOut(BaseModel):
    authorize_url: str
    credential: str = Field(description="The credential it connects (new when not given)")


class CredentialList(BaseModel):
    credentials: list[CredentialOut]
    next_cursor: str | None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    AutomationIn,
    AdminAutomationIn,
    AutomationPatchIn,
    EventIn,
    EventBatchIn,
    AdminEventIn,
    AdminEventBatchIn,
    RolloutPushIn,
    CredentialIn,
    AdminCredentialIn,
    CredentialValuesIn,
)


def request_body(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that the handler reads itself (see `body`)."""
    refs = [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "The body is not JSON"),
        (401, "Missing or invalid token"),
        (404, "Not found (or another consumer's)"),
        (413, "The body exceeds runtime.limits.max_payload_bytes"),
        (422, "The request fails a schema; `details` has the JSON path of each problem"),
    )
}


class NotificationOut(BaseModel):
    """One partner notification (`notify:`): the body as sent, and how its delivery goes."""

    id: Annotated[str, Field(description="The `webhook-id` of every delivery of it")]
    type: str
    status: Annotated[
        Literal["pending", "delivered", "failing"],
        Field(description="failing: not delivered yet, at least one delivery failed"),
    ]
    attempts: int
    created_at: str
    delivered_at: str | None
    next_attempt_at: str | None
    last_error: str | None
    payload: Annotated[Any, Field(description="`{type, timestamp, data}`, as delivered")]


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
    next_cursor: str | None
