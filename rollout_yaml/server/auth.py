"""Who is calling: consumer JWTs (HS512 only) and the admin token.

Verification is strict on purpose: only HS512, every time claim required and checked here
(not left to library defaults). Every failure is a 401 `unauthorized`; the message says what
was wrong with the token (never anything about the secret).
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.store.schema import MAX_CONSUMER_KEY

ALGORITHM = "HS512"
LEEWAY = 30.0
MAX_LIFETIME = 24 * 3600.0
REQUIRED_CLAIMS = ("sub", "iat", "exp")
_MAX_SECONDS = 2**53  # beyond, a float cannot hold the whole number


class Unauthorized(Exception):
    """A request without valid credentials. The message is safe to show to the caller."""


@dataclass(frozen=True, slots=True)
class Consumer:
    key: str
    claims: dict[str, Any]


def make_token(secret: str, consumer: str, ttl: float, issuer: str | None = None) -> str:
    """A consumer JWT as the API accepts it (for `rollout-yaml token` and tests)."""
    if ttl <= 0 or ttl > MAX_LIFETIME:
        raise ValueError("a token lives more than 0 s and at most 24 h")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": consumer, "iat": now, "exp": now + int(ttl)}
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_consumer_token(token: str, auth: AuthSettings, now: float | None = None) -> Consumer:
    """The consumer a token speaks for, or Unauthorized."""
    if not auth.jwt_secret:
        raise Unauthorized("the consumer API is disabled: auth.jwt_secret is not set")
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"the token must be signed with {ALGORITHM}")
        claims = jwt.decode(
            token,
            auth.jwt_secret,
            algorithms=[ALGORITHM],
            issuer=auth.jwt_issuer or None,
            options={
                "require": list(REQUIRED_CLAIMS),
                # Time claims are checked below, with the leeway for the future only.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token has no `{exc.claim}` claim") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized("the token's `iss` is not this environment's issuer") from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthorized("the token's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("the token is not a valid JWT") from exc
    _check_times(claims, time.time() if now is None else now)
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > MAX_CONSUMER_KEY:
        raise Unauthorized("the token's `sub` must be a consumerKey")
    return Consumer(sub, claims)


def _number(claims: dict[str, Any], name: str) -> float:
    """A time claim as seconds: a finite whole number (NaN would pass every comparison)."""
    value = claims[name]
    whole = (isinstance(value, int) and abs(value) <= _MAX_SECONDS) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    if isinstance(value, bool) or not whole:
        raise Unauthorized(f"the token's `{name}` must be a whole number of seconds")
    return float(value)


def _check_times(claims: dict[str, Any], now: float) -> None:
    iat, exp = _number(claims, "iat"), _number(claims, "exp")
    if exp <= now:
        raise Unauthorized("the token has expired")
    if iat > now + LEEWAY:
        raise Unauthorized("the token is issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + LEEWAY:
        raise Unauthorized("the token is not valid yet")
    if exp <= iat or exp - iat > MAX_LIFETIME:
        raise Unauthorized("the token must expire within 24 h of `iat`")


class VerifiedTokens:
    """Remembers tokens already verified, until they expire: a sender pushes many events with
    one token, and checking an HS512 signature on each is a fifth of the request's cost.
    Keyed by the signing settings too, so a reload with a new secret verifies afresh. One per
    application, shared by the router and the fast lane."""

    def __init__(self, size: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._known: dict[tuple[str, str, str | None], tuple[Consumer, float]] = {}

    def verify(self, token: str, auth: AuthSettings) -> Consumer:
        key = (token, auth.jwt_secret or "", auth.jwt_issuer)
        found = self._known.get(key)
        now = self.clock()
        if found is not None and now < found[1]:
            return found[0]
        consumer = verify_consumer_token(token, auth, now)
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key] = (consumer, _number(consumer.claims, "exp"))
        return consumer


def verify_admin_token(token: str, auth: AuthSettings) -> None:
    """Unauthorized unless `token` is the environment's admin token (constant-time compare)."""
    if not auth.admin_token:
        raise Unauthorized("the admin API is disabled: auth.admin_token is not set")
    if not hmac.compare_digest(token.encode(), auth.admin_token.encode()):
        raise Unauthorized("invalid admin token")


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    if not header:
        raise Unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected Authorization: Bearer <token>")
    return token.strip()
