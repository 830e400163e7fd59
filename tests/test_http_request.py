"""Building HTTP requests from compiled connectors, and reading the App's answers.

Connectors are written as YAML into a temporary project and go through the real loader and
compiler, the way `rollout-yaml test` reads them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from rollout_yaml.config.loader import load_definitions
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiled import CompiledApp
from rollout_yaml.expr.compiler import compile_definitions
from rollout_yaml.http.auth import sign
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    app_context,
    build_request,
    join_url,
)
from rollout_yaml.http.response import error_message, interpret, parse_body

BASE = "https://api.example.com/v1"


def compile_app(tmp_path: Path, key: str, text: str) -> CompiledApp:
    (tmp_path / "connectors").mkdir(exist_ok=True)
    (tmp_path / "connectors" / f"{key}.yaml").write_text(text, encoding="utf-8")
    definitions = load_definitions(tmp_path, Layout(tmp_path))
    apps, _, diagnostics = compile_definitions(definitions)
    problems = [*definitions.diagnostics, *diagnostics]
    assert problems == [], problems
    return apps[key]


def context(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "input": {},
        "credential": {},
        "app": {"key": "x", "vars": {}, "webhook_secret": None, "base_url": None},
        "cursor": None,
        "page": None,
        "run": {"id": "run_1", "attempt": 1},
        "webhook": {"url": "http://localhost/webhooks/x"},
        "subscription": {"id": "sub_1"},
    }
    base.update(parts)
    return base


def build(app: CompiledApp, action: str, ctx: dict[str, Any]) -> PreparedRequest:
    return sign(app, build_request(app, app.actions[action].request, ctx), ctx)


# -- join_url --------------------------------------------------------------------------------

HOSTILE_PATHS = [
    "http://evil.com",
    "https://evil.com/x",
    "HTTP://evil.com",
    "//evil.com",
    "//evil.com/x",
    "..",
    "../x",
    "/a/../../x",
    "/a/..",
    "/.",
    "./x",
    "/a/./b",
    "%2e%2e",
    "/%2e%2e/x",
    "/%2E%2E/x",
    "/.%2e/x",
    "/%2e./x",
    "%252e%252e",
    "/%252e%252e/admin",
    "@evil.com",
    "/x@evil.com",
    "/users?next=http://evil.com",
    "/x#@evil.com",
    "\\\\evil.com",
    "/a\\..\\x",
    "/\\evil.com",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_join_url_refuses_paths_that_could_leave_the_host(path):
    with pytest.raises(RequestBuildError) as info:
        join_url(BASE, path)
    assert repr(path) in str(info.value)


@pytest.mark.parametrize("path", ["http:evil", "https:evil.com", "http:/evil.com"])
def test_join_url_refuses_scheme_only_urls(path):
    with pytest.raises(RequestBuildError):
        join_url(BASE, path)


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("", BASE),
        ("/", BASE + "/"),
        ("/users", BASE + "/users"),
        ("users", BASE + "/users"),
        ("/users/42", BASE + "/users/42"),
        ("/users/a%2Fb", BASE + "/users/a%2Fb"),
        ("/users/%2E%2Ehidden", BASE + "/users/%2E%2Ehidden"),
        ("/users?limit=10", BASE + "/users?limit=10"),
        ("/a.b/c.json", BASE + "/a.b/c.json"),
        ("/.well-known/openid", BASE + "/.well-known/openid"),
        ("/a/.../b", BASE + "/a/.../b"),
        ("/chat.postMessage", BASE + "/chat.postMessage"),
        ("/repos/o/r/issues/1:merge", BASE + "/repos/o/r/issues/1:merge"),
    ],
)
def test_join_url_accepts_ordinary_paths(path, url):
    assert join_url(BASE, path) == url
    assert urlsplit(join_url(BASE, path)).netloc == "api.example.com"


@pytest.mark.parametrize("base", ["https://api.example.com/", "https://api.example.com"])
def test_join_url_with_or_without_trailing_slash(base):
    assert join_url(base, "/x") == "https://api.example.com/x"
    assert join_url(base, "x") == "https://api.example.com/x"


# Encoded separators stay inside the path: the URL is sent as built (never decoded), so
# `%2F%2Fevil.com` is a path segment of the App, not a host.
ENCODED_HOST_PATHS = [
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "%2f%2f127.0.0.1",
    "/%5C%5Cevil.com",
    "%40evil.com",
    "/x%40127.0.0.1",
    "/%3A%2F%2Fevil.com",
    "%252F%252Fevil.com",
    "/%2e%2e%2f%2e%2e%2fadmin",
    "/x%2F..%2F..%2Fadmin",
    "/x%0d%0aHost:evil.com",
]


@pytest.mark.parametrize("path", ENCODED_HOST_PATHS)
def test_encoded_separators_stay_in_the_path_of_the_base_host(path):
    url = join_url(BASE, path)
    assert url == BASE + "/" + path.lstrip("/")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.username) == ("https", "api.example.com", None)


@pytest.mark.parametrize(
    "base",
    [
        "https://x@127.0.0.1#.myshopify.com",
        "https://api.example.com@169.254.169.254",
        "https://user:pw@api.example.com",
        "https://evil.com#.example.com",
    ],
)
def test_join_url_refuses_a_base_url_with_userinfo_or_fragment(base):
    with pytest.raises(RequestBuildError, match="user info"):
        join_url(base, "/x")


SHOP_CONNECTOR = """
app: shop
name: Shop
version: 1.0.0
base_url: "https://{{ credential.shop }}.myshopify.com/admin"
auth:
  type: api_key
  fields: { shop: { type: string } }
  headers: { X-Shop: "{{ credential.shop }}" }
