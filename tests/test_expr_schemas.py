"""JSON Schema helpers: `$ref` resolution, meta-schema checks, violations, field lookups."""

from __future__ import annotations

import copy

import pytest

from rollout_yaml.expr.schemas import (
    MissingField,
    Schema,
    SchemaProblem,
    Violation,
    check_schema,
    find_missing_field,
    property_names,
    resolve_refs,
)

SHARED = {
    "address": {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
    },
    "person": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "home": {"$ref": "#/schemas/address"}},
    },
    "node": {
        "type": "object",
        "properties": {"value": {"type": "integer"}, "next": {"$ref": "#/schemas/node"}},
    },
    "ping": {"$ref": "#/schemas/pong"},
    "pong": {"$ref": "#/schemas/ping"},
}


# -- resolve_refs ----------------------------------------------------------------------------


def test_resolve_refs_inlines_nested_references():
    resolved = resolve_refs({"$ref": "#/schemas/person"}, SHARED)
    assert resolved == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "home": SHARED["address"]},
    }


def test_resolve_refs_inside_lists_and_combinators():
    schema = {
        "type": "object",
        "properties": {"people": {"type": "array", "items": {"$ref": "#/schemas/person"}}},
        "anyOf": [{"$ref": "#/schemas/address"}, {"type": "null"}],
    }
    resolved = resolve_refs(schema, SHARED)
    assert resolved["properties"]["people"]["items"]["properties"]["home"] == SHARED["address"]
    assert resolved["anyOf"] == [SHARED["address"], {"type": "null"}]


def test_sibling_keys_override_the_referenced_schema():
    resolved = resolve_refs(
        {"$ref": "#/schemas/address", "description": "Home", "required": []}, SHARED
    )
    assert resolved["description"] == "Home"
    assert resolved["required"] == []
    assert resolved["properties"] == SHARED["address"]["properties"]
    assert "$ref" not in resolved


def test_recursive_reference_becomes_an_open_schema():
    resolved = resolve_refs({"$ref": "#/schemas/node"}, SHARED)
    assert resolved == {
        "type": "object",
        "properties": {"value": {"type": "integer"}, "next": {}},
    }
    assert resolve_refs({"$ref": "#/schemas/ping"}, SHARED) == {}


def test_resolve_refs_does_not_modify_its_inputs():
    shared = copy.deepcopy(SHARED)
    schema = {"properties": {"p": {"$ref": "#/schemas/person"}}}
    resolve_refs(schema, shared)
    assert shared == SHARED
    assert schema == {"properties": {"p": {"$ref": "#/schemas/person"}}}


def test_schemas_without_refs_are_returned_equal():
    schema = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}}}
    assert resolve_refs(schema, SHARED) == schema


@pytest.mark.parametrize(
    "ref", ["#/schemas/nope", "#/definitions/address", "other.json#/x", "#/schemas/", "address"]
)
def test_unknown_reference_is_ry207(ref):
    with pytest.raises(SchemaProblem) as info:
        resolve_refs({"$ref": ref}, SHARED)
    assert info.value.code == "RY207"
    assert repr(ref) in str(info.value)
    assert info.value.path == ("$ref",)


def test_unknown_reference_deep_inside_is_ry207():
    with pytest.raises(SchemaProblem) as info:
        resolve_refs({"properties": {"x": {"$ref": "#/schemas/nope"}}}, SHARED)
    assert info.value.code == "RY207"


def test_unknown_reference_deep_inside_reports_its_path():
    with pytest.raises(SchemaProblem) as info:
        resolve_refs({"properties": {"x": {"$ref": "#/schemas/nope"}}}, SHARED)
    assert info.value.path == ("properties", "x", "$ref")


# -- check_schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "strin"}, ("type",)),
        ({"properties": {"a": {"type": 5}}}, ("properties", "a", "type")),
        ({"type": "object", "required": "a"}, ("required",)),
        ({"properties": {"a": {"minLength": -1}}}, ("properties", "a", "minLength")),
        ({"items": {"enum": "x"}}, ("items", "enum")),
    ],
)
def test_invalid_schema_is_ry401_with_its_path(schema, path):
    with pytest.raises(SchemaProblem) as info:
        check_schema(schema)
    assert info.value.code == "RY401"
    assert info.value.path == path
    assert str(info.value).startswith("invalid JSON Schema:")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"token": {"type": "string", "secret": True}}},
        {"type": "object", "properties": {"a": {"type": "string", "optional": True}}},
        {"type": ["string", "null"], "format": "email"},
        {},
        True,
    ],
)
def test_valid_schemas_and_our_annotations_pass(schema):
    check_schema(schema)


# -- violations ------------------------------------------------------------------------------

