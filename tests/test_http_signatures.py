"""Webhook signature verification: published vectors, tampering, replay windows, key rotation,
and the secret-handling differences between Stripe and Standard Webhooks.

The published vectors live in `shared/vectors/webhook-signatures.json`; they are also copied here
so the tests run without `shared/`, and when the file is present the two must agree.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rollout_yaml.config.models.connector import Verify
from rollout_yaml.http.signatures import Verified, slack_challenge, verify

VECTORS_FILE = Path(__file__).parents[1].parent / "shared" / "vectors" / "webhook-signatures.json"

# Copied from shared/vectors/webhook-signatures.json (the fields these tests use).
LITERAL_VECTORS: dict[str, dict[str, str]] = {
    "standard-webhooks": {
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "body": '{"test": 2432232314}',
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    },
    "github": {
        "secret": "It's a Secret to Everybody",
        "body": "Hello, World!",
        "X-Hub-Signature-256": (
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        ),
    },
    "slack": {
        "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
        "X-Slack-Request-Timestamp": "1531420618",
        "body": (
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
            "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
            "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
            "%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        ),
        "X-Slack-Signature": (
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        ),
    },
}


def load_vectors() -> dict[str, dict[str, str]]:
    """The shared file when present (checked against the literals), else the literals."""
    if not VECTORS_FILE.is_file():
        return LITERAL_VECTORS
    published = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
    for scheme, fields in LITERAL_VECTORS.items():
        assert {key: published[scheme][key] for key in fields} == fields, scheme
    return {
        scheme: {key: published[scheme][key] for key in LITERAL_VECTORS[scheme]}
        for scheme in LITERAL_VECTORS
    }


V = load_vectors()
SW, GH, SL = V["standard-webhooks"], V["github"], V["slack"]
SW_TIME = int(SW["webhook-timestamp"])
SL_TIME = int(SL["X-Slack-Request-Timestamp"])

TEMPLATE = "{{ app.webhook_secret }}"
STRIPE_SECRET = "whsec_" + base64.b64encode(b"stripe-signing-key-bytes-0123456").decode()
STRIPE_TIME = 1_700_000_000
HMAC_SECRET = "shpss_hmac-shared-secret"


def cfg(scheme: str, **fields: Any) -> Verify:
    """A `verify:` block as a connector file would give it (the secret is still a template)."""
    return Verify.model_validate({"scheme": scheme, "secret": TEMPLATE, **fields})


def stripe_v1(secret: str | bytes, t: int, body: bytes) -> str:
    """What stripe-python's test helper computes: hex HMAC-SHA256 of `{t}.{body}`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def standard_v1(key: bytes, msg_id: str, t: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclasses.dataclass
class Delivery:
    verify: Verify
    secret: str
    headers: dict[str, str]
    body: bytes
    now: float

    def check(self, **changes: Any) -> Verified:
        d = dataclasses.replace(self, **changes)
        return verify(d.verify, d.secret, d.headers, d.body, d.now)


