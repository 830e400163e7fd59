"""Verifying incoming webhook deliveries (`webhook.verify`), one scheme per publisher.

Each named scheme follows its publisher's own verifier: which header carries what, which bytes
are signed, how the secret becomes the key, several signatures in one header (key rotation) and
the replay window. Everything here is pure — no clock, no I/O — so the server passes `now` and
the raw body, and a bad delivery is a `Verified(ok=False, reason=...)`, never an exception.

A `reason` names what failed (a header, a window, a mismatch) for the logs; it never repeats the
secret, the expected signature, or values the sender put in headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rollout_yaml import json_codec
from rollout_yaml.config.models.connector import Verify

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITHUB_DELIVERY = "X-GitHub-Delivery"
SLACK_SIGNATURE = "X-Slack-Signature"
SLACK_TIMESTAMP = "X-Slack-Request-Timestamp"
STRIPE_SIGNATURE = "Stripe-Signature"
STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"
SVIX_ID = "svix-id"
SVIX_TIMESTAMP = "svix-timestamp"
SVIX_SIGNATURE = "svix-signature"
WHSEC_PREFIX = "whsec_"

# A Unix timestamp in seconds has 10 digits until 2286; more is garbage (and could overflow
# the float arithmetic of the window check).
_MAX_TIMESTAMP_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Verified:
    """The outcome of checking one delivery.

    `delivery_id` is the publisher's own id for the delivery (GitHub's `X-GitHub-Delivery`,
    Standard Webhooks' `webhook-id`) when the scheme has one, so it can serve as the default
    dedupe key; it is filled in even when verification fails, to correlate logs.
    """

    ok: bool
    reason: str | None = None
    delivery_id: str | None = None


class _Reject(Exception):
    """Internal: a check failed; carries the log-safe reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_Headers = Mapping[str, str]
_Check = Callable[[Verify, bytes, _Headers, bytes, float], None]


