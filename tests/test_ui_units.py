"""The pages' pure parts: forms generated from JSON Schema and read back, 422 details placed
at their fields, the session cookie, the theme, the security headers, where sign-in may go."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout_yaml.config.models.environment import AuthSettings, UiSettings
from rollout_yaml.server.ui.access import local_next
from rollout_yaml.server.ui.connections import credential_problems
from rollout_yaml.server.ui.csrf import csrf_matches, csrf_token
from rollout_yaml.server.ui.forms import FormField, build_fields, field_errors, read_form, scoped
from rollout_yaml.server.ui.headers import content_security_policy, page_headers
from rollout_yaml.server.ui.reload_report import stored_report
from rollout_yaml.server.ui.session import new_session, seal, unseal
from rollout_yaml.server.ui.setup_form import refusal_details
from rollout_yaml.server.ui.theme import parse_theme, theme_css

AUTH = AuthSettings(jwt_secret="j" * 64, admin_token="admin-token-xyz")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["channel", "limit"],
    "properties": {
        "channel": {"type": "string", "title": "Channel", "description": "where it goes"},
        "limit": {"type": "integer", "minimum": 1, "default": 10},
        "ratio": {"type": "number"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
        "size": {"type": "integer", "enum": [1, 2, 3]},
        "loud": {"type": "boolean", "default": True},
        "labels": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
        "target": {
            "type": "object",
            "required": ["owner"],
            "properties": {"owner": {"type": "string"}, "repo": {"type": "string"}},
        },
    },
}


def by_name(fields: list[FormField]) -> dict[str, FormField]:
    out = {}
    for f in fields:
        out[f.name] = f
        out.update(by_name(list(f.children)))
    return out


def submitted(fields: list[FormField]) -> dict[str, list[str]]:
    """What a browser posts for these fields as they are shown (untouched by the user)."""
    form: dict[str, list[str]] = {}
    for f in by_name(fields).values():
        if f.widget == "group":
            continue
        if f.widget == "checkbox":
            if f.checked:
                form[f.name] = ["true"]
        elif f.widget == "select":
            form[f.name] = [next((o.value for o in f.options if o.selected), "")]
        else:
            form[f.name] = [f.value]
    return form


# -- the generated form ----------------------------------------------------------------------


def test_each_schema_type_gets_its_widget_with_required_marks_defaults_and_help() -> None:
    fields = by_name(build_fields(SCHEMA))
    assert {n: f.widget for n, f in fields.items()} == {
        "params.channel": "text",
        "params.limit": "number",
        "params.ratio": "number",
        "params.priority": "select",
        "params.size": "select",
        "params.loud": "checkbox",
        "params.labels": "lines",
        "params.extra": "json",
        "params.target": "group",
        "params.target.owner": "text",
        "params.target.repo": "text",
    }
    assert fields["params.channel"].label == "Channel" and fields["params.channel"].required
    assert fields["params.channel"].description == "where it goes"
    assert fields["params.limit"].value == "10" and fields["params.limit"].step == "1"
    assert fields["params.limit"].minimum == 1.0 and fields["params.ratio"].step == "any"
    assert fields["params.loud"].checked
    assert [(o.value, o.selected) for o in fields["params.priority"].options] == [
        ("", False),
        ("low", False),
        ("normal", True),
        ("high", False),
    ]
    assert fields["params.target.owner"].required and not fields["params.target.repo"].required
    assert fields["params.target.owner"].path == "$.params.target.owner"
    assert len({f.id for f in fields.values()}) == len(fields)


def test_a_form_as_shown_posts_back_the_defaults_typed() -> None:
    read = read_form(SCHEMA, submitted(build_fields(SCHEMA)))
    assert read.errors == {}
    assert read.values == {"limit": 10, "priority": "normal", "loud": True}


def test_values_are_typed_after_the_schema_and_wrong_ones_left_to_the_validator() -> None:
    form = {
        "params.channel": ["#orders"],
        "params.limit": ["abc"],
        "params.ratio": ["0.5"],
        "params.size": ["2"],
        "params.labels": ["bug\n\n from-customer \n"],
        "params.extra": ['{"a": [1, 2]}'],
        "params.target.owner": ["globex"],
        "params.target.repo": [""],
    }
    read = read_form(SCHEMA, form)
    assert read.values == {
        "channel": "#orders",
        "limit": "abc",  # kept as typed: the validator says `'abc' is not of type 'integer'`
        "ratio": 0.5,
        "size": 2,
        "loud": False,  # an unticked checkbox is not posted at all
        "labels": ["bug", "from-customer"],
        "extra": {"a": [1, 2]},
        "target": {"owner": "globex"},
    }
    assert read.errors == {}


def test_a_json_field_that_is_not_json_is_an_error_at_that_field() -> None:
    read = read_form(SCHEMA, {"params.extra": ["{nope"]})
    assert list(read.errors) == ["$.params.extra"]
    assert "not valid JSON" in read.errors["$.params.extra"]
    shown = by_name(build_fields(SCHEMA, read.values, read.errors, use_defaults=False))
    assert shown["params.extra"].value == "{nope" and shown["params.extra"].error


def test_secret_fields_are_password_inputs_that_never_show_a_value() -> None:
    schema = {"type": "object", "properties": {"token": {"type": "string", "secret": True}}}
    field = build_fields(schema, {"token": "s3cret"}, prefix="values")[0]
    assert field.widget == "password" and field.value == ""


def test_details_are_placed_at_their_field_and_the_rest_above_the_form() -> None:
    fields = build_fields(SCHEMA)
    details = [
        {"path": "$.params.limit", "message": "0 is less than the minimum of 1"},
        {
            "path": "$.params",
            "message": "params of `x`: 'channel' is a required property",
        },
        {"path": "$.params.target", "message": "'owner' is a required property"},
        {"path": "$.params.labels[1]", "message": "1 is not of type 'string'"},
        {"path": "$.credentials.action", "message": "unknown credential `nope`"},
    ]
    placed, loose = field_errors(details, fields)
    assert placed == {
        "$.params.limit": "0 is less than the minimum of 1",
        "$.params.channel": "params of `x`: 'channel' is a required property",
        "$.params.target.owner": "'owner' is a required property",
        "$.params.labels": "1 is not of type 'string'",
    }
    assert loose == ["unknown credential `nope`"]
    shown = by_name(build_fields(SCHEMA, {}, placed))
    assert shown["params.limit"].error and shown["params.target.owner"].error


PLAIN = st.sampled_from(["string", "integer", "number", "boolean", "enum", "lines"])
WORDS = st.text(alphabet="abcdefghij-#é ", min_size=1, max_size=12).filter(lambda s: s.strip())


@st.composite
def schema_and_values(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    names = draw(st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), unique=True, max_size=6))
    properties: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name in names:
        kind = draw(PLAIN)
        if kind == "enum":
            choices = draw(
                st.lists(st.one_of(WORDS, st.integers(-5, 5)), min_size=1, max_size=4, unique=True)
            )
            properties[name] = {"enum": choices}
            value: Any = draw(st.sampled_from(choices))
        elif kind == "lines":
            properties[name] = {"type": "array", "items": {"type": "string"}}
            value = [w.strip() for w in draw(st.lists(WORDS, min_size=1, max_size=3))]
        elif kind == "string":
            properties[name] = {"type": "string"}
            value = draw(WORDS)
        elif kind == "integer":
            properties[name] = {"type": "integer"}
            value = draw(st.integers(-(10**12), 10**12))
        elif kind == "number":
            properties[name] = {"type": "number"}
            value = draw(st.floats(-1e6, 1e6, allow_nan=False).filter(lambda f: not f.is_integer()))
        else:
            properties[name] = {"type": "boolean"}
            value = draw(st.booleans())
        values[name] = value
    return {"type": "object", "properties": properties}, values


@settings(max_examples=150, deadline=None)
@given(schema_and_values())
def test_any_values_shown_in_a_generated_form_are_read_back_unchanged(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    schema, values = case
    fields = build_fields(schema, values, use_defaults=False)
    read = read_form(schema, submitted(fields))
    assert read.errors == {}
    assert read.values == values


# -- session, CSRF, where sign-in goes ---------------------------------------------------------


def test_a_session_cookie_reads_back_and_any_change_to_it_is_refused() -> None:
    session = new_session("consumer", "acme", time.time() + 60, "accent:ff0000")
    cookie = seal(session, AUTH)
    assert unseal(cookie, "consumer", AUTH) == session
    assert (
        unseal(cookie, "operator", AUTH) is None
    )  # a consumer's cookie never signs in an operator
    version, payload, signature = cookie.split(".")

    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["c"] = "globex"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert unseal(f"{version}.{forged}.{signature}", "consumer", AUTH) is None
    other = AuthSettings(jwt_secret="k" * 64, admin_token="admin-token-xyz")
    assert unseal(cookie, "consumer", other) is None  # a new jwt_secret signs everyone out
    expired = seal(new_session("consumer", "acme", time.time() - 1), AUTH)
    assert unseal(expired, "consumer", AUTH) is None
    for junk in ("", "v1", "v1..", "v2.a.b", cookie + "x"):
        assert unseal(junk, "consumer", AUTH) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    one = new_session("operator", None, time.time() + 60)
    two = new_session("operator", None, time.time() + 60)
    assert csrf_matches(one, AUTH, csrf_token(one, AUTH))
    assert not csrf_matches(one, AUTH, csrf_token(two, AUTH))
    assert not csrf_matches(one, AUTH, "") and not csrf_matches(one, AUTH, None)
    assert one.nonce not in csrf_token(one, AUTH)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/runs?status=failed", "/ui/runs?status=failed"),
        ("/ui/embed", "/ui/embed"),
        ("https://evil.example/ui", "/ui"),
        ("//evil.example/ui", "/ui"),
        ("/\\evil.example", "/ui"),
        ("/uix/../ui", "/ui"),
        ("/ui?x=1", "/ui?x=1"),
        ("/v1/runs", "/ui"),
        ("javascript:alert(1)", "/ui"),
        ("", "/ui"),
    ],
)
def test_sign_in_only_goes_to_pages_of_this_ui(target: str, expected: str) -> None:
    assert local_next(target, "/ui") == expected


# -- theme and headers -------------------------------------------------------------------------


def test_theme_keeps_only_known_colours_in_hex_and_nothing_else_reaches_the_css() -> None:
    value = "accent:0B57D0,background:#fff,text:red,evil:000000,border:123456;}body{x:1,muted:12"
    assert parse_theme(value) == {"accent": "#0b57d0", "background": "#ffffff"}
    css = theme_css(parse_theme("accent:abc,text:</style><script>"))
    assert css == ":root {\n  --accent: #aabbcc;\n}\n"
    assert theme_css({}) == ""


def test_the_policy_allows_nothing_inline_and_frames_only_where_configured() -> None:
    policy = content_security_policy()
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy and "form-action 'self'" in policy
    partner = ["https://app.partner.example"]
    portal = page_headers(partner, framed=True)
    assert "frame-ancestors https://app.partner.example" in portal["Content-Security-Policy"]
    assert "X-Frame-Options" not in portal
    operator = page_headers(partner, framed=False)
    assert "frame-ancestors 'none'" in operator["Content-Security-Policy"]
    assert operator["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    "origin",
    [
        "https://x.example; script-src *",
        "https://x.example/path",
        "*",
        "'unsafe-inline'",
        "x.example",
    ],
)
def test_frame_ancestors_refuses_anything_but_an_origin(origin: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        UiSettings(frame_ancestors=[origin])
    assert UiSettings(frame_ancestors=["https://*.partner.example", "http://localhost:3000"])


def test_every_picture_docs_ui_shows_exists() -> None:
    from browser import REPO

    text = (REPO / "docs" / "ui.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures
    for picture in pictures:
        assert (REPO / "docs" / picture).is_file(), f"{picture}: ROLLOUT_UI_SCREENSHOTS=1 makes it"


def test_a_refused_write_puts_each_problem_with_its_help_at_its_field() -> None:
    details = [
        {
            "code": "RY402",
            "path": "$.params.chanel",
            "message": "unknown param",
            "help": "did you mean `channel`?",
        },
        {
            "code": "RY403",
            "path": "$.params",
            "message": "'channel' is a required property",
            "help": None,
        },
    ]
    assert refusal_details(422, "first", details) == [
        {"path": "$.params.chanel", "message": "unknown param (did you mean `channel`?)"},
        {"path": "$.params", "message": "'channel' is a required property"},
    ]
    exists = refusal_details(409, "automation `a` exists", [{"path": "$.key", "message": "exists"}])
    assert exists == [{"path": "$.key", "message": "automation `a` exists"}]
    assert refusal_details(422, "over the limit", []) == [
        {"path": "$", "message": "over the limit"}
    ]
    placed, loose = field_errors(refusal_details(422, "x", details), build_fields(SCHEMA))
    assert "$.params.channel" in placed and loose == ["unknown param (did you mean `channel`?)"]


def test_forms_of_the_same_fields_on_one_page_get_ids_of_their_own() -> None:
    fields = build_fields(SCHEMA)
    ids = [f.id for f in scoped(fields, "a")] + [f.id for f in scoped(fields, "b")]
    assert len(ids) == len(set(ids)) and [f.name for f in scoped(fields, "a")] == [
        f.name for f in fields
    ]


def test_a_stored_automations_problems_are_printed_at_the_line_their_path_names() -> None:
    definition = {
        "blueprint": "order-alerts",
        "params": {"channel": "#s", "labels": ["a", 1]},
        "credentials": {"action": "sink"},
    }
    problems = [
        {"code": "RY402", "path": "$.params.labels[1]", "message": "1 is not of type 'string'"},
        {"code": "RY404", "path": "$.credentials.trigger", "message": "missing", "help": "add it"},
        {"code": "RY001", "path": "$", "message": "whole"},
    ]
    first, second, third = stored_report("api:acme/alerts", "alerts", definition, problems)
    assert first.splitlines()[:3] == [
        "api:acme/alerts:7:5: error[RY402] $.params.labels[1]: 1 is not of type 'string'",
        "    7 |   - 1",
        "      |     ^",
    ]
    assert second.splitlines()[0].startswith("api:acme/alerts:8:1: error[RY404]")  # its parent
    assert "      = help: add it" in second.splitlines()
    assert third.splitlines()[0].startswith("api:acme/alerts:1:1: error[RY001] $: whole")


def test_a_refused_credential_puts_its_problems_at_the_value_or_key_they_name() -> None:
    details = [
        {"path": "$.values.token", "message": "`token` is required"},
        {"path": "$.values", "message": "no values given"},
        {"path": "$.key", "message": "not a key"},
        {"path": "$.app", "message": "of another App"},
    ]
    assert credential_problems("refused", details) == {
        "$.values.token": "`token` is required",
        "$": "no values given; of another App",
        "$.key": "not a key",
    }
    assert credential_problems("used by `a`", []) == {"$": "used by `a`"}
