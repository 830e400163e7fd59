"""`notify:` in environment.yaml: where the partner hears about runs, automations and
credentials (engine/notifications.py sends them, docs/notifications.md describes them)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import Duration

NotificationType = Literal[
    "run.finished",
    "automation.created",
    "automation.updated",
    "automation.deleted",
    "automation.invalid",
    "credential.needs_reauth",
]
NOTIFICATION_TYPES: tuple[NotificationType, ...] = (
    "run.finished",
    "automation.created",
    "automation.updated",
    "automation.deleted",
    "automation.invalid",
    "credential.needs_reauth",
)
SECRET_PREFIX = "whsec_"
GENERATE_SECRET = (
    "python -c \"import base64, os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
)


def _url(value: str | None) -> str | None:
    if not value:
        return None  # `${NOTIFY_URL:-}`: notifications are off
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError(
            "RY104",
            "`{value}` is not an http(s) URL: write e.g. https://partner.example.com/hooks",
            {"value": value},
        )
    if parts.username or parts.password:
        raise PydanticCustomError(
            "RY104", "the URL may not carry a user or password: the signature authenticates", {}
        )
    return value


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret (its base64 part decoded), as Standard Webhooks
    libraries read it; ValueError when it is not one. Messages never include the value."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"the secret must start with `{SECRET_PREFIX}`")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the part after `{SECRET_PREFIX}` must be base64") from exc
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the key must be 24 to 64 bytes (it is {len(key)})")
    return key


def secret_parts(setting: str) -> list[str]:
    """The secrets of `notify.secret`: one, or several separated by commas while rotating
    (each delivery is then signed with every one)."""
    return [part.strip() for part in setting.split(",") if part.strip()]


def secret_keys(setting: str) -> list[bytes]:
    """The HMAC key of each secret in `notify.secret`; ValueError naming the bad one's place."""
    parts = secret_parts(setting)
    keys = []
    for index, part in enumerate(parts):
        try:
            keys.append(secret_key(part))
        except ValueError as exc:
            which = f"secret {index + 1} of {len(parts)}: " if len(parts) > 1 else ""
            raise ValueError(which + str(exc)) from None
    return keys


def _secret(value: str | None) -> str | None:
    if not value:
        return value  # an unset `${VAR}` is RY501's to report
    try:
        secret_keys(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "RY104",
            "{reason}; generate one with {command}",
            {"reason": str(exc), "command": GENERATE_SECRET},
        ) from None
    return value


class NotifyRetry(Model):
    """When a delivery fails (no answer, or not 2xx), it is tried again after `first`, then
    twice as long each time up to `max`, each wait shortened by up to a half at random
    (jitter), until it is delivered: a notification is never dropped."""

    first: Duration = 5.0
    max: Duration = 3600.0
    timeout: Duration = 10.0
    """How long one delivery may take before it counts as failed."""


class NotifySettings(Model):
    """Partner notifications, signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    `webhook-signature`). Without `url` nothing is recorded or sent."""

    url: Annotated[str | None, AfterValidator(_url)] = None
    secret: Annotated[str | None, AfterValidator(_secret)] = None
    """A `whsec_…` secret (base64 of 24 to 64 random bytes), as a `${…}` reference; while
    rotating, `"${NEW},${OLD}"` signs every delivery with both."""
    events: list[NotificationType] = Field(default_factory=lambda: list(NOTIFICATION_TYPES))
    retry: NotifyRetry = Field(default_factory=NotifyRetry)

    @model_validator(mode="after")
    def _signed(self) -> NotifySettings:
        if self.url is not None and self.secret is None:
            raise PydanticCustomError(
                "RY103",
                "`url` needs `secret`: notifications are always signed",
                {},
            )
        return self

    def wants(self, kind: str) -> bool:
        """Whether a notification of this type is recorded (and so sent)."""
        return self.url is not None and kind in self.events
