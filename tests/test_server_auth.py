"""Consumer JWTs and the admin token: what is accepted, and that everything else is a 401
in the one error shape, whatever the endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from server_harness import ADMIN_TOKEN, JWT_SECRET, LiveEnvironment

from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.server.auth import (
    Unauthorized,
    make_token,
    verify_admin_token,
    verify_consumer_token,
)

AUTH = AuthSettings(jwt_secret=JWT_SECRET, admin_token=ADMIN_TOKEN)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None, digest: Any) -> str:
    """A token signed by hand, to build what PyJWT refuses to make (alg none, HMAC with a PEM)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims_at(now: int, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "acme", "iat": now, "exp": now + 600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs512(payload: dict[str, Any], secret: str = JWT_SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS512", headers=headers or None)


def rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


PRIVATE_PEM, PUBLIC_PEM = rsa_pair()


def refused_tokens(now: int) -> dict[str, str]:
    """Tokens that must be refused at time `now` (built per test: time passes in a suite)."""

    def claims(**changes: Any) -> dict[str, Any]:
        return claims_at(now, **changes)

    return {
        "alg none": forge({"alg": "none", "typ": "JWT"}, claims(), None, None),
        "alg none, signed anyway": forge(
            {"alg": "none"}, claims(), JWT_SECRET.encode(), hashlib.sha512
        ),
        "HS256 with the right secret": jwt.encode(claims(), JWT_SECRET, algorithm="HS256"),
        "HS384 with the right secret": jwt.encode(claims(), JWT_SECRET, algorithm="HS384"),
        "RS256": jwt.encode(claims(), PRIVATE_PEM, algorithm="RS256"),
        "HS512 keyed with a public key (RS/HS confusion)": forge(
            {"alg": "HS512", "typ": "JWT"}, claims(), PUBLIC_PEM, hashlib.sha512
        ),
        "wrong secret": hs512(claims(), "another-secret-" + "x" * 64),
        "tampered claims": (
            lambda t: ".".join(
                [t.split(".")[0], b64(json.dumps(claims(sub="globex")).encode()), t.split(".")[2]]
            )
        )(hs512(claims())),
        "expired": hs512(claims(iat=now - 700, exp=now - 100)),
        "expired by one second": hs512(claims(iat=now - 700, exp=now - 1)),
        "nbf in the future": hs512(claims(nbf=now + 300)),
        "iat in the future": hs512(claims(iat=now + 300, exp=now + 900)),
        "no sub": hs512(claims(sub=None)),
        "no iat": hs512(claims(iat=None)),
        "no exp": hs512(claims(exp=None)),
        "empty sub": hs512(claims(sub="")),
        "numeric sub": hs512(claims(sub=42)),
        "string exp": hs512(claims(exp=str(now + 600))),
        "lives more than 24 h": hs512(claims(exp=now + 24 * 3600 + 60)),
        "exp before iat": hs512(claims(iat=now, exp=now - 10)),
        "not a JWT": "not-a-token",
        "two segments": "abc.def",
    }


REFUSED = list(refused_tokens(0))


@pytest.mark.parametrize("name", REFUSED)
def test_verify_refuses(name: str) -> None:
    now = int(time.time())
    with pytest.raises(Unauthorized):
        verify_consumer_token(refused_tokens(now)[name], AUTH, now=now)


def claims(**changes: Any) -> dict[str, Any]:
    return claims_at(int(time.time()), **changes)


def test_a_valid_token_names_its_consumer() -> None:
    assert verify_consumer_token(make_token(JWT_SECRET, "acme", 3600), AUTH).key == "acme"
    assert verify_consumer_token(hs512(claims(sub="globex")), AUTH).key == "globex"


def test_leeway_is_30_seconds_for_the_future_only() -> None:
    now = int(time.time())

    def verify(**changes: Any) -> str:
        return verify_consumer_token(hs512(claims_at(now, **changes)), AUTH, now=now).key

    assert verify(iat=now + 20, exp=now + 600) == "acme"
    assert verify(nbf=now + 20) == "acme"
    for changes in ({"nbf": now + 45}, {"iat": now + 45, "exp": now + 600}):
        with pytest.raises(Unauthorized):
            verify(**changes)
    with pytest.raises(Unauthorized, match="expired"):  # no leeway for expiry
        verify(iat=now - 60, exp=now)


def test_exactly_24_hours_is_allowed() -> None:
    now = int(time.time())
    token = hs512(claims_at(now, iat=now, exp=now + 24 * 3600))
    assert verify_consumer_token(token, AUTH, now=now).key == "acme"


def test_issuer_is_checked_when_configured() -> None:
    strict = AuthSettings(jwt_secret=JWT_SECRET, jwt_issuer="https://partner.example")
    good = make_token(JWT_SECRET, "acme", 600, "https://partner.example")
    assert verify_consumer_token(good, strict).key == "acme"
    for bad in (
        make_token(JWT_SECRET, "acme", 600, "https://evil.example"),
        make_token(JWT_SECRET, "acme", 600),
    ):
        with pytest.raises(Unauthorized):
            verify_consumer_token(bad, strict)
    # Without an issuer configured, any `iss` (or none) is fine.
    assert verify_consumer_token(make_token(JWT_SECRET, "acme", 600, "x"), AUTH).key == "acme"


def test_no_secret_configured_means_no_consumer_api() -> None:
    with pytest.raises(Unauthorized, match="jwt_secret"):
        verify_consumer_token(make_token(JWT_SECRET, "acme", 600), AuthSettings())


def test_make_token_refuses_long_lifetimes() -> None:
    with pytest.raises(ValueError):
        make_token(JWT_SECRET, "acme", 25 * 3600)


def test_admin_token() -> None:
    verify_admin_token(ADMIN_TOKEN, AUTH)
    for wrong in ("", "admin", ADMIN_TOKEN + "x", ADMIN_TOKEN.upper()):
        with pytest.raises(Unauthorized):
            verify_admin_token(wrong, AUTH)
    with pytest.raises(Unauthorized, match="admin_token"):
        verify_admin_token(ADMIN_TOKEN, AuthSettings(jwt_secret=JWT_SECRET))


# -- over HTTP, against the real app ---------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path_factory.mktemp("auth")) as environment:
        yield environment


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["message"]
    assert response.headers["www-authenticate"] == "Bearer"


CONSUMER_ENDPOINTS = [
    ("GET", "/v1/runs"),
    ("GET", "/v1/apps"),
    ("GET", "/v1/automations"),
    ("GET", "/v1/credentials"),
    ("POST", "/v1/events"),
    ("GET", "/api/automations"),
    ("GET", "/api/automation-runs"),
    ("POST", "/api/trigger-push-event"),
]


@pytest.mark.parametrize("name", REFUSED)
def test_refused_tokens_get_401_over_http(live: LiveEnvironment, name: str) -> None:
    bad = refused_tokens(int(time.time()))[name]
    with live.client(None) as client:
        response = client.get("/v1/runs", headers={"Authorization": f"Bearer {bad}"})
    assert_unauthorized(response)


@pytest.mark.parametrize(("method", "path"), CONSUMER_ENDPOINTS)
def test_every_consumer_endpoint_needs_a_token(
    live: LiveEnvironment, method: str, path: str
) -> None:
    event = {"app": "partner", "trigger": "order-created", "payload": {"order_id": 1, "total": 1}}
    with live.client(None) as client:
        for headers in (
            {},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
            {"Authorization": "Bearer"},
        ):
            response = client.request(method, path, json=event, headers=headers)
            assert_unauthorized(response)
        # The admin token is not a consumer token.
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert_unauthorized(client.request(method, path, json=event, headers=admin))


def test_auth_comes_before_the_body(live: LiveEnvironment) -> None:
    """An unauthenticated caller learns nothing about body checks (no 400/413/422 first)."""
    with live.client(None) as client:
        assert_unauthorized(client.post("/v1/events", content=b"{not json"))
        assert_unauthorized(client.post("/v1/events", content=b"x" * 2_000_000))
        assert_unauthorized(client.post("/admin/v1/events", content=b"{not json"))


@pytest.mark.parametrize("path", ["/admin/v1/runs", "/admin/v1/automations", "/admin/v1/runs/x"])
def test_admin_endpoints_need_the_admin_token(live: LiveEnvironment, path: str) -> None:
    with live.client(None) as client:
        assert_unauthorized(client.get(path))
        assert_unauthorized(client.get(path, headers={"Authorization": "Bearer wrong"}))
        # A consumer JWT is not the admin token.
        consumer = {"Authorization": f"Bearer {live.token('acme')}"}
        assert_unauthorized(client.get(path, headers=consumer))
    with live.client(admin=True) as client:
        assert client.get(path).status_code in (200, 404)


def test_a_valid_token_is_served(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        assert client.get("/v1/runs").status_code == 200
