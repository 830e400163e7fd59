"""YAML files into plain data, with 1-based line/column positions found on demand."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_core import PydanticCustomError

from rollout_yaml.config.source import SourceFile, YamlProblem, parse_source, read_source
from rollout_yaml.config.types import format_duration, parse_duration


def parse(text: str) -> SourceFile:
    return parse_source(text, Path("connectors/x.yaml"), "connectors/x.yaml")


def problem(text: str) -> tuple[str, int, int, str]:
    with pytest.raises(YamlProblem) as info:
        parse(text)
    d = info.value.diagnostic
    assert d.file == "connectors/x.yaml"
    return d.code, d.line, d.col, d.message


BLOCK = """\
app: shop
triggers:
  new-order:
    name: "New order"
    tags: [a, b, {c: d}]
    list:
      - x
      - - y
        - z
      - k: v
        k2: v2
flow: {a: 1, b: [1, 2]}
"""


def test_block_and_flow_data():
    assert parse(BLOCK).data == {
        "app": "shop",
        "triggers": {
            "new-order": {
                "name": "New order",
                "tags": ["a", "b", {"c": "d"}],
                "list": ["x", ["y", "z"], {"k": "v", "k2": "v2"}],
            }
        },
        "flow": {"a": 1, "b": [1, 2]},
    }


@pytest.mark.parametrize(
    ("path", "key", "position"),
    [
        (("app",), False, (1, 6)),
        (("app",), True, (1, 1)),
        (("triggers",), True, (2, 1)),
        (("triggers", "new-order"), True, (3, 3)),
        (("triggers", "new-order", "name"), False, (4, 11)),
        (("triggers", "new-order", "name"), True, (4, 5)),
        (("triggers", "new-order", "tags"), False, (5, 11)),
        (("triggers", "new-order", "tags", 1), False, (5, 15)),
        (("triggers", "new-order", "tags", 2, "c"), False, (5, 22)),
        (("triggers", "new-order", "tags", 2, "c"), True, (5, 19)),
        (("triggers", "new-order", "list", 0), False, (7, 9)),
        (("triggers", "new-order", "list", 1, 0), False, (8, 11)),
        (("triggers", "new-order", "list", 1, 1), False, (9, 11)),
        (("triggers", "new-order", "list", 2, "k"), True, (10, 9)),
        (("triggers", "new-order", "list", 2, "k2"), True, (11, 9)),
        (("triggers", "new-order", "list", 2, "k2"), False, (11, 13)),
        (("flow", "a"), True, (12, 8)),
        (("flow", "a"), False, (12, 11)),
        (("flow", "b", 1), False, (12, 21)),
    ],
)
def test_locate_values_and_keys(path, key, position):
    assert parse(BLOCK).locate(path, key=key) == position


@pytest.mark.parametrize(
    ("path", "position"),
    [
        # the deepest node that exists: the `new-order` mapping, where the field would go
        (("triggers", "new-order", "missing"), (4, 5)),
        (("triggers", "new-order", "missing", "deeper"), (4, 5)),
        (("triggers", "new-order", "list", 9), (7, 7)),
        (("nope",), (1, 1)),
        ((), (1, 1)),
    ],
)
def test_locate_paths_beyond_the_file_stop_at_the_deepest_node(path, position):
    source = parse(BLOCK)
    assert source.locate(path) == position
    assert source.locate(path, key=True) == position


def test_locate_on_an_empty_file():
    assert parse("").locate(("a",)) == (1, 1)
    assert parse("").data is None


def test_diagnostic_uses_the_location():
    d = parse(BLOCK).diagnostic("RY304", "bad", ("triggers", "new-order", "name"), key=True)
    assert (d.code, d.message, d.file, d.line, d.col) == (
        "RY304",
        "bad",
        "connectors/x.yaml",
        4,
        5,
    )
    assert d.is_error
    warning = parse(BLOCK).diagnostic("RY999", "hm", ("app",), warning=True, hint="try")
    assert not warning.is_error and warning.hint == "try"


MERGE = """\
base: &b
  x: 1
  y: 2