actions:
  get: { name: Get, request: { path: /orders } }
"""


@pytest.mark.parametrize(
    ("shop", "url"),
    [
        ("acme", "https://acme.myshopify.com/admin/orders"),
        ("x@127.0.0.1#", "https://x%40127.0.0.1%23.myshopify.com/admin/orders"),
        ("evil.com/", "https://evil.com%2F.myshopify.com/admin/orders"),
        ("evil.com?", "https://evil.com%3F.myshopify.com/admin/orders"),
        ("127.0.0.1", "https://127.0.0.1.myshopify.com/admin/orders"),
    ],
)
def test_a_credential_value_in_base_url_cannot_change_the_host(tmp_path, shop, url):
    app = compile_app(tmp_path, "shop", SHOP_CONNECTOR)
    request = build(app, "get", context(credential={"shop": shop}))
    assert request.url == url
    assert urlsplit(request.url).hostname.endswith(".myshopify.com")


@pytest.mark.parametrize("base", ["ftp://x.com", "api.example.com", "https://", "/v1"])
def test_join_url_needs_an_absolute_http_base(base):
    with pytest.raises(RequestBuildError, match="base_url"):
        join_url(base, "/x")


# -- build_request ---------------------------------------------------------------------------

API_KEY_APP = """
app: acme
name: Acme
version: 1.0.0
base_url: "https://{{ credential.shop }}.acme.test/api/{{ app.vars.version }}"
auth:
  type: api_key
  fields:
    shop: { type: string }
    key: { type: string, secret: true }
  headers: { X-Api-Key: "{{ credential.key }}" }
  query: { api_key: "{{ credential.key }}" }
defaults:
  headers: { Accept: application/json, X-Default: default }
  query: { v: "2" }
  timeout: 20s
  error: "error.message"
