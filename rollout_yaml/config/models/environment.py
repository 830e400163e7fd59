"""`environments/<env>/environment.yaml`: where and how one environment runs."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from rollout_yaml.config.codes import ignorable
from rollout_yaml.config.models.base import Model
from rollout_yaml.config.models.notify import NotifySettings
from rollout_yaml.config.models.self_service import SelfServiceSettings
from rollout_yaml.config.types import Duration, Key

_FRAME_ANCESTOR = re.compile(
    r"^(?:'self'|https?://(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?)$"
)


def _frame_ancestor(value: str) -> str:
    """An origin as CSP `frame-ancestors` takes it, checked so that nothing else can reach the
    header (no spaces, semicolons, paths or keywords but `'self'`)."""
    if not _FRAME_ANCESTOR.match(value):
        raise PydanticCustomError(
            "RY104",
            "`{value}` is not an origin: write scheme://host[:port], e.g. "
            "https://app.example.com or https://*.example.com, or 'self'",
            {"value": value},
        )
    return value


FrameAncestor = Annotated[str, AfterValidator(_frame_ancestor)]


class UiSettings(Model):
    """The `/ui` pages. `frame_ancestors` lists the origins whose pages may show the consumer
    portal (`/ui/embed`) in an iframe; none may by default. The operator pages are never framed."""

    frame_ancestors: list[FrameAncestor] = Field(default_factory=list)
    session_ttl: Duration = 8 * 3600.0
    """How long an operator's sign-in lasts (a consumer's ends with its token)."""


class ServerSettings(Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_url: str | None = None
    ui: UiSettings = Field(default_factory=UiSettings)
    cors_origins: list[str] = Field(default_factory=list)
    """Origins (`https://app.example.com`, or `*`) whose pages may call `/api` and `/v1` from a
    browser, as Rollout's embedded components do."""


class AuthSettings(Model):
    jwt_secret: str | None = None
    jwt_issuer: str | None = None
    admin_token: str | None = None


class SecretsSettings(Model):
    files: list[str] = Field(default_factory=list)


class OAuthClient(Model):
    client_id: str
    client_secret: str


class AppSettings(Model):
    vars: dict[str, Any] = Field(default_factory=dict)
    base_url: str | None = None
    oauth: OAuthClient | None = None
    webhook_secret: str | None = None


class Retention(Model):
    runs: Duration = 30 * 86400.0
    events: Duration = 30 * 86400.0


class Limits(Model):
    max_payload_bytes: Annotated[int, Field(ge=1)] = 1_048_576
    max_response_bytes: Annotated[int, Field(ge=1)] = 10_485_760


class Egress(Model):
    """`allow_private: false` refuses requests to loopback, private, link-local (cloud
    metadata), CGNAT, multicast and reserved addresses, however the host is spelled and
    whatever a DNS name resolves to; the run fails with error kind `egress`."""

    allow_private: bool = True


def _ignorable(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # pydantic reports the wrong type
    try:
        return ignorable(value)
    except ValueError as exc:
        raise PydanticCustomError("RY104", "{reason}", {"reason": str(exc)}) from exc


class ValidateSettings(Model):
    """What `validate` reports for this environment's own files (environment.yaml, consumers/,
    release/). `ignore` silences warnings of the listed codes, e.g. `[RY501]` in an
    environment whose secrets exist only on the hosts that run it; errors always show."""

    ignore: list[Annotated[str, BeforeValidator(_ignorable)]] = Field(default_factory=list)


Processes = Literal["auto"] | Annotated[int, Field(ge=1, le=64)]
"""`runtime.processes`: how many equal daemon processes serve and execute (`auto`: one per
CPU); see docs/runtime.md."""


class RuntimeSettings(Model):
    workers: Annotated[int, Field(ge=1, le=1024)] = 32
    processes: Processes = 1
    dry_run: bool = False
    poll_floor: Duration = 1.0
    lease: Duration = 60.0
    grace_period: Duration = 30.0
    retention: Retention = Field(default_factory=Retention)
    limits: Limits = Field(default_factory=Limits)
    egress: Egress = Field(default_factory=Egress)


class EnvironmentSettings(Model):
    environment: Key
    release: Literal["live", "frozen"] = "live"
    database: str = "sqlite"
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
    encryption_key: str | None = None
    apps: dict[Key, AppSettings] = Field(default_factory=dict)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    validate_: ValidateSettings = Field(default_factory=ValidateSettings, alias="validate")
    notify: NotifySettings = Field(default_factory=NotifySettings)
    self_service: SelfServiceSettings = Field(default_factory=SelfServiceSettings)


# Paths (within environment.yaml) whose values are secrets: never literals, always redacted.
SECRET_SETTING_PATHS: tuple[tuple[str, ...], ...] = (
    ("auth", "jwt_secret"),
    ("auth", "admin_token"),
    ("encryption_key",),
    ("notify", "secret"),
)
SECRET_APP_SETTINGS: tuple[tuple[str, ...], ...] = (("webhook_secret",), ("oauth", "client_secret"))
