"""Request and response bodies, as pydantic models: they validate what comes in and document
(in /openapi.json) what goes out. Responses are built as plain dicts by `views`; these models
only describe them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 500


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(Strict):
    """One push-trigger event."""

    app: Annotated[str, Field(min_length=1, description="appKey of the trigger's App")]
    trigger: Annotated[str, Field(min_length=1, description="triggerKey of a push trigger")]
    id: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=512,
            description="Your id for the event (a string or integer): the same id again makes "
            "no new run",
        ),
    ] = None
    payload: Annotated[Any, Field(description="Must match the trigger's payload_schema")]

    @field_validator("id", mode="before")
    @classmethod
    def _integer_id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


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
    id: str | None = None


# -- responses (documentation) ---------------------------------------------------------------


class ErrorDetail(BaseModel):
    path: str
    message: str


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
    status: str
    trigger: dict[str, Any]
    action: dict[str, Any]
    last_run: LastRun | None
    webhook_url: str | None


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
    stored: bool = Field(description="Kept in the database (else given in the consumer file)")
    declared: bool = Field(description="False: stored, but no longer in the consumer file")
    status: Literal["configured", "not_connected", "active", "needs_reauth"]
    expires_at: str | None = Field(description="When the OAuth2 access token expires")
    updated_at: str | None
    error: str | None = Field(description="Why it needs to be connected again")


class CredentialIn(Strict):
    """Values of a credential declared `stored: true` in the consumer file."""

    key: Annotated[str, Field(min_length=1, description="credentialKey")]
    app: Annotated[str | None, Field(description="Checked against the declaration if given")] = None
    values: Annotated[
        dict[str, Any], Field(description="Fields of the App's credentials (auth `fields`)")
    ]


class CredentialValuesIn(Strict):
    values: dict[str, Any]


class ConnectOut(BaseModel):
    authorize_url: str


class CredentialList(BaseModel):
    credentials: list[CredentialOut]
    next_cursor: str | None


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    EventIn,
    EventBatchIn,
    AdminEventIn,
    AdminEventBatchIn,
    RolloutPushIn,
    CredentialIn,
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