ORDER = Schema(
    {
        "type": "object",
        "required": ["email", "items"],
        "properties": {
            "email": {"type": "string", "format": "email"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"qty": {"type": "integer", "minimum": 1}},
                },
            },
            "customer": {"type": "object", "properties": {"age": {"type": "integer"}}},
        },
    }
)


def test_valid_instance_has_no_violations():
    assert ORDER.violations({"email": "ada@example.com", "items": [{"qty": 1}]}) == []


def test_violations_carry_json_paths():
    found = ORDER.violations(
        {
            "email": "not-an-email",
            "items": [{"qty": 0}, {"qty": "two"}],
            "customer": {"age": "old"},
        }
    )
    assert [(v.json_path, v.validator) for v in found] == [
        ("$.customer.age", "type"),
        ("$.email", "format"),
        ("$.items[0].qty", "minimum"),
        ("$.items[1].qty", "type"),
    ]
    assert "not-an-email" in found[1].message


def test_missing_required_fields_are_at_the_root():
    found = ORDER.violations({})
    assert [(v.json_path, v.validator) for v in found] == [("$", "required"), ("$", "required")]
    assert {v.message for v in found} == {
        "'email' is a required property",
        "'items' is a required property",
    }


def test_wrong_root_type():
    found = ORDER.violations([])
    assert [(v.json_path, v.validator) for v in found] == [("$", "type")]


def test_violation_json_path_format():
    assert Violation(("a", 0, "b"), "m", "type").json_path == "$.a[0].b"
    assert Violation((), "m", "type").json_path == "$"
    assert Violation((3,), "m", "type").json_path == "$[3]"


# -- find_missing_field ----------------------------------------------------------------------

PAYLOAD = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "meta": {"type": "object"},
        "open": {"type": "object", "properties": {"a": {}}, "additionalProperties": True},
        "typed_open": {
            "type": "object",
            "properties": {"a": {}},
            "additionalProperties": {"type": "string"},
        },
        "closed": {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
        "patterned": {"type": "object", "properties": {"a": {}}, "patternProperties": {"^x": {}}},
        "all": {"allOf": [{"type": "object", "properties": {"a": {}}}, {"properties": {"b": {}}}]},
        "any": {
            "anyOf": [
                {"type": "object", "properties": {"a": {}}},
                {"type": "object", "properties": {"b": {}}},
            ]
        },
        "nullable": {"type": ["object", "null"], "properties": {"a": {}}},
    },
}


@pytest.mark.parametrize(
    "path",
    [
        ("customer", "name"),
        ("customer", "address", "city"),
        ("items", 0, "sku"),
        ("items", "0", "sku"),
        ("meta", "anything", "at", "all"),
        ("open", "z"),
        ("typed_open", "z"),
        ("patterned", "xyz"),
        ("all", "a"),
        ("all", "b"),
        ("any", "a"),
        ("any", "b"),
        ("nullable", "a"),
        ("customer", "name", "first"),  # below a string: not the schema's business
        (),
    ],
)
def test_fields_the_schema_allows(path):
    assert find_missing_field(PAYLOAD, path) is None


@pytest.mark.parametrize(
    ("path", "depth", "known"),
    [
        (("customr",), 0, None),
        (("customer", "nmae"), 1, ("address", "name")),
        (("customer", "address", "zip"), 2, ("city",)),
        (("items", 0, "skew"), 2, ("sku",)),
        (("items", "0", "skew"), 2, ("sku",)),
        (("closed", "z"), 1, ("a",)),
        (("all", "c"), 1, ("a", "b")),
        (("any", "c"), 1, ("a", "b")),
        (("nullable", "z"), 1, ("a",)),
    ],
)
def test_fields_the_schema_does_not_list(path, depth, known):
    missing = find_missing_field(PAYLOAD, path)
    assert isinstance(missing, MissingField)
    assert missing.depth == depth
    if known is not None:
        assert missing.known == known
    else:
        assert "customer" in missing.known and missing.known == tuple(sorted(missing.known))


def test_open_schemas_accept_any_field():
    assert find_missing_field({}, ("a", "b")) is None
    assert find_missing_field({"type": "object"}, ("a",)) is None
    assert find_missing_field(True, ("a",)) is None


def test_empty_properties_lists_no_fields():
    assert find_missing_field({"type": "object", "properties": {}}, ("a",)) == MissingField(0, ())


def test_property_names():
    assert property_names(PAYLOAD["properties"]["all"]) == {"a", "b"}
    assert property_names(PAYLOAD["properties"]["open"]) is None
    assert property_names(PAYLOAD["properties"]["meta"]) is None
    assert property_names({"properties": {"a": {}}, "oneOf": [{"properties": {"b": {}}}]}) == {
        "a",
        "b",
    }
    assert property_names("not a schema") is None