def verify(
    verify: Verify,
    secret: str | Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> Verified:
    """Check a delivery against `verify` with the already-rendered secret(s).

    `secret` is passed separately because `verify.secret` is a template
    (`{{ app.webhook_secret }}`); several secrets (rotation, as GitHub's own
    `verifyWithFallback`) verify a delivery signed by any of them, and empty ones are left out.
    `body` must be the raw bytes as received, since every scheme signs those exact bytes and
    re-serialised JSON would not match.
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    delivery_id = _delivery_id(verify.scheme, lowered)
    secrets = [s for s in ([secret] if isinstance(secret, str) else secret) if s]
    if not secrets:
        # An empty key would make any sender who guesses "no secret" pass.
        return Verified(False, "the webhook secret is empty", delivery_id)
    reason = None
    for candidate in secrets:
        try:
            key = candidate.encode("utf-8")
        except UnicodeEncodeError:
            reason = "the webhook secret is not valid text"
            continue
        try:
            _CHECKS[verify.scheme](verify, key, lowered, body, now)
        except _Reject as rejected:
            reason = reason or rejected.reason  # the first secret's reason is the one logged
            continue
        return Verified(True, None, delivery_id)
    return Verified(False, reason, delivery_id)


def slack_challenge(body: bytes) -> str | None:
    """The `challenge` of Slack's `url_verification` request, which the endpoint must echo
    back to have its URL accepted; None for any other body.

    Slack signs this request like any other, so call it only after `verify` passed.
    """
    try:
        data = json_codec.loads(body)
    except json_codec.JSONRejected:
        return None
    if not isinstance(data, dict) or data.get("type") != "url_verification":
        return None
    challenge = data.get("challenge")
    return challenge if isinstance(challenge, str) else None


def _delivery_id(scheme: str, headers: _Headers) -> str | None:
    if scheme == "standard-webhooks":
        return headers.get(SVIX_ID) or headers.get(STANDARD_ID) or None
    if scheme == "github":
        return headers.get(GITHUB_DELIVERY.lower()) or None
    return None


def _header(headers: _Headers, name: str) -> str:
    """The header's value; a missing or blank one is rejected by name."""
    value = headers.get(name.lower())
    if not value:
        raise _Reject(f"missing header {name}")
    return value


def _timestamp(raw: str, name: str, now: float, tolerance: float) -> int:
    """Parse a Unix-seconds header and reject it outside `now ± tolerance`, so a captured
    delivery cannot be replayed later (nor a pre-signed one sent early)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > _MAX_TIMESTAMP_DIGITS:
        raise _Reject(f"header {name} is not a Unix timestamp in seconds")
    value = int(raw)
    age = now - value
    if age > tolerance:
        raise _Reject(f"header {name} is {age:.0f}s old, beyond the tolerance of {tolerance:g}s")
    if -age > tolerance:
        raise _Reject(
            f"header {name} is {-age:.0f}s in the future, beyond the tolerance of {tolerance:g}s"
        )
    return value


def _mac(key: bytes, content: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, content, getattr(hashlib, algorithm)).digest()


def _from_hex(text: str) -> bytes | None:
    """Decoded hex, or None; comparing bytes makes upper/lower-case hex equivalent."""
    if not text.isascii():
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _from_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_hmac(verify: Verify, key: bytes, headers: _Headers, body: bytes, now: float) -> None:
    """Generic HMAC of the raw body (Shopify, and many others): no timestamp, one signature."""
    if not verify.header:
        raise _Reject("verify scheme hmac has no `header:` to read the signature from")
    value = _header(headers, verify.header)
    if not value.startswith(verify.prefix):
        raise _Reject(f"header {verify.header} does not start with {verify.prefix!r}")
    encoded = value[len(verify.prefix) :].strip()
    given = _from_hex(encoded) if verify.encoding == "hex" else _from_base64(encoded)
    if given is None:
        raise _Reject(f"header {verify.header} is not valid {verify.encoding}")
    if not hmac.compare_digest(_mac(key, body, verify.algorithm), given):
        raise _Reject(f"signature mismatch in header {verify.header}")


def _check_github(verify: Verify, key: bytes, headers: _Headers, body: bytes, now: float) -> None:
    """GitHub: `sha256=<hex>` of the raw body; GitHub sends no timestamp to check."""
    value = _header(headers, GITHUB_SIGNATURE)
    if not value.startswith("sha256="):
        raise _Reject(f"header {GITHUB_SIGNATURE} does not start with 'sha256='")
    given = _from_hex(value[len("sha256=") :])
    if given is None:
        raise _Reject(f"header {GITHUB_SIGNATURE} is not valid hex")
    if not hmac.compare_digest(_mac(key, body), given):
        raise _Reject(f"signature mismatch in header {GITHUB_SIGNATURE}")


def _check_slack(verify: Verify, key: bytes, headers: _Headers, body: bytes, now: float) -> None:
    """Slack: `v0=` + hex HMAC of `v0:{timestamp}:{body}`, timestamp as sent."""
    raw_time = _header(headers, SLACK_TIMESTAMP)
    value = _header(headers, SLACK_SIGNATURE)
    _timestamp(raw_time, SLACK_TIMESTAMP, now, verify.tolerance)
    if not value.startswith("v0="):
        raise _Reject(f"header {SLACK_SIGNATURE} does not start with 'v0='")
    given = _from_hex(value[len("v0=") :])
    if given is None:
        raise _Reject(f"header {SLACK_SIGNATURE} is not valid hex")
    expected = _mac(key, b"v0:" + raw_time.encode("ascii") + b":" + body)
    if not hmac.compare_digest(expected, given):
        raise _Reject(f"signature mismatch in header {SLACK_SIGNATURE}")


def _check_stripe(verify: Verify, key: bytes, headers: _Headers, body: bytes, now: float) -> None:
    """Stripe: `t=<unix>,v1=<hex>[,v1=...]` over `{t}.{body}`, keyed with the whole `whsec_…`
    string as bytes (Stripe does not decode it); any v1 may match, v0 (test-mode legacy) and
    unknown entries are ignored as stripe-python does."""
    value = _header(headers, STRIPE_SIGNATURE)
    stamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, part = item.strip().partition("=")
        if not sep:
            raise _Reject(f"header {STRIPE_SIGNATURE} is malformed (an entry has no '=')")
        if name == "t":
            stamps.append(part)
        elif name == "v1":
            signatures.append(part)
    if len(stamps) != 1:
        raise _Reject(f"header {STRIPE_SIGNATURE} needs exactly one t= timestamp")
    if not signatures:
        raise _Reject(f"header {STRIPE_SIGNATURE} has no v1= signature")
    when = _timestamp(stamps[0], f"{STRIPE_SIGNATURE} t=", now, verify.tolerance)
    expected = _mac(key, str(when).encode("ascii") + b"." + body)
    if not _any_match(expected, (_from_hex(sig) for sig in signatures)):
        raise _Reject(f"no v1 signature in header {STRIPE_SIGNATURE} matches")


def _standard_header(headers: _Headers, standard: str, svix: str) -> tuple[str, str]:
    """The value of a Standard Webhooks header and the name it came under: Svix's own name
    (`svix-id`, …) first, as `svix.Webhook.verify` reads them, else the standard one."""
    if headers.get(svix):
        return headers[svix], svix
    return _header(headers, standard), standard


def _check_standard(verify: Verify, key: bytes, headers: _Headers, body: bytes, now: float) -> None:
    """Standard Webhooks (and Svix, under its own header names): base64 HMAC of
    `{id}.{timestamp}.{body}` in space-separated `v1,<base64>` entries; the key is the
    base64-decoded part after `whsec_`, padded first when it was given without `=`."""
    msg_id, _ = _standard_header(headers, STANDARD_ID, SVIX_ID)
    raw_time, time_name = _standard_header(headers, STANDARD_TIMESTAMP, SVIX_TIMESTAMP)
    value, signature_name = _standard_header(headers, STANDARD_SIGNATURE, SVIX_SIGNATURE)
    when = _timestamp(raw_time, time_name, now, verify.tolerance)
    text = key.decode("utf-8")
    if text.startswith(WHSEC_PREFIX):
        text = text[len(WHSEC_PREFIX) :]
    secret_key = _from_base64(text + "=" * (-len(text) % 4))
    if not secret_key:
        raise _Reject("the webhook secret is not base64 (after any whsec_ prefix)")
    signatures: list[bytes | None] = []
    for entry in value.split():
        version, sep, encoded = entry.partition(",")
        if sep and version == "v1":
            signatures.append(_from_base64(encoded))
    if not signatures:
        raise _Reject(f"header {signature_name} has no v1 signature")
    content = f"{msg_id}.{when}.".encode("utf-8", "surrogatepass") + body
    if not _any_match(_mac(secret_key, content), signatures):
        raise _Reject(f"no v1 signature in header {signature_name} matches")


def _any_match(expected: bytes, candidates: Iterable[bytes | None]) -> bool:
    """True when any candidate equals `expected`; every candidate is compared in constant
    time, and undecodable ones simply do not match."""
    matched = False
    for candidate in candidates:
        if candidate is not None and hmac.compare_digest(expected, candidate):
            matched = True
    return matched


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value Standard Webhooks receivers check: `v1,` and the base64
    HMAC-SHA256, under the decoded `whsec_` key, of `{msg_id}.{timestamp}.{body}`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(_mac(key, content)).decode("ascii")


_CHECKS: dict[str, _Check] = {
    "hmac": _check_hmac,
    "github": _check_github,
    "slack": _check_slack,
    "stripe": _check_stripe,
    "standard-webhooks": _check_standard,
}

__all__ = ["Verified", "slack_challenge", "standard_signature", "verify"]