def valid(scheme: str) -> Delivery:
    """One genuine delivery per scheme (published vectors where they exist)."""
    if scheme == "github":
        return Delivery(
            cfg("github"),
            GH["secret"],
            {
                "X-Hub-Signature-256": GH["X-Hub-Signature-256"],
                "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            },
            GH["body"].encode(),
            0.0,
        )
    if scheme == "slack":
        return Delivery(
            cfg("slack"),
            SL["signing_secret"],
            {
                "X-Slack-Request-Timestamp": SL["X-Slack-Request-Timestamp"],
                "X-Slack-Signature": SL["X-Slack-Signature"],
            },
            SL["body"].encode(),
            float(SL_TIME),
        )
    if scheme == "standard-webhooks":
        return Delivery(
            cfg("standard-webhooks"),
            SW["secret"],
            {
                "webhook-id": SW["webhook-id"],
                "webhook-timestamp": SW["webhook-timestamp"],
                "webhook-signature": SW["webhook-signature"],
            },
            SW["body"].encode(),
            float(SW_TIME),
        )
    if scheme == "stripe":
        body = b'{"id": "evt_1", "type": "checkout.session.completed"}'
        header = f"t={STRIPE_TIME},v1={stripe_v1(STRIPE_SECRET, STRIPE_TIME, body)}"
        return Delivery(
            cfg("stripe"), STRIPE_SECRET, {"Stripe-Signature": header}, body, STRIPE_TIME
        )
    assert scheme == "hmac"
    body = b'{"id": 820982911946154508, "total_price": "10.00"}'
    sig = base64.b64encode(hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return Delivery(
        cfg("hmac", header="X-Shopify-Hmac-Sha256", encoding="base64"),
        HMAC_SECRET,
        {"X-Shopify-Hmac-Sha256": sig},
        body,
        0.0,
    )


SCHEMES = ["hmac", "github", "slack", "stripe", "standard-webhooks"]
TIMESTAMPED = ["slack", "stripe", "standard-webhooks"]


# --- published vectors --------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["github", "slack", "standard-webhooks"])
def test_published_vector_passes_at_its_own_timestamp(scheme: str) -> None:
    result = valid(scheme).check()
    assert result.ok, result.reason
    assert result.reason is None


def test_vectors_are_the_published_ones() -> None:
    # Recompute each vector independently, so a typo in the literals cannot pass silently.
    github = hmac.new(GH["secret"].encode(), GH["body"].encode(), hashlib.sha256).hexdigest()
    assert GH["X-Hub-Signature-256"] == "sha256=" + github
    slack = f"v0:{SL['X-Slack-Request-Timestamp']}:{SL['body']}".encode()
    mac = hmac.new(SL["signing_secret"].encode(), slack, hashlib.sha256).hexdigest()
    assert SL["X-Slack-Signature"] == "v0=" + mac
    key = base64.b64decode(SW["secret"].removeprefix("whsec_"))
    assert SW["webhook-signature"] == standard_v1(
        key, SW["webhook-id"], SW_TIME, SW["body"].encode()
    )


def test_delivery_id_comes_from_the_schemes_own_header() -> None:
    assert valid("github").check().delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert valid("standard-webhooks").check().delivery_id == SW["webhook-id"]
    # Stripe's event id is in the body; Slack and plain hmac have no delivery header.
    assert valid("stripe").check().delivery_id is None
    assert valid("slack").check().delivery_id is None
    assert valid("hmac").check().delivery_id is None


def test_delivery_id_is_kept_when_verification_fails() -> None:
    result = valid("github").check(body=b"Hello, World?")
    assert not result.ok
    assert result.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"


# --- tampering and wrong secrets ----------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_one_flipped_byte_in_the_body_fails(scheme: str) -> None:
    good = valid(scheme)
    body = bytearray(good.body)
    body[len(body) // 2] ^= 0x01
    result = good.check(body=bytes(body))
    assert not result.ok
    assert result.reason and "signature" in result.reason


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_wrong_secret_fails(scheme: str) -> None:
    good = valid(scheme)
    wrong = "whsec_" + base64.b64encode(b"another-key-entirely-0123456789!").decode()
    result = good.check(secret=wrong)
    assert not result.ok
    assert result.reason


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_empty_secret_never_passes(scheme: str) -> None:
    result = valid(scheme).check(secret="")
    assert not result.ok
    assert result.reason == "the webhook secret is empty"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_header_names_are_case_insensitive(scheme: str) -> None:
    good = valid(scheme)
    assert good.check(headers={k.upper(): v for k, v in good.headers.items()}).ok
    assert good.check(headers={k.lower(): v for k, v in good.headers.items()}).ok


# --- replay window --------------------------------------------------------------------------


def _sent_at(scheme: str) -> int:
    return {"slack": SL_TIME, "stripe": STRIPE_TIME, "standard-webhooks": SW_TIME}[scheme]


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_a_delivery_older_than_the_tolerance_fails(scheme: str) -> None:
    good = valid(scheme)
    assert good.check(now=_sent_at(scheme) + 300).ok  # exactly at the edge still passes
    result = good.check(now=_sent_at(scheme) + 301)
    assert not result.ok
    assert result.reason and "old" in result.reason and "300s" in result.reason


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_a_future_dated_delivery_beyond_the_tolerance_fails(scheme: str) -> None:
    good = valid(scheme)
    assert good.check(now=_sent_at(scheme) - 300).ok
    result = good.check(now=_sent_at(scheme) - 301)
    assert not result.ok
    assert result.reason and "future" in result.reason


def test_tolerance_is_read_from_the_verify_block() -> None:
    good = valid("slack")
    wide = cfg("slack", tolerance="10m")
    assert not good.check(now=SL_TIME + 500).ok
    assert good.check(verify=wide, now=SL_TIME + 500).ok
    assert not good.check(verify=wide, now=SL_TIME + 601).ok


@pytest.mark.parametrize("scheme", ["hmac", "github"])
def test_schemes_without_a_timestamp_ignore_the_clock(scheme: str) -> None:
    assert valid(scheme).check(now=4_000_000_000.0).ok


# --- key rotation: several signatures in one header ---------------------------------------


def test_stripe_passes_when_only_the_second_v1_matches() -> None:
    good = valid("stripe")
    right = stripe_v1(STRIPE_SECRET, STRIPE_TIME, good.body)
    old = stripe_v1("whsec_retired", STRIPE_TIME, good.body)
    header = f"t={STRIPE_TIME},v1={old},v1={right}"
    assert good.check(headers={"Stripe-Signature": header}).ok
    # v0 entries (Stripe's legacy test-mode scheme) are ignored, even alongside.
    header = f"t={STRIPE_TIME},v1={right},v0={old}"
    assert good.check(headers={"Stripe-Signature": header}).ok


def test_stripe_ignores_a_matching_signature_under_v0() -> None:
    good = valid("stripe")
    right = stripe_v1(STRIPE_SECRET, STRIPE_TIME, good.body)
    result = good.check(headers={"Stripe-Signature": f"t={STRIPE_TIME},v0={right}"})
    assert not result.ok
    assert result.reason and "v1" in result.reason
    result = good.check(headers={"Stripe-Signature": f"t={STRIPE_TIME},v1={'0' * 64},v0={right}"})
    assert not result.ok


def test_standard_webhooks_passes_when_only_the_second_signature_matches() -> None:
    good = valid("standard-webhooks")
    key = base64.b64decode(SW["secret"].removeprefix("whsec_"))
    stale = standard_v1(b"retired-key", SW["webhook-id"], SW_TIME, good.body)
    fresh = standard_v1(key, SW["webhook-id"], SW_TIME, good.body)
    headers = {**good.headers, "webhook-signature": f"{stale} {fresh}"}
    assert good.check(headers=headers).ok
    # Only v1 entries count: the right signature under another version label does not pass.
    headers["webhook-signature"] = f"{stale} v2,{fresh.removeprefix('v1,')}"
    assert not good.check(headers=headers).ok


# --- how each publisher reads the secret --------------------------------------------------


def test_stripe_keys_with_the_whole_whsec_string_not_its_decoded_bytes() -> None:
    good = valid("stripe")
    whole = stripe_v1(STRIPE_SECRET, STRIPE_TIME, good.body)
    decoded = stripe_v1(
        base64.b64decode(STRIPE_SECRET.removeprefix("whsec_")), STRIPE_TIME, good.body
    )
    assert good.check(headers={"Stripe-Signature": f"t={STRIPE_TIME},v1={whole}"}).ok
    result = good.check(headers={"Stripe-Signature": f"t={STRIPE_TIME},v1={decoded}"})
    assert not result.ok


def test_standard_webhooks_keys_with_the_decoded_bytes_not_the_whsec_string() -> None:
    good = valid("standard-webhooks")
    msg_id, body = SW["webhook-id"], good.body
    decoded = standard_v1(base64.b64decode(SW["secret"][6:]), msg_id, SW_TIME, body)
    whole = standard_v1(SW["secret"].encode(), msg_id, SW_TIME, body)
    assert good.check(headers={**good.headers, "webhook-signature": decoded}).ok
    assert not good.check(headers={**good.headers, "webhook-signature": whole}).ok


def test_standard_webhooks_accepts_a_secret_without_the_whsec_prefix() -> None:
    assert valid("standard-webhooks").check(secret=SW["secret"].removeprefix("whsec_")).ok


def test_standard_webhooks_rejects_a_secret_that_is_not_base64() -> None:
    result = valid("standard-webhooks").check(secret="whsec_not base64!")
    assert not result.ok
    assert result.reason and "base64" in result.reason


# --- generic hmac -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
@pytest.mark.parametrize("prefix", ["", "sha1=", "sha512="])
def test_hmac_with_each_algorithm_encoding_and_prefix(
    algorithm: str, encoding: str, prefix: str
) -> None:
    body = b'{"event": "order.paid", "id": 42}'
    digest = hmac.new(HMAC_SECRET.encode(), body, algorithm).digest()
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    v = cfg("hmac", header="X-Signature", algorithm=algorithm, encoding=encoding, prefix=prefix)
    ok = verify(v, HMAC_SECRET, {"x-signature": prefix + encoded}, body, 0.0)
    assert ok.ok, ok.reason
    assert not verify(v, HMAC_SECRET, {"x-signature": prefix + encoded}, body + b" ", 0.0).ok
    # The same digest under another algorithm is not accepted.
    other = "sha512" if algorithm != "sha512" else "sha1"
    v_other = cfg("hmac", header="X-Signature", algorithm=other, encoding=encoding, prefix=prefix)
    assert not verify(v_other, HMAC_SECRET, {"x-signature": prefix + encoded}, body, 0.0).ok


def test_hmac_hex_is_compared_case_insensitively() -> None:
    body = b"payload"
    digest = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest().upper()
    v = cfg("hmac", header="X-Signature")
    assert verify(v, HMAC_SECRET, {"X-Signature": digest}, body, 0.0).ok


def test_hmac_without_the_configured_prefix_fails_and_says_so() -> None:
    body = b"payload"
    digest = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    v = cfg("hmac", header="X-Signature", prefix="sha256=")
    result = verify(v, HMAC_SECRET, {"X-Signature": digest}, body, 0.0)
    assert not result.ok
    assert result.reason == "header X-Signature does not start with 'sha256='"


# --- missing and malformed headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "header"),
    [
        ("hmac", "X-Shopify-Hmac-Sha256"),
        ("github", "X-Hub-Signature-256"),
        ("slack", "X-Slack-Signature"),
        ("slack", "X-Slack-Request-Timestamp"),
        ("stripe", "Stripe-Signature"),
        ("standard-webhooks", "webhook-id"),
        ("standard-webhooks", "webhook-timestamp"),
        ("standard-webhooks", "webhook-signature"),
    ],
)
def test_a_missing_header_fails_with_a_reason_naming_it(scheme: str, header: str) -> None:
    good = valid(scheme)
    headers = {k: v for k, v in good.headers.items() if k.lower() != header.lower()}
    result = good.check(headers=headers)
    assert not result.ok
    assert result.reason == f"missing header {header}"
    assert good.check(headers={**headers, header: "  "}).reason == f"missing header {header}"


MALFORMED: list[tuple[str, str, str]] = [
    ("hmac", "X-Shopify-Hmac-Sha256", "not base64 at all!"),
    ("hmac", "X-Shopify-Hmac-Sha256", "ü" * 44),
    ("github", "X-Hub-Signature-256", "757107ea0eb2509fc211221cce984b8a"),
    ("github", "X-Hub-Signature-256", "sha256=zz"),
    ("github", "X-Hub-Signature-256", "sha256=ÿ757107"),
    ("github", "X-Hub-Signature-256", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"),
    (
        "slack",
        "X-Slack-Signature",
        "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    ),
    ("slack", "X-Slack-Signature", "v0=nothex"),
    ("slack", "X-Slack-Request-Timestamp", "1531420618.5"),
    ("slack", "X-Slack-Request-Timestamp", "-1531420618"),
    ("slack", "X-Slack-Request-Timestamp", "9" * 400),
    ("slack", "X-Slack-Request-Timestamp", "١٥٣١٤٢٠٦١٨"),
    ("stripe", "Stripe-Signature", "garbage"),
    ("stripe", "Stripe-Signature", "t=abc,v1=00"),
    ("stripe", "Stripe-Signature", "v1=00"),
    ("stripe", "Stripe-Signature", f"t={STRIPE_TIME}"),
    ("stripe", "Stripe-Signature", f"t={STRIPE_TIME},t={STRIPE_TIME},v1=00"),
    ("stripe", "Stripe-Signature", f"t={STRIPE_TIME},v1=ü"),
    ("standard-webhooks", "webhook-signature", "v1"),
    ("standard-webhooks", "webhook-signature", "v1,@@@"),
    ("standard-webhooks", "webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    ("standard-webhooks", "webhook-timestamp", "2021-02-25T15:02:10Z"),
]


@pytest.mark.parametrize(("scheme", "header", "value"), MALFORMED)
def test_a_malformed_header_fails_with_a_reason_and_never_raises(
    scheme: str, header: str, value: str
) -> None:
    good = valid(scheme)
    result = good.check(headers={**good.headers, header: value})
    assert not result.ok
    assert result.reason


def test_reasons_never_contain_the_secret_or_the_expected_signature() -> None:
    failures: list[tuple[Delivery, Verified]] = []
    for scheme in SCHEMES:
        good = valid(scheme)
        failures.append((good, good.check(body=good.body + b"x")))
        failures.append((good, good.check(secret=good.secret + "x")))
        failures.append((good, good.check(headers={})))
        if scheme in TIMESTAMPED:
            failures.append((good, good.check(now=good.now + 10_000)))
            failures.append((good, good.check(now=good.now - 10_000)))
    for scheme, header, value in MALFORMED:
        good = valid(scheme)
        failures.append((good, good.check(headers={**good.headers, header: value})))
    failures.append(
        (valid("standard-webhooks"), valid("standard-webhooks").check(secret="whsec_!"))
    )
    assert len(failures) > 40
    for delivery, result in failures:
        assert not result.ok and result.reason
        assert delivery.secret not in result.reason
        # The genuine signatures (what was expected) are never echoed.
        for value in delivery.headers.values():
            for signature in re.findall(r"[0-9a-fA-F]{40,}|[A-Za-z0-9+/]{40,}=*", value):
                assert signature not in result.reason


def test_verified_is_immutable() -> None:
    result = valid("github").check()
    assert result == Verified(ok=True, reason=None, delivery_id=result.delivery_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ok = False  # type: ignore[misc]


# --- Slack url_verification -----------------------------------------------------------------


def test_slack_url_verification_challenge_is_returned() -> None:
    body = json.dumps(
        {
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    ).encode()
    assert slack_challenge(body) == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "event_callback", "challenge": "x", "event": {}}',
        b'{"type": "url_verification"}',
        b'{"type": "url_verification", "challenge": 7}',
        b'[{"type": "url_verification", "challenge": "x"}]',
        SL["body"].encode(),
        b"",
        b"\xff\xfe\x00not json",
        b"[" * 100_000,
    ],
)
def test_anything_else_is_not_a_slack_challenge(body: bytes) -> None:
    assert slack_challenge(body) is None
