"""JSON Schema: `$ref` into a connector's `schemas:`, meta-schema checks, validation with
JSON paths, and the field lookups that static checks use."""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

REF_PREFIX = "#/schemas/"
_NON_SCHEMA_KEYWORDS = frozenset({"secret", "optional"})  # rollout-yaml's own annotations


class SchemaProblem(ValueError):
    def __init__(self, code: str, message: str, path: Sequence[str | int] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.path = tuple(path)


def resolve_refs(
    schema: Any,
    shared: Mapping[str, Any],
    _seen: tuple[str, ...] = (),
    _path: tuple[str | int, ...] = (),
) -> Any:
    """Inline `{"$ref": "#/schemas/name"}` references; a recursive reference becomes `{}`."""
    if isinstance(schema, list):
        return [resolve_refs(item, shared, _seen, (*_path, i)) for i, item in enumerate(schema)]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith(REF_PREFIX) or ref[len(REF_PREFIX) :] not in shared:
            raise SchemaProblem(
                "RY207",
                f"cannot resolve $ref {ref!r}: write "
                f"`{REF_PREFIX}<name>` with a name from `schemas:`",
                (*_path, "$ref"),
            )
        name = ref[len(REF_PREFIX) :]
        if name in _seen:
            return {}
        target = resolve_refs(shared[name], shared, (*_seen, name), _path)
        siblings = {
            k: resolve_refs(v, shared, _seen, (*_path, k)) for k, v in schema.items() if k != "$ref"
        }
        return {**target, **siblings}
    return {k: resolve_refs(v, shared, _seen, (*_path, k)) for k, v in schema.items()}


def check_schema(schema: Any) -> None:
    """Raise SchemaProblem (RY401) when `schema` is not valid JSON Schema (draft 2020-12)."""
    stripped = _strip_annotations(schema)
    if _certainly_a_schema(stripped):
        return
    try:
        Draft202012Validator.check_schema(stripped)
    except SchemaError as exc:
        raise SchemaProblem(
            "RY401", f"invalid JSON Schema: {exc.message}", tuple(exc.absolute_path)
        ) from exc


_META_KEYWORDS = frozenset(
    {
        *Draft202012Validator.VALIDATORS,
        *("$id", "$schema", "$anchor", "$dynamicAnchor", "$vocabulary", "$comment", "$defs"),
        *("title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples"),
        *("format", "contentEncoding", "contentMediaType", "contentSchema", "then", "else"),
        *("definitions", "dependencies", "$recursiveAnchor", "$recursiveRef", "maxContains"),
        "minContains",
    }
)
"""Every keyword the draft 2020-12 meta-schema constrains; it lets any other key be."""
_SIMPLE_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _names(value: Any) -> bool:
    return (
        isinstance(value, list)
        and all(isinstance(v, str) for v in value)
        and len(set(value)) == len(value)
    )


def _type_value(value: Any) -> bool:
    if isinstance(value, str):
        return value in _SIMPLE_TYPES
    return bool(value) and _names(value) and all(v in _SIMPLE_TYPES for v in value)


def _regex(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def _schemas(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_certainly_a_schema(v) for v in value)


_META_CHECKS: dict[str, Callable[[Any], bool]] = {
    "type": _type_value,
    "enum": lambda v: isinstance(v, list),
    "const": lambda v: True,
    "default": lambda v: True,
    "title": lambda v: isinstance(v, str),
    "description": lambda v: isinstance(v, str),
    "$comment": lambda v: isinstance(v, str),
    "format": lambda v: isinstance(v, str),
    "examples": lambda v: isinstance(v, list),
    "deprecated": lambda v: isinstance(v, bool),
    "readOnly": lambda v: isinstance(v, bool),
    "writeOnly": lambda v: isinstance(v, bool),
    "uniqueItems": lambda v: isinstance(v, bool),
    "required": _names,
    "pattern": _regex,
    "properties": lambda v: isinstance(v, dict) and all(_certainly_a_schema(s) for s in v.values()),
    "additionalProperties": lambda v: _certainly_a_schema(v),
    "items": lambda v: _certainly_a_schema(v),
    "not": lambda v: _certainly_a_schema(v),
    "allOf": _schemas,
    "anyOf": _schemas,
    "oneOf": _schemas,
    **dict.fromkeys(
        ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"),
        _count,
    ),
    **dict.fromkeys(
        ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    ),
}


def _certainly_a_schema(schema: Any) -> bool:
    """True only when the draft 2020-12 meta-schema accepts `schema`, for schemas written with
    the common keywords; False means "ask jsonschema" (whose meta-schema check costs
    milliseconds a schema). Keys the meta-schema does not name may hold anything."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        check = _META_CHECKS.get(keyword)
        if check is None:
            if keyword in _META_KEYWORDS:
                return False
            continue
        if not check(value):
            return False
    return True


def _strip_annotations(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: _strip_annotations(v) for k, v in schema.items() if k not in _NON_SCHEMA_KEYWORDS
        }
    if isinstance(schema, list):
        return [_strip_annotations(v) for v in schema]
    return schema


@dataclass(frozen=True, slots=True)
class Violation:
    """One way an instance fails its schema, at a JSON path such as `$.customer.email`.

    `message` is jsonschema's wording (what API answers carry); `describe()` says the same in
    the validator's words, for diagnostics about a file.
    """

    path: tuple[str | int, ...]
    message: str
    validator: str
    expected: Any = field(default=None, compare=False)
    """The keyword's value in the schema (the type, the enum, the pattern, the bound)."""
    instance: Any = field(default=None, compare=False)

    @property
    def json_path(self) -> str:
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    @property
    def missing_property(self) -> str:
        """For a `required` violation: the name of the missing property."""
        return self.message.split("'")[1] if "'" in self.message else ""

    def describe(self) -> str:
        """`must be a string, got 123 (an integer)`: what the value should be, and what it is."""
        got, expected = self.instance, self.expected
        if self.validator == "type":
            kinds = expected if isinstance(expected, list) else [expected]
            wanted = " or ".join(_TYPE_NAMES.get(str(k), str(k)) for k in kinds)
            return f"must be {wanted}, got {_literal(got)} ({_kind_of(got)})"
        if self.validator == "enum" and isinstance(expected, list):
            return f"{_literal(got)} is not one of " + ", ".join(_literal(v) for v in expected)
        if self.validator == "const":
            return f"must be {_literal(expected)}, got {_literal(got)}"
        if self.validator == "pattern":
            return f"{_literal(got)} does not match the pattern `{expected}`"
        if self.validator in _BOUNDS:
            return f"{_literal(got)} is {_BOUNDS[self.validator]} {expected}"
        if self.validator in ("minLength", "maxLength"):
            bound = "at least" if self.validator == "minLength" else "at most"
            return f"{_literal(got)} is {len(got)} characters long; {bound} {expected} allowed"
        if self.validator == "format":
            return f"{_literal(got)} is not a valid {expected}"
        return self.message


_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_BOUNDS = {
    "minimum": "below the minimum",
    "maximum": "above the maximum",
    "exclusiveMinimum": "not above the exclusive minimum",
    "exclusiveMaximum": "not below the exclusive maximum",
}


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _literal(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class Schema:
    """A compiled validator for one schema."""

    __slots__ = (
        "_quick",
        "_quick_made",
        "_quick_open",
        "_required",
        "_validator",
        "properties",
        "schema",
    )

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(schema, format_checker=FormatChecker())
        self.properties = property_names(schema)
        """The property names the schema lists, or None when it leaves them open."""
        self._quick: Check | None = None
        self._quick_open: Check | None = None  # the same without the top-level `required`
        self._required: tuple[str, ...] = ()
        self._quick_made = False  # made on first use: most schemas of a daemon never need it

    def certainly_valid(self, instance: Any, may_be_missing: Collection[str] = ()) -> bool:
        """True only when `violations(instance)` would be empty (with `may_be_missing`: would
        hold nothing but `required` ones for those top-level names, the inputs a template fills
        in later), found without jsonschema, which costs tens of microseconds per value; False
        means "ask jsonschema" (invalid, or a keyword the quick check does not handle)."""
        if not self._quick_made:
            self._make_quick()
        quick = self._quick_open if may_be_missing else self._quick
        if quick is None:
            return False
        try:
            if not quick(instance):
                return False
        except Exception:  # a format checker that raised: jsonschema says what happens
            return False
        if may_be_missing and isinstance(instance, dict):
            return all(name in instance or name in may_be_missing for name in self._required)
        return True

    def _make_quick(self) -> None:
        formats = self._validator.format_checker
        self._quick = quick_check(self.schema, formats)
        if self._quick is not None:  # then `required`, if there, is a list
            rest = {k: v for k, v in self.schema.items() if k != "required"}
            self._quick_open = quick_check(rest, formats)
            self._required = tuple(self.schema.get("required", ()))
        self._quick_made = True

    def violations(self, instance: Any) -> list[Violation]:
        """What jsonschema finds wrong with `instance`; a value the quick check passes is not
        shown to jsonschema at all (the daemon checks every event's payload and every run's
        input: jsonschema cost ~0.1 ms a value there)."""
        if self.certainly_valid(instance):
            return []
        return self.jsonschema_violations(instance)

    def jsonschema_violations(self, instance: Any) -> list[Violation]:
        """`violations` without the quick check, for a caller that already asked it."""
        errors = sorted(self._validator.iter_errors(instance), key=lambda e: list(e.path))
        return [
            Violation(
                tuple(e.absolute_path), e.message, str(e.validator), e.validator_value, e.instance
            )
            for e in errors
        ]


Check = Callable[[Any], bool]
"""True when a value certainly satisfies a schema; False when unsure."""

_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)
"""Keywords jsonschema acts on; it ignores any other key (annotations, `secret`, `$id`)."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}
"""jsonschema's draft 2020-12 type tests (`number` narrowed to int and float: any other
number is left to jsonschema)."""


def _always(_: Any) -> bool:
    return True


def _never(_: Any) -> bool:
    return False


def quick_check(schema: Any, formats: FormatChecker | None) -> Check | None:
    """A check that passes a value only when jsonschema (draft 2020-12, with `formats`) finds
    nothing wrong with it, for schemas made of the common keywords (type, enum, const,
    properties, required, additionalProperties, items, string, number and array bounds,
    pattern, format); None when the schema uses any other keyword."""
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        return None
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword not in _KEYWORDS:
            continue
        make = _MAKERS.get(keyword)
        check = make(value, schema, formats) if make is not None else None
        if check is None:
            return None
        checks.append(check)
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]

    def all_of(value: Any) -> bool:
        for check in checks:  # a loop: a generator in all() costs more than the checks
            if not check(value):
                break
        else:
            return True
        return False

    return all_of


def _type(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
    names = value if isinstance(value, list) else [value]
    tests: list[Check] = []
    for name in names:
        test = _TYPES.get(name) if isinstance(name, str) else None
        if test is None:
            return None
        tests.append(test)
    if not tests:  # `type: []` refuses everything
        return _never
    if len(tests) == 1:
        return tests[0]
    return lambda v: any(test(v) for test in tests)


def _one_of_values(values: list[Any]) -> Check:
    """Equal to one of `values` as jsonschema compares: strings by value, the rest only when
    they are the very same object (None, True, False); anything else is left unsure."""
    strings = frozenset(v for v in values if isinstance(v, str))
    others = [v for v in values if not isinstance(v, str)]
    return lambda v: (isinstance(v, str) and v in strings) or any(v is o for o in others)


def _enum(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
    return _one_of_values(value) if isinstance(value, list) else None


def _const(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
    return _one_of_values([value])


def _size(
    kind: type[str] | type[list[Any]], test: Callable[[int, Any], bool]
) -> Callable[..., Check | None]:
    """`minLength`, `maxItems` and the like: a bound on the length of values of `kind`."""

    def make(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
        if not _is_integer(value):
            return None
        return lambda v: not isinstance(v, kind) or test(len(v), value)

    return make


def _pattern(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
    if not isinstance(value, str):
        return None
    try:
        compiled = re.compile(value)
    except re.error:
        return None
    return lambda v: not isinstance(v, str) or compiled.search(v) is not None


def _format(value: Any, _: Mapping[str, Any], formats: FormatChecker | None) -> Check | None:
    if formats is None:
        return _always
    return lambda v: formats.conforms(v, value)


def _bound(test: Callable[[Any, Any], bool]) -> Callable[..., Check | None]:
    def make(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
        if not _is_number(value):
            return None
        # a number of another kind (Decimal, Fraction) is left to jsonschema
        return lambda v: (
            test(v, value)
            if _is_number(v)
            else not isinstance(v, numbers.Number) or isinstance(v, bool)
        )

    return make


def _required(value: Any, _: Mapping[str, Any], __: FormatChecker | None) -> Check | None:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return None
    names = frozenset(value)
    return lambda v: not isinstance(v, dict) or v.keys() >= names


def _properties(
    value: Any, schema: Mapping[str, Any], formats: FormatChecker | None
) -> Check | None:
    if not isinstance(value, dict) or "patternProperties" in schema:
        return None
    subs: list[tuple[Any, Check]] = []
    for name, sub in value.items():
        check = quick_check(sub, formats)
        if check is None:
            return None
        if check is not _always:
            subs.append((name, check))
    extra = schema.get("additionalProperties", True)
    if extra is True:
        others: Check | None = _always
    elif extra is False:
        others = None
    else:
        others = quick_check(extra, formats)
        if others is None:
            return None
    known = value

    def properties(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        for name, check in subs:
            if name in v and not check(v[name]):
                return False
        if others is _always:
            return True
        for name, item in v.items():
            if name not in known and (others is None or not others(item)):
                return False
        return True

    return properties


def _additional_alone(
    value: Any, schema: Mapping[str, Any], formats: FormatChecker | None
) -> Check | None:
    """`additionalProperties` without `properties` (with them, `_properties` checks both)."""
    if "properties" in schema:
        return _always
    return _properties({}, schema, formats)


def _items(value: Any, schema: Mapping[str, Any], formats: FormatChecker | None) -> Check | None:
    if "prefixItems" in schema:
        return None
    check = quick_check(value, formats)
    if check is None:
        return None
    return lambda v: not isinstance(v, list) or all(check(item) for item in v)


_MAKERS: dict[str, Callable[[Any, Mapping[str, Any], FormatChecker | None], Check | None]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    "minLength": _size(str, lambda n, b: n >= b),
    "maxLength": _size(str, lambda n, b: n <= b),
    "pattern": _pattern,
    "format": _format,
    "minimum": _bound(lambda v, b: v >= b),
    "maximum": _bound(lambda v, b: v <= b),
    "exclusiveMinimum": _bound(lambda v, b: v > b),
    "exclusiveMaximum": _bound(lambda v, b: v < b),
    "required": _required,
    "properties": _properties,
    "additionalProperties": _additional_alone,
    "items": _items,
    "minItems": _size(list, lambda n, b: n >= b),
    "maxItems": _size(list, lambda n, b: n <= b),
}


def property_names(schema: Any) -> set[str] | None:
    """The property names a schema lists, or None when it leaves them open."""
    if not isinstance(schema, dict):
        return None
    branches = [schema]
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches.extend(b for b in schema.get(keyword, ()) if isinstance(b, dict))
    names: set[str] = set()
    listed = False
    for branch in branches:
        if "properties" in branch:
            listed = True
            names.update(branch["properties"])
        if branch.get("additionalProperties") not in (None, False) or "patternProperties" in branch:
            return None
        if (
            branch is not schema
            and "properties" not in branch
            and branch.get("type") in (None, "object")
            and not _only_constraints(branch)
        ):
            return None
    return names if listed else None


def _only_constraints(branch: Mapping[str, Any]) -> bool:
    return set(branch) <= {"required", "description", "title", "type"}


def _subschema(schema: Any, part: str | int) -> Any:
    if not isinstance(schema, dict):
        return None
    if isinstance(part, int):
        items = schema.get("items")
        return items if isinstance(items, dict) else None
    for branch in _branches(schema):
        props = branch.get("properties")
        if isinstance(props, dict) and part in props:
            return props[part]
    return None


def _branches(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, ()):
            if isinstance(branch, dict):
                yield branch


@dataclass(frozen=True, slots=True)
class MissingField:
    """`path[:depth]` is fine; `path[depth]` is not among `known`."""

    depth: int
    known: tuple[str, ...]


def find_missing_field(schema: Any, path: Sequence[str | int]) -> MissingField | None:
    """Walk `path` through `schema`; report the first name the schema's properties don't list."""
    current = schema
    for depth, part in enumerate(path):
        if isinstance(part, int):
            current = _subschema(current, part)
            if current is None:
                return None
            continue
        if isinstance(current, dict) and current.get("type") == "array" and part.isdigit():
            current = _subschema(current, 0)
            continue
        names = property_names(current)
        if names is None:
            return None
        if part not in names:
            return MissingField(depth, tuple(sorted(names)))
        current = _subschema(current, part)
    return None
