"""Token requests and answers as the OAuth 2.0 RFC writes them (no server needed here; the
end-to-end tests run them against a real authorization server)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from rollout_yaml.config.models.connector import OAuth2Auth
from rollout_yaml.http import oauth2
from rollout_yaml.http.client import HttpAnswer

CLIENT = oauth2.Client("id:with/odd chars", "s3cr&t=")


def auth(**overrides: Any) -> OAuth2Auth:
    fields = {
        "type": "oauth2",
        "authorize_url": "https://app.example/oauth/authorize",
        "token_url": "https://api.example/oauth/token",
        "scopes": ["read", "write"],
        **overrides,
    }
    return OAuth2Auth.model_validate(fields)


def answer(status: int, body: Any) -> HttpAnswer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpAnswer(status, {"content-type": "application/json"}, raw, 1.0)


def form(request: oauth2.PreparedRequest) -> dict[str, list[str]]:
    return parse_qs(request.content().decode() if request.content() else "")


def test_client_secret_in_the_body() -> None:
    request = oauth2.refresh_request(auth(), CLIENT, "rt-1")
    assert request.method == "POST" and request.url == "https://api.example/oauth/token"
    assert form(request) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-1"],
        "client_id": [CLIENT.client_id],
        "client_secret": [CLIENT.client_secret],
    }
    assert "Authorization" not in request.headers


def test_client_secret_as_basic_auth_is_form_encoded_first() -> None:
    request = oauth2.client_credentials_request(auth(token_auth="basic"), CLIENT)
    assert form(request) == {"grant_type": ["client_credentials"], "scope": ["read write"]}
    scheme, _, encoded = request.headers["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "id%3Awith%2Fodd+chars:s3cr%26t%3D"


def test_code_exchange_carries_the_redirect_uri_and_the_verifier() -> None:
    verifier, challenge = oauth2.new_verifier()
    assert len(verifier) == oauth2.VERIFIER_LENGTH and challenge != verifier
    request = oauth2.code_request(auth(), CLIENT, "c0de", "https://run.example/cb", verifier)
    sent = form(request)
    assert sent["grant_type"] == ["authorization_code"] and sent["code"] == ["c0de"]
    assert sent["redirect_uri"] == ["https://run.example/cb"]
    assert sent["code_verifier"] == [verifier]


def test_authorize_url_keeps_its_own_query_and_adds_the_flow() -> None:
    url = oauth2.authorize_url(
        auth(
            authorize_url="https://app.example/authorize?tenant=t1",
            scope_separator=",",
            authorize_params={"access_type": "offline"},
        ),
        CLIENT,
        "https://run.example/cb",
        "st",
        "ch",
    )
    base, _, query = url.partition("?")
    assert base == "https://app.example/authorize"
    assert parse_qs(query) == {
        "tenant": ["t1"],
        "response_type": ["code"],
        "client_id": [CLIENT.client_id],
        "redirect_uri": ["https://run.example/cb"],
        "state": ["st"],
        "code_challenge": ["ch"],
        "code_challenge_method": ["S256"],
        "scope": ["read,write"],
        "access_type": ["offline"],
    }


def test_a_token_answer_gets_an_absolute_expiry() -> None:
    body = {"access_token": "at", "token_type": "Bearer", "expires_in": 1800, "team": "T1"}
    token = oauth2.read_token(answer(200, body), now=1000.0)
    assert token == {
        "access_token": "at",
        "token_type": "Bearer",
        "expires_at": 2800.0,
        "team": "T1",
    }


@pytest.mark.parametrize("status", [400, 401])
def test_a_refused_grant_is_final(status: int) -> None:
    body = {"error": "invalid_grant", "error_description": "revoked"}
    with pytest.raises(oauth2.TokenRefused) as refused:
        oauth2.read_token(answer(status, body))
    assert refused.value.error == "invalid_grant" and "revoked" in str(refused.value)


def test_an_error_in_a_200_answer_is_read_as_an_error() -> None:
    with pytest.raises(oauth2.TokenRefused):
        oauth2.read_token(answer(200, {"ok": False, "error": "invalid_grant"}))
    with pytest.raises(oauth2.TokenError):
        oauth2.read_token(answer(200, {"ok": True}))  # no access_token


@pytest.mark.parametrize("status, body", [(503, {"error": "busy"}), (200, b"<html>")])
def test_an_unusable_answer_is_passing(status: int, body: Any) -> None:
    with pytest.raises(oauth2.TokenError):
        oauth2.read_token(answer(status, body))