other:
  <<: *b
  y: 3
multi:
  <<: [*b, {z: 9}]
"""


def test_merge_keys_merge_and_local_keys_win():
    data = parse(MERGE).data
    assert data["other"] == {"x": 1, "y": 3}
    assert data["multi"] == {"x": 1, "y": 2, "z": 9}
    assert "<<" not in data["other"]


def test_locate_through_merge_keys():
    source = parse(MERGE)
    assert source.locate(("other", "y")) == (6, 6)  # the local key
    assert source.locate(("other", "x")) == (2, 6)  # where the merged value is written
    assert source.locate(("other", "x"), key=True) == (2, 3)
    assert source.locate(("multi", "z")) == (8, 16)


def test_aliases_give_equal_data():
    assert parse("a: &x [1, {b: 2}]\nc: *x\n").data == {"a": [1, {"b": 2}], "c": [1, {"b": 2}]}


@pytest.mark.parametrize(
    ("text", "line", "col", "key", "first"),
    [
        ("a: 1\na: 2\n", 2, 1, "a", (1, 1)),
        ("a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\n", 5, 3, "c", (3, 3)),
        ("x: {k: 1, k: 2}\n", 1, 11, "k", (1, 5)),
        ("l:\n  - n: 1\n    n: 2\n", 3, 5, "n", (2, 5)),
        ("yes: 1\ntrue: 2\n", 2, 1, "true", (1, 1)),  # YAML 1.1: both are the boolean true
        ("1: a\n'1': b\n", 2, 1, "1", (1, 1)),
    ],
)
def test_duplicate_key_is_ry002_at_the_second_key_and_points_at_the_first(
    text, line, col, key, first
):
    code, got_line, got_col, message = problem(text)
    assert (code, got_line, got_col) == ("RY002", line, col)
    assert f"duplicate key `{key}` (first defined on line {first[0]})" == message
    with pytest.raises(YamlProblem) as info:
        parse(text)
    (related,) = info.value.diagnostic.related
    assert (related.line, related.col, related.message) == (*first, "first defined here")


@pytest.mark.parametrize(
    ("text", "tag_fragment"),
    [
        ("a: !custom x\n", "!custom"),
        ("a: !!python/object:os.system x\n", "python/object"),
        ("a: !!python/name:os.system ''\n", "python/name"),
        ("a: !!binary aGVsbG8=\n", "binary"),
        ("b: 1\na: !Ref x\n", "!Ref"),
    ],
)
def test_custom_tags_are_ry006(text, tag_fragment):
    code, line, col, message = problem(text)
    assert code == "RY006"
    assert tag_fragment in message
    assert (line, col) == (text.count("\n", 0, text.index("a:")) + 1, 4)


@pytest.mark.parametrize(
    "text", ["a: !custom {b: 1}\n", "a: !custom [1]\n", "a: !!set {x}\n", "!Thing {a: 1}\n"]
)
def test_custom_tags_on_collections_are_ry006(text):
    assert problem(text)[0] == "RY006"


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ("a: 1\n b: 2\n", 2, 3, "mapping values are not allowed"),
        ("a: [1, 2\nb: 3\n", 2, 2, "flow sequence"),
        ("a: 'unterminated\n", 2, 1, "quoted scalar"),
        ("a:\n\t- b\n", 2, 1, "a tab in the indentation"),
        ("a:\n  b: 1\n\tc: 2\n", 3, 1, "a tab in the indentation"),
        ("a:\n  \tb: 1\n", 2, 3, "a tab in the indentation"),
        ("a: *nope\n", 1, 4, "undefined alias"),
        ("---\na: 1\n---\nb: 2\n", 3, 1, "single document"),
    ],
)
def test_syntax_error_is_ry001_with_line_and_col(text, line, col, fragment):
    code, got_line, got_col, message = problem(text)
    assert (code, got_line, got_col) == ("RY001", line, col)
    assert message.startswith("YAML syntax error:")
    assert fragment in message


def test_complex_keys_are_refused():
    code, line, col, _ = problem("? [a, b]\n: 1\n")
    assert (code, line, col) == ("RY102", 1, 3)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("v: 2024-01-02", "2024-01-02"),
        ("v: 2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("v: 2024-01-02 03:04:05", "2024-01-02 03:04:05"),
        ("v: !!timestamp 2024-01-02", "2024-01-02"),
        ("v: '2024-01-02'", "2024-01-02"),
    ],
)
def test_timestamps_stay_the_text_written(text, value):
    assert parse(text).data == {"v": value}


# YAML 1.1 as PyYAML reads it: yes/no/on/off (any case form listed by the spec) are booleans,
# `y`/`n` are strings, leading-zero numbers are octal, `1.5e3` (no dot) is a string.
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("yes", True),
        ("Yes", True),
        ("YES", True),
        ("no", False),
        ("NO", False),  # the "Norway problem"
        ("on", True),
        ("On", True),
        ("off", False),
        ("true", True),
        ("False", False),
        ("y", "y"),
        ("n", "n"),
        ("'yes'", "yes"),
        ('"on"', "on"),
        ("~", None),
        ("null", None),
        ("", None),
        ("012", 10),
        ("0x1f", 31),
        ("1_000", 1000),
        ("1.10", 1.1),
        ("1.5e3", "1.5e3"),
        ("1.5e+3", 1500.0),
        ("'012'", "012"),
    ],
)
def test_yaml_1_1_scalars(raw, value):
    data = parse(f"v: {raw}\n").data
    assert data == {"v": value}
    assert type(data["v"]) is type(value)


def test_boolean_keys_become_lowercase_strings():
    assert parse("on: 1\noff: 2\n").data == {"true": 1, "false": 2}
    assert parse("1: a\n2.5: b\n").data == {"1": "a", "2.5": "b"}


def test_explicit_core_tags_are_allowed():
    assert parse("a: !!str 12\nb: !!int '7'\nc: !!float 1\n").data == {
        "a": "12",
        "b": 7,
        "c": 1.0,
    }


def test_read_source_reads_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("app: c\nname: C\n", encoding="utf-8")
    source = read_source(path, "connectors/c.yaml")
    assert source.data == {"app": "c", "name": "C"}
    assert source.display == "connectors/c.yaml"
    assert source.path == path
    assert source.locate(("name",)) == (2, 7)


def test_read_source_of_a_non_utf8_file_is_ry005(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"app: \xff\xfe\n")
    with pytest.raises(YamlProblem) as info:
        read_source(path, "connectors/bad.yaml")
    assert info.value.diagnostic.code == "RY005"
    assert info.value.diagnostic.file == "connectors/bad.yaml"


def test_read_source_of_a_missing_file_is_ry005(tmp_path):
    with pytest.raises(YamlProblem) as info:
        read_source(tmp_path / "gone.yaml", "gone.yaml")
    assert info.value.diagnostic.code == "RY005"


# -- durations as written in files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1.5h", 5400.0),
        ("30d", 2_592_000.0),
        ("100ms", 0.1),
        (" 5m ", 300.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration(raw, seconds):
    assert parse_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["30", 30, "5M", "-1s", "1h30m", ".5s", True, None, "5 minutes"])
def test_parse_duration_needs_a_number_and_a_unit(raw):
    with pytest.raises(PydanticCustomError) as info:
        parse_duration(raw)
    assert info.value.type == "RY105"


@pytest.mark.parametrize("seconds", [0.1, 0.5, 30, 90, 300, 5400, 86400])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_a_duration_in_a_file_is_read_as_its_text():
    # the loader gives `30s` to the model as text; a bare number is a YAML int and is refused
    data = parse("timeout: 30s\nbare: 30\n").data
    assert parse_duration(data["timeout"]) == 30.0
    with pytest.raises(PydanticCustomError):
        parse_duration(data["bare"])