actions:
  search:
    name: Search
    input_schema:
      type: object
      properties:
        id: { type: string }
        q: { type: [string, "null"] }
        tags: { type: array }
        since: { type: [string, "null"] }
        limit: { type: integer }
    request:
      path: "/items/{{ input.id }}"
      query:
        q: "{{ input.q }}"
        tag: "{{ input.tags }}"
        since: "{{ input.since }}"
        limit: "{{ input.limit | default(10) }}"
        flag: true
      headers: { X-Request-Id: "{{ run.id }}", X-Default: overridden }
      timeout: 5s
  charge:
    name: Charge
    request:
      method: POST
      path: /charges
      form:
        amount: "{{ input.amount }}"
        currency: usd
        capture: "{{ input.capture }}"
        metadata: { order_id: "{{ input.order_id }}", note: "{{ input.note }}" }
        "expand[]": "{{ input.expand }}"
        lines: [{ sku: "{{ input.sku }}", qty: 1 }]
  create:
    name: Create
    request:
      method: PUT
      path: "/things/{{ input.id }}/v"
      json:
        id: "{{ input.id }}"
        count: "{{ input.count }}"
        price: "{{ input.price }}"
        active: "{{ input.active }}"
        tags: "{{ input.tags }}"
        extra: "{{ input.extra }}"
        label: "#{{ input.count }}"
        text: "{{ input.text }}"
        nested: { deep: ["{{ input.count }}", "literal"] }
        optional: "{{ input.missing | default(none) }}"
  raw:
    name: Raw
    request:
      method: POST
      path: /raw
      headers: { Content-Type: text/plain }
      body: "Hello {{ input.name }}, {{ input.text }}"
"""


@pytest.fixture
def acme(tmp_path: Path) -> CompiledApp:
    return compile_app(tmp_path, "acme", API_KEY_APP)


def acme_context(**inputs: Any) -> dict[str, Any]:
    return context(
        input=inputs,
        credential={"shop": "demo", "key": "k_123"},
        app={"key": "acme", "vars": {"version": "2024-01"}, "webhook_secret": None},
    )


def test_api_key_headers_and_query_and_defaults(acme):
    request = build(acme, "search", acme_context(id="42", q="shoes", tags=[], since=None, limit=5))
    assert request.method == "GET"
    assert request.url == "https://demo.acme.test/api/2024-01/items/42"
    assert request.headers == {
        "Accept": "application/json",
        "X-Default": "overridden",
        "X-Request-Id": "run_1",
        "X-Api-Key": "k_123",
    }
    assert request.query == [
        ("v", "2"),
        ("q", "shoes"),
        ("limit", "5"),
        ("flag", "true"),
        ("api_key", "k_123"),
    ]
    assert request.timeout == 5.0
    assert request.content() is None
    assert request.full_url() == (
        "https://demo.acme.test/api/2024-01/items/42?v=2&q=shoes&limit=5&flag=true&api_key=k_123"
    )


def test_query_values_rendering_to_null_are_dropped_and_lists_repeated(acme):
    request = build(acme, "search", acme_context(id="1", q=None, since=None, tags=["a", "b", None]))
    names = [name for name, _ in request.query]
    assert "q" not in names and "since" not in names
    assert [value for name, value in request.query if name == "tag"] == ["a", "b"]
    assert ("limit", "10") in request.query  # `| default(10)`
    assert parse_qsl(urlsplit(request.full_url()).query).count(("tag", "a")) == 1


def test_missing_input_field_fails_the_build_naming_it(acme):
    with pytest.raises(RequestBuildError) as info:
        build(acme, "search", acme_context(id="1", tags=[], since=None))
    assert "query" in str(info.value)
    assert "`q`" in str(info.value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("../../admin", "/items/..%2F..%2Fadmin"),
        ("a/b", "/items/a%2Fb"),
        ("x@evil.com", "/items/x%40evil.com"),
        ("x?admin=1", "/items/x%3Fadmin%3D1"),
        ("x#y", "/items/x%23y"),
        ("https://evil.com/", "/items/https%3A%2F%2Fevil.com%2F"),
    ],
)
def test_hostile_path_inputs_stay_one_segment_on_the_same_host(acme, value, path):
    request = build(acme, "search", acme_context(id=value, q="x", tags=[], since=None))
    assert request.path == path
    assert request.url == "https://demo.acme.test/api/2024-01" + path
    assert urlsplit(request.url).netloc == "demo.acme.test"


@pytest.mark.parametrize("value", ["..", ".", "%2e%2e", "%2E.", "%2e"])
def test_dot_segments_from_input_are_refused(acme, value):
    # `..` is encoded to `%2E%2E` and `%2e%2e` to `%252e%252e`; join_url decodes twice
    with pytest.raises(RequestBuildError, match=r"`\.\.`"):
        build(acme, "search", acme_context(id=value, q="x", tags=[], since=None))


def test_form_is_encoded_nested_like_stripe(acme):
    request = build(
        acme,
        "charge",
        acme_context(
            amount=2000, capture=False, order_id=1, note=None, expand=["customer"], sku="S1"
        ),
    )
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    pairs = parse_qsl(request.content().decode(), keep_blank_values=True)
    assert pairs == [
        ("amount", "2000"),
        ("currency", "usd"),
        ("capture", "false"),
        ("metadata[order_id]", "1"),
        ("expand[][0]", "customer"),
        ("lines[0][sku]", "S1"),
        ("lines[0][qty]", "1"),
    ]
    assert b"metadata%5Border_id%5D=1" in request.content()


def test_json_body_keeps_native_types(acme):
    request = build(
        acme,
        "create",
        acme_context(
            id="abc",
            count=3,
            price=9.99,
            active=False,
            tags=["a", "b"],
            extra={"k": None},
            text="478",
        ),
    )
    assert request.method == "PUT"
    assert request.url.endswith("/things/abc/v")
    assert request.headers["Content-Type"] == "application/json"
    assert request.json_body == {
        "id": "abc",
        "count": 3,
        "price": 9.99,
        "active": False,
        "tags": ["a", "b"],
        "extra": {"k": None},
        "label": "#3",
        "text": "478",
        "nested": {"deep": [3, "literal"]},
    }
    assert json.loads(request.content()) == request.json_body


def test_payload_values_that_look_like_templates_are_sent_verbatim(acme):
    text = "{{ 7*7 }} {% if true %}x{% endif %} {{ ''.__class__ }}"
    request = build(
        acme,
        "create",
        acme_context(id="a", count=1, price=1, active=True, tags=[], extra={"t": text}, text=text),
    )
    assert request.json_body["text"] == text
    assert request.json_body["extra"] == {"t": text}
    raw = build(acme, "raw", acme_context(name="{{ 7*7 }}", text=text))
    assert raw.body == "Hello {{ 7*7 }}, " + text
    assert raw.content() == raw.body.encode()
    assert raw.headers["Content-Type"] == "text/plain"


BEARER_APP = """
app: bee
name: Bee
version: 1.0.0
base_url: https://bee.test
auth: { type: bearer }
actions:
  ping:
    name: Ping
    request: { path: /ping }
