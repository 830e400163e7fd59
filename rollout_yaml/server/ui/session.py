"""Who is signed in to the pages: a signed, HttpOnly cookie made once from a token.

The cookie holds no secret and nothing the server must remember, so every replica reads it
the same way: who (an operator, or one consumer), until when, a nonce for the CSRF token and
the portal's theme, signed with HMAC-SHA256 under a key derived from the secret that made the
token (`auth.admin_token` for operators, `auth.jwt_secret` for consumers). Changing that
secret signs everyone out. A consumer's session never outlives the JWT it was made from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Literal

from rollout_yaml.config.models.environment import AuthSettings

Kind = Literal["operator", "consumer"]

OPERATOR_COOKIE = "ry_operator"
CONSUMER_COOKIE = "ry_portal"
COOKIE_PATH = "/ui"
_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class Session:
    kind: Kind
    consumer: str | None
    expires_at: float
    nonce: str
    theme: str = ""


def new_session(kind: Kind, consumer: str | None, expires_at: float, theme: str = "") -> Session:
    return Session(kind, consumer, expires_at, secrets.token_urlsafe(18), theme)


def with_theme(session: Session, theme: str) -> Session:
    return replace(session, theme=theme)


def signing_key(kind: Kind, auth: AuthSettings) -> bytes | None:
    """The HMAC key of one kind of session, or None when its secret is not configured."""
    secret = auth.admin_token if kind == "operator" else auth.jwt_secret
    if not secret:
        return None
    return hmac.new(secret.encode(), f"rollout-yaml ui session {kind}".encode(), "sha256").digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(session: Session, auth: AuthSettings) -> str:
    """The cookie value of `session` (ValueError when its secret is not configured)."""
    key = signing_key(session.kind, auth)
    if key is None:
        raise ValueError(f"no secret to sign an {session.kind} session with")
    body = {
        "k": session.kind,
        "c": session.consumer,
        "x": session.expires_at,
        "n": session.nonce,
        "t": session.theme,
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    signature = _b64(hmac.new(key, f"{_VERSION}.{payload}".encode(), hashlib.sha256).digest())
    return f"{_VERSION}.{payload}.{signature}"


def unseal(
    cookie: str | None, kind: Kind, auth: AuthSettings, now: float | None = None
) -> Session | None:
    """The session in a cookie value, or None when absent, forged, of another kind or expired."""
    key = signing_key(kind, auth)
    if not cookie or key is None:
        return None
    version, _, rest = cookie.partition(".")
    payload, _, signature = rest.partition(".")
    if version != _VERSION or not payload or not signature:
        return None
    expected = hmac.new(key, f"{_VERSION}.{payload}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        body = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("k") != kind:
        return None
    expires_at, consumer, nonce, theme = body.get("x"), body.get("c"), body.get("n"), body.get("t")
    if not isinstance(expires_at, int | float) or expires_at <= (now or time.time()):
        return None
    if not isinstance(nonce, str) or not isinstance(theme, str):
        return None
    if kind == "consumer" and not (isinstance(consumer, str) and consumer):
        return None
    return Session(kind, consumer if kind == "consumer" else None, float(expires_at), nonce, theme)