# -- the quick check -------------------------------------------------------------------------

QUICK_SCHEMAS = [
    {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["open", "closed"]},
            "count": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
            "ratio": {"type": "number", "maximum": 1},
            "email": {"type": "string", "format": "email", "maxLength": 20},
            "code": {"type": "string", "pattern": "^[A-Z]{2}$", "minLength": 2},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
            "flag": {"enum": [True, None, 1]},
            "fixed": {"const": "x"},
            "any": {"type": ["string", "null"], "description": "either", "secret": True},
        },
    },
    {"type": "object", "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}},
    {"type": "object", "properties": {"a": {"type": []}}},
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"properties": {"when": {"type": "string", "format": "date-time"}}},
    {"type": "array", "prefixItems": [{"type": "string"}]},
]
QUICK_VALUES = [
    {},
    [],
    "open",
    None,
    {"id": "a"},
    {"id": 1},
    {"status": "open"},
    {"status": "opened"},
    {"status": "open", "count": 3, "ratio": 0.5, "email": "a@b.co", "code": "AB"},
    {"status": "open", "count": True},
    {"status": "open", "count": 2.0},
    {"status": "open", "count": 10},
    {"status": "open", "count": -1},
    {"status": "open", "ratio": 1.5},
    {"status": "open", "email": "not an email"},
    {"status": "open", "email": "a-very-long-address@example.com"},
    {"status": "open", "code": "abc"},
    {"status": "open", "tags": []},
    {"status": "open", "tags": ["a", "b", "c"]},
    {"status": "open", "tags": ["a", 1]},
    {"status": "open", "flag": True},
    {"status": "open", "flag": 1},
    {"status": "open", "flag": 1.0},
    {"status": "open", "flag": False},
    {"status": "open", "fixed": "y"},
    {"status": "open", "any": None},
    {"status": "open", "any": 3},
    {"status": "open", "other": 1},
    {"x": 1, "y": "2"},
    {"a": "s"},
    {"a": 1},
    {"when": "2026-12-01T10:00:00Z"},
    {"when": "yesterday"},
    ["s"],
]


@pytest.mark.parametrize("schema", QUICK_SCHEMAS)
def test_the_quick_check_passes_only_values_jsonschema_passes(schema):
    compiled = Schema(schema)
    passed = 0
    for value in QUICK_VALUES:
        if compiled.certainly_valid(value):
            passed += 1
            assert compiled.violations(value) == [], value
    assert passed or compiled.certainly_valid({}) is False


def test_the_quick_check_passes_the_common_valid_values():
    compiled = Schema(QUICK_SCHEMAS[1])
    for value in QUICK_VALUES[6], QUICK_VALUES[8], QUICK_VALUES[10], QUICK_VALUES[20]:
        assert compiled.certainly_valid(value)
    assert not compiled.certainly_valid({"status": "open", "flag": 1.0})  # left to jsonschema
    assert not Schema(QUICK_SCHEMAS[3]).certainly_valid({"a": "s"})  # anyOf: jsonschema's


def test_the_quick_check_can_leave_required_names_to_later():
    compiled = Schema(QUICK_SCHEMAS[1] | {"required": ["status", "code"]})
    assert not compiled.certainly_valid({"status": "open"})
    assert compiled.certainly_valid({"status": "open"}, {"code"})
    assert not compiled.certainly_valid({"status": "opened"}, {"code"})
    assert not compiled.certainly_valid({}, {"code"})
    for value in QUICK_VALUES:
        if compiled.certainly_valid(value, {"code", "status"}):
            assert all(
                v.validator == "required" and v.missing_property in ("code", "status")
                for v in compiled.violations(value)
            ), value


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 1.0},
        {"type": ["string", "string"]},
        {"type": []},
        {"required": ["a", "a"]},
        {"pattern": "("},
        {"properties": {"a": {"type": "strin"}}},
        {"anyOf": []},
        {"minimum": "1"},
        {"$id": "#frag"},
        {"items": {"enum": "a"}},
    ],
)
def test_schemas_the_quick_meta_check_leaves_to_jsonschema_are_judged_as_before(schema):
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        with pytest.raises(SchemaProblem) as raised:
            check_schema(schema)
        assert str(raised.value) == f"invalid JSON Schema: {exc.message}"
        assert raised.value.path == tuple(exc.absolute_path)
    else:
        check_schema(schema)


def test_common_schemas_pass_the_meta_check():
    for schema in QUICK_SCHEMAS[:4]:
        check_schema(schema)
    check_schema({"type": "object", "x-vendor": {"type": 1}, "secret": True})
