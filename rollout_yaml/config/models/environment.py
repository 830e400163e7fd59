"""`environments/<env>/environment.yaml`: where and how one environment runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import Duration, Key


class ServerSettings(Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_url: str | None = None


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


class RuntimeSettings(Model):
    workers: Annotated[int, Field(ge=1, le=1024)] = 32
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


# Paths (within environment.yaml) whose values are secrets: never literals, always redacted.
SECRET_SETTING_PATHS: tuple[tuple[str, ...], ...] = (
    ("auth", "jwt_secret"),
    ("auth", "admin_token"),
    ("encryption_key",),
)
SECRET_APP_SETTINGS: tuple[tuple[str, ...], ...] = (("webhook_secret",), ("oauth", "client_secret"))
