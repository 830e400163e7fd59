"""JSON Schema: `$ref` into a connector's `schemas:`, meta-schema checks, validation with
JSON paths, and the field lookups that static checks use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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
    try:
        Draft202012Validator.check_schema(_strip_annotations(schema))
    except SchemaError as exc:
        raise SchemaProblem(
            "RY401", f"invalid JSON Schema: {exc.message}", tuple(exc.absolute_path)
        ) from exc


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
    """One way an instance fails its schema, at a JSON path such as `$.customer.email`."""

    path: tuple[str | int, ...]
    message: str
    validator: str

    @property
    def json_path(self) -> str:
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out


class Schema:
    """A compiled validator for one schema."""

    __slots__ = ("_validator", "properties", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._validator = Draft202012Validator(schema, format_checker=FormatChecker())
        self.properties = property_names(schema)
        """The property names the schema lists, or None when it leaves them open."""

    def violations(self, instance: Any) -> list[Violation]:
        errors = sorted(self._validator.iter_errors(instance), key=lambda e: list(e.path))
        return [Violation(tuple(e.absolute_path), e.message, str(e.validator)) for e in errors]


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
