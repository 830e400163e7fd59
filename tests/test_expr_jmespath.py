"""JMESPath with rollout-yaml's extra functions, diagnostics and field analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout_yaml.expr.jmespath import (
    EXTRA_FUNCTIONS,
    KNOWN_FUNCTIONS,
    JMESPathError,
    Query,
    compile_query,
)

DATA = {
    "title": "Hello World",
    "csv": "a,b,,c",
    "ts": "2024-01-02T03:04:05Z",
    "offset": "2024-01-02T05:04:05+02:00",
    "naive": "2024-01-02T03:04:05",
    "epoch": 1704164645,
    "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
}


def search(expression: str, data: object = DATA) -> object:
    return compile_query(expression).search(data)


def test_every_extra_function_is_known():
    assert set(EXTRA_FUNCTIONS) <= KNOWN_FUNCTIONS
    assert {"length", "sort_by", "max_by", "to_number", "contains"} <= KNOWN_FUNCTIONS


def test_now_is_current_utc_iso8601():
    before = datetime.now(UTC)
    value = search("now()")
    after = datetime.now(UTC)
    assert isinstance(value, str) and value.endswith("Z")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= parsed <= after + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("parse_date(ts)", "2024-01-02T03:04:05Z"),
        ("parse_date(offset)", "2024-01-02T03:04:05Z"),
        ("parse_date(naive)", "2024-01-02T03:04:05Z"),
        ("parse_date(epoch)", "2024-01-02T03:04:05Z"),
        ("parse_date('2024-01-02')", "2024-01-02T00:00:00Z"),
        ("to_unix(ts)", 1704164645),
        ("to_unix(offset)", 1704164645),
        ("to_unix(epoch)", 1704164645),
        ("to_unix('1970-01-01T00:00:00Z')", 0),
        ("lower(title)", "hello world"),
        ("upper(title)", "HELLO WORLD"),
        ("split(csv, ',')", ["a", "b", "", "c"]),
        ("split(title, ' ')[1]", "World"),
        ("replace(title, 'World', 'There')", "Hello There"),
        ("replace(csv, ',', '')", "abc"),
        ("items[?lower(sku) == 'a'].qty | [0]", 2),
        ("to_unix(ts) > to_unix('2024-01-01')", True),
    ],
)
def test_extra_functions(expression, expected):
    assert search(expression) == expected


@pytest.mark.parametrize(
    "expression",
    ["lower(epoch)", "upper(items)", "split(csv)", "replace(title, 'a')", "to_unix(items)"],
)
def test_extra_functions_check_their_arguments(expression):
    with pytest.raises(ValueError):  # jmespath's type/arity errors are ValueErrors
        search(expression)


def test_parse_date_of_garbage_raises():
    with pytest.raises(ValueError):
        search("parse_date('yesterday')")


@pytest.mark.parametrize(
    ("expression", "name", "suggestion"),
    [
        ("lowr(title)", "lowr", "lower"),
        ("uper(title)", "uper", "upper"),
        ("to_unixx(ts)", "to_unixx", "to_unix"),
        ("items[?contain(sku, 'A')]", "contain", "contains"),
        ("parsedate(ts)", "parsedate", "parse_date"),
    ],
)
def test_unknown_function_is_ry306_with_a_suggestion(expression, name, suggestion):
    with pytest.raises(JMESPathError) as info:
        compile_query(expression)
    assert info.value.code == "RY306"
    message = str(info.value)
    assert f"`{name}()`" in message
    assert f"`{suggestion}`" in message


def test_unknown_function_far_from_any_lists_known_names():
    with pytest.raises(JMESPathError) as info:
        compile_query("zzzqqq(title)")
    assert info.value.code == "RY306"
    assert "`abs`" in str(info.value)


@pytest.mark.parametrize(
    "expression",
    ["foo(", "a.[", "`{bad", "a ||", "'unterminated", "items[?qty >]", "", "a..b", "{a: }"],
)
def test_syntax_error_is_ry302(expression):
    with pytest.raises(JMESPathError) as info:
        compile_query(expression)
    assert info.value.code == "RY302"
    assert "invalid JMESPath" in str(info.value)


def test_syntax_error_names_the_column():
    with pytest.raises(JMESPathError) as info:
        compile_query("a.[")
    assert "column 4" in str(info.value)


def test_missing_data_gives_null_not_an_error():
    assert search("a.b.c", {}) is None
    assert search("items[5].sku") is None
    assert search("a", None) is None


def test_cache_returns_the_same_query():
    cache: dict[str, Query] = {}
    first = compile_query("items[0].sku", cache)
    assert compile_query("items[0].sku", cache) is first
    assert list(cache) == ["items[0].sku"]
    assert first.search(DATA) == "A"
    assert "items[0].sku" in repr(first)


def test_failed_compile_is_not_cached():
    cache: dict[str, Query] = {}
    with pytest.raises(JMESPathError):
        compile_query("foo(", cache)
    assert cache == {}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("payload.customer.name", [("customer", "name")]),
        ("payload.items[0].sku", [("items", 0, "sku")]),
        ("payload.a || payload.b", [("a",), ("b",)]),
        ("payload.amount >= input.min_amount", [("amount",)]),
        ("input.min_amount == `null` || payload.amount >= input.min_amount", [("amount",)]),
        ("length(payload.items)", [("items",)]),
        ("payload.items[?qty > `1`].sku", [("items",)]),
        ("{n: payload.name, e: payload.email}", [("name",), ("email",)]),
        ("[payload.x, payload.y]", [("x",), ("y",)]),
        ("sort_by(payload.items, &price)", [("items",)]),
        ('payload."weird key"', [("weird key",)]),
        ("payload.a.b.c | d", [("a", "b", "c")]),
        ("payload", []),
        ("event.id", []),
        ("items[0].payload.x", []),
    ],
)
def test_field_paths_under_payload(expression, expected):
    assert compile_query(expression).field_paths("payload") == expected


def test_field_paths_for_another_root():
    query = compile_query("input.channel == payload.channel && input.x.y")
    assert query.field_paths("input") == [("channel",), ("x", "y")]
    assert query.field_paths("payload") == [("channel",)]


def test_field_paths_see_through_wildcard_projection():
    assert ("items",) in compile_query("payload.items[*].sku").field_paths("payload")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        ("false", True),
        ("0", True),
        ([0], True),
        ({"a": None}, True),
        (1, True),
        (2.5, True),
    ],
)
def test_is_true_uses_jmespath_truthiness(value, expected):
    assert compile_query("v").is_true({"v": value}) is expected


@pytest.mark.parametrize("zero", [0, 0.0])
def test_is_true_zero_is_true_in_jmespath(zero):
    assert compile_query("v").is_true({"v": zero}) is True


def test_is_true_of_comparisons():
    query = compile_query("ok == `true`")
    assert query.is_true({"ok": True}) is True
    assert query.is_true({"ok": "true"}) is False
    assert query.is_true({}) is False
    assert compile_query("missing").is_true(None) is False