"""

BASIC_APP = """
app: bas
name: Bas
version: 1.0.0
base_url: https://bas.test
auth: { type: basic }
defaults:
  headers: { Authorization: "should be replaced" }
actions:
  ping:
    name: Ping
    request: { path: /ping }
"""

OAUTH_APP = """
app: oa
name: Oa
version: 1.0.0
base_url: https://oa.test
auth:
  type: oauth2
  grant: client_credentials
  token_url: https://oa.test/token
actions:
  ping:
    name: Ping
    request: { path: /ping }
"""


def test_bearer_auth(tmp_path):
    app = compile_app(tmp_path, "bee", BEARER_APP)
    request = build(app, "ping", context(credential={"token": "tok_1"}))
    assert request.headers == {"Authorization": "Bearer tok_1"}
    assert request.query == []
    assert request.url == "https://bee.test/ping"


def test_basic_auth_overrides_a_default_header(tmp_path):
    app = compile_app(tmp_path, "bas", BASIC_APP)
    request = build(app, "ping", context(credential={"username": "ada", "password": "p:w ö"}))
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == "ada:p:w ö"


def test_oauth2_uses_the_access_token(tmp_path):
    app = compile_app(tmp_path, "oa", OAUTH_APP)
    request = build(app, "ping", context(credential={"access_token": "at_9"}))
    assert request.headers["Authorization"] == "Bearer at_9"


def test_app_settings_base_url_override(tmp_path):
    app = compile_app(tmp_path, "bee", BEARER_APP)
    assert app_context(app) == {"key": "bee", "vars": {}, "webhook_secret": None, "base_url": None}
    local = app.settings.model_copy(update={"base_url": "http://127.0.0.1:9999/mock"})
    moved = CompiledApp(
        **{f: getattr(app, f) for f in app.__slots__ if f != "settings"}, settings=local
    )
    request = build(moved, "ping", context(credential={"token": "t"}))
    assert request.url == "http://127.0.0.1:9999/mock/ping"


# -- responses -------------------------------------------------------------------------------

SLACK_LIKE = """
app: chat
name: Chat
version: 1.0.0
base_url: https://chat.test/api
auth: { type: bearer }
defaults:
  error: "error.message"
