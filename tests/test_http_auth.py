"""Auth flows (http/auth.py): each kind signs a request, signing again replaces what it added,
a next-page URL's own parameters are kept, and only OAuth2 renews after a 401 — once per flow.
The transport is a plain function here: the flow never touches the network itself."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_http_request import compile_app, context

from rollout_yaml.expr.compiled import CompiledApp
from rollout_yaml.http.auth import auth_flow
from rollout_yaml.http.client import HttpAnswer
from rollout_yaml.http.request import PreparedRequest, build_request

CONNECTOR = """\
app: {key}
name: Auth {key}
version: 1.0.0
base_url: https://api.example.com
auth:
{auth}
actions:
  get:
    name: Get
    request: {{ path: /things, query: {{ limit: 5 }} }}
"""

AUTHS = {
    "apikey": """\
  type: api_key
  fields: { key: { type: string, secret: true } }
  headers: { X-Api-Key: "{{ credential.key }}" }
  query: { api_key: "{{ credential.key }}" }""",
    "bearer": "  type: bearer",
    "basic": "  type: basic",
    "oauth": """\
  type: oauth2
  authorize_url: https://auth.example.com/authorize
  token_url: https://auth.example.com/token""",
    "open": "  type: none",
}


def app_of(tmp_path: Path, key: str) -> CompiledApp:
    return compile_app(tmp_path, key, CONNECTOR.format(key=key, auth=AUTHS[key]))


def request_of(app: CompiledApp, ctx: dict[str, Any]) -> PreparedRequest:
    return build_request(app, app.actions["get"].request, ctx)


def answer(status: int) -> HttpAnswer:
    return HttpAnswer(status, httpx.Headers({"content-type": "application/json"}), b"{}", 1.0)


@pytest.mark.parametrize(
    ("key", "credential", "header"),
    [
        ("bearer", {"token": "t0k"}, "Bearer t0k"),
        ("oauth", {"access_token": "at-1"}, "Bearer at-1"),
        ("basic", {"username": "ada", "password": "pw+/="}, "Basic YWRhOnB3Ky89"),
        ("apikey", {"key": "k3y"}, None),
        ("open", {}, None),
    ],
)
def test_each_kind_signs_a_built_request(
    tmp_path: Path, key: str, credential: dict[str, Any], header: str | None
) -> None:
    app = app_of(tmp_path, key)
    ctx = context(credential=credential)
    unsigned = request_of(app, ctx)
    assert "Authorization" not in unsigned.headers  # building never applies the credential
    signed = auth_flow(app, ctx).sign(unsigned)
    assert signed.headers.get("Authorization") == header
    if key == "apikey":
        assert signed.headers["X-Api-Key"] == "k3y"
        assert signed.query == [("limit", "5"), ("api_key", "k3y")]


def test_signing_again_replaces_the_earlier_signature(tmp_path: Path) -> None:
    app = app_of(tmp_path, "apikey")
    first = auth_flow(app, context(credential={"key": "old"})).sign(
        request_of(app, context(credential={"key": "old"}))
    )
    again = auth_flow(app, context(credential={"key": "new"})).sign(first)
    assert again.query == [("limit", "5"), ("api_key", "new")]
    assert again.headers["X-Api-Key"] == "new"


def test_a_parameter_the_url_carries_is_left_as_the_app_wrote_it(tmp_path: Path) -> None:
    """Shopify-style next URLs carry every parameter: the key is not added a second time."""
    app = app_of(tmp_path, "apikey")
    ctx = context(credential={"key": "k3y"})
    following = PreparedRequest(
        "GET", "https://api.example.com/things?page_info=x&api_key=k3y", "/things", [], {}
    )
    signed = auth_flow(app, ctx).sign(following)
    assert signed.full_url() == "https://api.example.com/things?page_info=x&api_key=k3y"


def test_basic_auth_secrets_include_the_encoded_token(tmp_path: Path) -> None:
    app = app_of(tmp_path, "basic")
    flow = auth_flow(app, context(credential={"username": "ada", "password": "pw+/="}))
    token = base64.b64encode(b"ada:pw+/=").decode()
    assert flow.secrets() == {"pw+/=", token}


class Renewals:
    def __init__(self, fresh: dict[str, Any] | None) -> None:
        self.fresh = fresh
        self.asked: list[dict[str, Any]] = []

    async def __call__(self, used: Any) -> dict[str, Any] | None:
        self.asked.append(dict(used))
        return self.fresh


async def _send_with(flow: Any, app: CompiledApp, statuses: list[int]) -> list[PreparedRequest]:
    sent: list[PreparedRequest] = []

    async def transport(request: PreparedRequest) -> HttpAnswer:
        sent.append(request)
        return answer(statuses[len(sent) - 1])

    await flow.send(request_of(app, flow.context), transport)
    return sent


def test_oauth2_renews_once_after_a_401_and_sends_again_signed_anew(tmp_path: Path) -> None:
    app = app_of(tmp_path, "oauth")
    renew = Renewals({"access_token": "at-2"})
    flow = auth_flow(app, context(credential={"access_token": "at-1"}), renew)
    sent = asyncio.run(_send_with(flow, app, [401, 200]))
    assert [r.headers["Authorization"] for r in sent] == ["Bearer at-1", "Bearer at-2"]
    assert renew.asked == [{"access_token": "at-1"}]
    assert flow.credential == {"access_token": "at-2"}
    # once per flow: a second 401 on the same flow is the answer
    sent = asyncio.run(_send_with(flow, app, [401]))
    assert len(sent) == 1 and len(renew.asked) == 1


@pytest.mark.parametrize("key", ["bearer", "apikey", "basic"])
def test_kinds_that_cannot_renew_never_ask(tmp_path: Path, key: str) -> None:
    app = app_of(tmp_path, key)
    renew = Renewals({"token": "x"})
    flow = auth_flow(app, context(credential={"token": "t", "key": "k"}), renew)
    assert len(asyncio.run(_send_with(flow, app, [401]))) == 1
    assert renew.asked == []


def test_nothing_to_renew_keeps_the_401(tmp_path: Path) -> None:
    app = app_of(tmp_path, "oauth")
    renew = Renewals(None)
    flow = auth_flow(app, context(credential={"access_token": "at-1"}), renew)
    assert len(asyncio.run(_send_with(flow, app, [401]))) == 1
    assert len(renew.asked) == 1
