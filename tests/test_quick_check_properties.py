"""The quick check in front of jsonschema never passes what jsonschema rejects: over generated
schemas (the keywords it handles and others it must hand over) and generated JSON values, a
value `Schema.certainly_valid` passes has no jsonschema violation, and `Schema.violations`
reports exactly what jsonschema reports."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from rollout_yaml.expr.schemas import Schema

NAMES = st.sampled_from(["a", "b", "id", "n"])
TYPES = st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"])
NUMBERS = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False), st.just(0.5))
ODD_VALUES = [0, 1, 1.0, 0.0, -0.0, True, False, "", "a", "1", "true", "null", 2.5]
ODD = st.sampled_from(ODD_VALUES)
FORMATS = st.sampled_from(["email", "date-time", "date", "uri", "ipv4", "uuid", "regex", "x-own"])
PATTERNS = st.sampled_from(["^a", "a$", "\\d", "^[a-z]+$", "", "(?i)A"])

_nested_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-10, 10),
        st.floats(-10, 10, allow_nan=False),
        ODD,
        st.text(max_size=4),
        st.sampled_from(["a@b.c", "2024-01-01", "2024-01-01T00:00:00Z", "1.2.3.4", "http://x"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=8,
)
json_values = st.one_of(ODD, _nested_values)  # the values where Python and JSON disagree, often


LEAF_KEYWORDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.one_of(TYPES, st.lists(TYPES, min_size=1, max_size=3, unique=True)),
    "minimum": NUMBERS,
    "maximum": NUMBERS,
    "exclusiveMinimum": NUMBERS,
    "exclusiveMaximum": NUMBERS,
    "multipleOf": st.sampled_from([1, 2, 0.5, 0.1]),
    "minLength": st.integers(0, 3),
    "maxLength": st.integers(0, 3),
    "minItems": st.integers(0, 3),
    "maxItems": st.integers(0, 3),
    "uniqueItems": st.booleans(),
    "minProperties": st.integers(0, 2),
    "maxProperties": st.integers(0, 2),
    "required": st.lists(NAMES, max_size=2, unique=True),
    "enum": st.lists(st.one_of(st.none(), st.text(max_size=2), ODD), min_size=1, max_size=3),
    "const": st.one_of(st.none(), ODD),
    "format": FORMATS,
    "pattern": PATTERNS,
    "description": st.text(max_size=5),
    "secret": st.booleans(),
}


def _leaf_keywords() -> st.SearchStrategy[dict[str, Any]]:
    """A few keywords at a time: one the quick check does not handle makes the whole schema
    jsonschema's, so schemas of many keywords would rarely test the quick check at all."""
    return st.lists(st.sampled_from(sorted(LEAF_KEYWORDS)), max_size=3, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: LEAF_KEYWORDS[k] for k in keys})
    )


_nested = st.recursive(
    st.one_of(_leaf_keywords(), st.booleans()),
    lambda inner: st.one_of(
        st.builds(
            lambda base, props, extra: {**base, "properties": props, **extra},
            _leaf_keywords(),
            st.dictionaries(NAMES, inner, max_size=3),
            st.fixed_dictionaries({}, optional={"additionalProperties": inner}),
        ),
        st.builds(lambda base, items: {**base, "items": items}, _leaf_keywords(), inner),
        st.builds(lambda first: {"prefixItems": [first]}, inner),
        st.builds(lambda branches: {"anyOf": branches}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda branches: {"oneOf": branches}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda branches: {"allOf": branches}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda negated: {"not": negated}, inner),
    ),
    max_leaves=6,
)
schemas = st.one_of(_leaf_keywords(), _nested)  # flat ones often: most real schemas are


def _jsonschema_valid(schema: Any, instance: Any) -> bool:
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return not any(validator.iter_errors(instance))


def _literals(schema: Any) -> list[Any]:
    """The values a schema names (enum, const, bounds), and their JSON look-alikes: where a
    check that compares the Python way (1 == True == 1.0) goes wrong."""
    found: list[Any] = []
    if isinstance(schema, dict):
        for keyword, value in schema.items():
            if keyword == "enum" and isinstance(value, list):
                found.extend(value)
            elif keyword == "const" or keyword in ("minimum", "maximum"):
                found.append(value)
            elif isinstance(value, dict | list):
                found.extend(_literals(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(_literals(item))
    return found


def _check_against_jsonschema(schema: Any, data: st.DataObject) -> None:
    if not isinstance(schema, dict):
        schema = {"allOf": [schema]}
    near = st.sampled_from([*_literals(schema), *ODD_VALUES])
    values = st.one_of(near, json_values, st.dictionaries(NAMES, near, max_size=3))
    checked = Schema(schema)
    for instance in data.draw(st.lists(values, min_size=4, max_size=20)):
        if checked.certainly_valid(instance):
            assert _jsonschema_valid(schema, instance), (schema, instance)


@settings(max_examples=1500, deadline=None)
@given(schema=_leaf_keywords(), data=st.data())
def test_flat_schemas_the_quick_check_passes_jsonschema_passes(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    _check_against_jsonschema(schema, data)


@settings(max_examples=600, deadline=None)
@given(schema=schemas, data=st.data())
def test_nested_schemas_the_quick_check_passes_jsonschema_passes(
    schema: Any, data: st.DataObject
) -> None:
    _check_against_jsonschema(schema, data)


@settings(max_examples=200, deadline=None)
@given(schema=schemas, instances=st.lists(json_values, min_size=1, max_size=8))
def test_violations_are_jsonschemas(schema: Any, instances: list[Any]) -> None:
    if not isinstance(schema, dict):
        schema = {"allOf": [schema]}
    checked = Schema(schema)
    for instance in instances:
        assert (checked.violations(instance) == []) is _jsonschema_valid(schema, instance), (
            schema,
            instance,
        )
