"""`${NAME}` interpolation from the environment and secret files, and redaction."""

from __future__ import annotations

import pytest

from rollout_yaml.config.secrets import (
    REDACTED,
    interpolate,
    is_reference,
    load_secret_files,
    redact,
)

LOOKUP = {"TOKEN": "t0k3n", "REGION": "eu", "EMPTY": ""}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("${TOKEN}", "t0k3n"),
        ("Bearer ${TOKEN}", "Bearer t0k3n"),
        ("${REGION}-${TOKEN}", "eu-t0k3n"),
        ("${MISSING:-fallback}", "fallback"),
        ("${MISSING:-}", ""),
        ("${TOKEN:-unused}", "t0k3n"),
        ("${MISSING:-a b:c/d}", "a b:c/d"),
        ("${EMPTY}", ""),
        ("${lower_case:-ok}", "ok"),
        ("$TOKEN", "$TOKEN"),  # only the braced form is a reference
        ("${ TOKEN }", "${ TOKEN }"),
        ("${1TOKEN}", "${1TOKEN}"),
        ("no references", "no references"),
    ],
)
def test_interpolate_strings(raw, value):
    assert interpolate({"v": raw}, LOOKUP).data == {"v": value}


def test_interpolate_walks_nested_data_and_keeps_other_types():
    data = {
        "a": "${TOKEN}",
        "list": ["x", "${REGION}", {"deep": "${MISSING:-d}"}],
        "n": 5,
        "b": True,
        "none": None,
    }
    result = interpolate(data, LOOKUP)
    assert result.data == {
        "a": "t0k3n",
        "list": ["x", "eu", {"deep": "d"}],
        "n": 5,
        "b": True,
        "none": None,
    }
    assert data["a"] == "${TOKEN}"  # the input is not modified


def test_referenced_paths_are_recorded():
    result = interpolate(
        {"a": "${TOKEN}", "b": "plain", "c": ["${X:-1}", "y"], "d": {"e": "k=${REGION}"}},
        LOOKUP,
    )
    assert result.referenced == {("a",), ("c", 0), ("d", "e")}


def test_missing_names_are_recorded_with_their_path():
    result = interpolate(
        {"a": "${GONE}", "b": ["${TOKEN}", {"c": "x-${GONE2}-${ALSO_GONE}"}], "d": "${GONE:-ok}"},
        LOOKUP,
    )
    assert result.missing == [
        (("a",), "GONE"),
        (("b", 1, "c"), "GONE2"),
        (("b", 1, "c"), "ALSO_GONE"),
    ]
    assert result.data["a"] == ""
    assert result.data["b"][1]["c"] == "x--"
    assert result.data["d"] == "ok"


def test_values_are_not_interpolated_twice():
    result = interpolate({"a": "${INNER}"}, {"INNER": "${TOKEN}", "TOKEN": "secret"})
    assert result.data == {"a": "${TOKEN}"}


def test_is_reference():
    assert is_reference("${X}")
    assert is_reference("${X_1:-default}")
    assert not is_reference("a${X}")
    assert not is_reference("${X}${Y}")
    assert not is_reference("${X} ")
    assert not is_reference("literal-secret")
    assert not is_reference(5)
    assert not is_reference(None)


def test_load_secret_files_later_files_win_and_missing_files_are_skipped(tmp_path):
    (tmp_path / "a.env").write_text("A=1\nB=from_a\n", encoding="utf-8")
    (tmp_path / "b.env").write_text("B=from_b\nC='quoted value'\nEMPTY_ONLY\n", encoding="utf-8")
    values = load_secret_files(tmp_path, ["a.env", "missing.env", "b.env"])
    assert values == {"A": "1", "B": "from_b", "C": "quoted value"}


def test_redact_replaces_every_occurrence():
    text = "token=sk_live_abc and again sk_live_abc"
    assert redact(text, {"sk_live_abc"}) == f"token={REDACTED} and again {REDACTED}"


def test_redact_longest_first():
    # with the shorter secret first, `sk_live_1234` would leave a dangling `4`
    assert redact("key sk_live_1234 / sk_live_123", {"sk_live_123", "sk_live_1234"}) == (
        "key *** / ***"
    )
    assert redact("abcdefgh", {"abcd", "abcdefgh"}) == "***"


def test_redact_ignores_very_short_values():
    assert redact("a b abc abcd", {"", "a", "ab", "abc"}) == "a b abc abcd"
    assert redact("a b abc abcd", {"abcd"}) == "a b abc ***"


def test_redact_with_no_secrets_is_identity():
    assert redact("nothing to hide", set()) == "nothing to hide"
    assert redact("nothing to hide", frozenset({"absent"})) == "nothing to hide"