actions:
  post:
    name: Post
    request: { method: POST, path: /chat.postMessage, json: { text: "{{ input.text }}" } }
    success: "ok == `true`"
    error: "error"
    output: "{ts: ts, channel: channel}"
  plain:
    name: Plain
    request: { path: /plain }
"""


@pytest.fixture
def chat(tmp_path: Path) -> CompiledApp:
    return compile_app(tmp_path, "chat", SLACK_LIKE)


def test_success_query_passes_on_ok_true(chat):
    outcome = interpret(
        chat, chat.actions["post"], 200, {"ok": True, "ts": "1.2", "channel": "C1", "x": 1}
    )
    assert outcome.ok is True
    assert outcome.output == {"ts": "1.2", "channel": "C1"}
    assert outcome.error is None


def test_slack_ok_false_on_200_is_a_failure_with_the_error_field(chat):
    outcome = interpret(chat, chat.actions["post"], 200, {"ok": False, "error": "not_in_channel"})
    assert outcome.ok is False
    assert outcome.error == "not_in_channel"
    assert outcome.output is None


def test_success_query_does_not_rescue_a_non_2xx(chat):
    outcome = interpret(chat, chat.actions["post"], 500, {"ok": True})
    assert outcome.ok is False
    assert outcome.error == "HTTP 500"


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_default_success_is_any_2xx(chat, status):
    outcome = interpret(chat, chat.actions["plain"], status, {"anything": 1})
    assert outcome.ok is True
    assert outcome.output == {"anything": 1}  # no `output`: the whole body


@pytest.mark.parametrize("status", [199, 301, 400, 404, 429, 500])
def test_default_failure_outside_2xx_uses_the_app_error_query(chat, status):
    outcome = interpret(chat, chat.actions["plain"], status, {"error": {"message": "nope"}})
    assert outcome.ok is False
    assert outcome.error == "nope"


def test_error_message_falls_back_to_status_and_text(chat):
    plain = chat.actions["plain"]
    assert interpret(chat, plain, 502, None).error == "HTTP 502"
    assert interpret(chat, plain, 404, {"other": "shape"}).error == "HTTP 404"
    assert interpret(chat, plain, 503, "  Service Unavailable \n").error == "Service Unavailable"
    assert interpret(chat, plain, 500, "x" * 2000).error == "x" * 500
    assert interpret(chat, plain, 500, "   ").error == "HTTP 500"


def test_non_string_error_is_written_as_json(chat):
    outcome = interpret(chat, chat.actions["plain"], 422, {"error": {"message": ["a", "b"]}})
    assert outcome.error == '["a", "b"]'
    assert error_message(chat, None, 400, {"error": {"message": {"k": 1}}}) == '{"k": 1}'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"ok": true}', {"ok": True}),
        ('{"ok": true}', {"ok": True}),
        (b"[1, 2]", [1, 2]),
        (b"plain text", "plain text"),
        (b"", None),
        (b"  \n", None),
        (None, None),
        (b"\xff\xfe bad", "\ufffd\ufffd bad"),
    ],
)
def test_parse_body(content, expected):
    assert parse_body(content) == expected
