"""Forms made from a blueprint's `params` JSON Schema, and the params read back from a post.

Pure functions, no I/O. The generated form does not check values itself: it turns what the
browser sends into JSON of the schema's types and leaves every check to the one validator the
API uses, whose 422 details (`path` = JSON path in the request body) are put back next to the
field they name. A value that cannot even be read (a JSON field that is not JSON) is reported
at its field here, before anything is sent.

Widgets: `enum` → select, `boolean` → checkbox, `integer`/`number` → number input, an array of
plain values → one value per line, a nested object with `properties` → a fieldset of its own
fields, anything else (free objects, arrays of objects, `oneOf`…) → a JSON text area.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Widget = Literal[
    "text",
    "password",
    "email",
    "url",
    "number",
    "checkbox",
    "select",
    "lines",
    "json",
    "group",
]
_PLAIN = ("string", "integer", "number", "boolean")
_REQUIRED = re.compile(r"'([^']+)' is a required property")


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True, slots=True)
class FormField:
    """One input (or a group of them) of a generated form."""

    name: str  # the form field name: `params.channel`, `params.limits.max`
    path: str  # the JSON path of its value in the request body: `$.params.channel`
    label: str
    widget: Widget
    required: bool = False
    description: str | None = None
    value: str = ""
    checked: bool = False
    options: tuple[Option, ...] = ()
    error: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: str | None = None
    children: tuple[FormField, ...] = ()
    scope: str = ""  # tells apart the ids of forms of the same fields on one page

    @property
    def id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.scope + self.name)


def scoped(fields: Sequence[FormField], scope: str) -> list[FormField]:
    """`fields` with ids of their own on a page that shows several forms of them."""
    return [
        replace(f, scope=f"{scope}-", children=tuple(scoped(f.children, scope))) for f in fields
    ]


@dataclass(frozen=True, slots=True)
class ReadForm:
    """Params read from a post; `errors` maps a JSON path to why its field could not be read."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)


def _type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    return kind if isinstance(kind, str) else None


def _is_group(schema: Mapping[str, Any]) -> bool:
    return _type(schema) == "object" and isinstance(schema.get("properties"), dict)


def _lines_item_type(schema: Mapping[str, Any]) -> str | None:
    """The item type of an array edited one value per line, or None when it is not one."""
    if _type(schema) != "array":
        return None
    items = schema.get("items")
    if not isinstance(items, dict) or "enum" in items:
        return None
    kind = _type(items)
    return kind if kind in ("string", "integer", "number") else None


def _widget(schema: Mapping[str, Any]) -> Widget:
    if isinstance(schema.get("enum"), list):
        return "select"
    if _is_group(schema):
        return "group"
    if _lines_item_type(schema) is not None:
        return "lines"
    kind = _type(schema)
    if kind == "boolean":
        return "checkbox"
    if kind in ("integer", "number"):
        return "number"
    if kind == "string":
        if schema.get("secret"):
            return "password"  # rollout-yaml's mark on credential fields: never shown again
        fmt = schema.get("format")
        return "email" if fmt == "email" else "url" if fmt in ("uri", "url") else "text"
    return "json"


def option_value(value: Any) -> str:
    """How an enum value travels in a form: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _shown(value: Any, widget: Widget) -> str:
    if value is None or widget == "password":
        return ""
    if widget == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if widget == "json":
        return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if widget == "select":
        return option_value(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _label(key: str, schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    return title if isinstance(title, str) and title else key.replace("_", " ")


def build_fields(
    schema: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    *,
    prefix: str = "params",
    use_defaults: bool = True,
) -> list[FormField]:
    """The fields of an object schema, filled with `values` (or the schema's defaults) and
    the error of each field's JSON path (`$.params.channel`)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = set(schema.get("required") or ())
    given = values or {}
    found = errors or {}
    out = []
    for key, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        name = f"{prefix}.{key}"
        path = "$." + name
        widget = _widget(sub)
        present = key in given
        value = given.get(key) if present else (sub.get("default") if use_defaults else None)
        description = sub.get("description")
        base = FormField(
            name=name,
            path=path,
            label=_label(key, sub),
            widget=widget,
            required=key in required,
            description=description if isinstance(description, str) else None,
            error=found.get(path),
        )
        if widget == "group":
            nested = value if isinstance(value, dict) else {}
            children = build_fields(sub, nested, found, prefix=name, use_defaults=use_defaults)
            out.append(replace(base, children=tuple(children)))
            continue
        numeric = widget == "number"
        out.append(
            replace(
                base,
                value=_shown(value, widget),
                checked=value is True,
                options=_options(sub, value, base.required) if widget == "select" else (),
                minimum=_number(sub.get("minimum")) if numeric else None,
                maximum=_number(sub.get("maximum")) if numeric else None,
                step=("1" if _type(sub) == "integer" else "any") if numeric else None,
            )
        )
    return out


def _options(schema: Mapping[str, Any], value: Any, required: bool) -> tuple[Option, ...]:
    """The enum's choices; a blank first one unless a required field already has a value."""
    chosen = option_value(value) if value is not None else None
    blank = () if required and value is not None else (Option("", "—", value is None),)
    choices = tuple(
        Option(option_value(c), str(c), option_value(c) == chosen) for c in schema["enum"]
    )
    return blank + choices


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_form(
    schema: Mapping[str, Any], form: Mapping[str, Sequence[str]], *, prefix: str = "params"
) -> ReadForm:
    """The params a post holds, typed after the schema. Empty fields are left out (the
    validator then says whether they were required); a value of the wrong type is kept as
    the text given, for the validator to report at its path."""
    errors: dict[str, str] = {}
    values = _read_object(schema, form, prefix, errors)
    return ReadForm(values, errors)


def _read_object(
    schema: Mapping[str, Any],
    form: Mapping[str, Sequence[str]],
    prefix: str,
    errors: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return out
    for key, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        name = f"{prefix}.{key}"
        widget = _widget(sub)
        if widget == "group":
            nested = _read_object(sub, form, name, errors)
            if nested:
                out[key] = nested
            continue
        raw = form.get(name)
        text = raw[-1] if raw else None
        if widget == "checkbox":
            out[key] = text is not None and text != ""
            continue
        if text is None or text.strip() == "":
            continue
        try:
            out[key] = _read_value(sub, widget, text)
        except ValueError as exc:
            errors["$." + name] = str(exc)
            out[key] = text  # shown again as typed; nothing is sent while errors remain
    return out


def _read_value(schema: Mapping[str, Any], widget: Widget, text: str) -> Any:
    if widget == "select":
        for choice in schema["enum"]:
            if option_value(choice) == text:
                return choice
        return text
    if widget == "lines":
        kind = _lines_item_type(schema) or "string"
        return [_scalar(kind, line.strip()) for line in text.splitlines() if line.strip()]
    if widget == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
    return _scalar(_type(schema) or "string", text.strip() if widget == "number" else text)


def _scalar(kind: str, text: str) -> Any:
    """`text` as `kind` when it reads as one; else the text itself (the validator says why)."""
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", text) else number
    return text


def field_errors(
    details: Sequence[Mapping[str, Any]], fields: Sequence[FormField]
) -> tuple[dict[str, str], list[str]]:
    """Where each 422 detail belongs: {JSON path of a field: message}, and the messages that
    name no field (shown above the form). A missing required property is reported by JSON
    Schema at its parent object; it is moved to the property's own field."""
    known = {f.path for f in _flatten(fields)}
    placed: dict[str, str] = {}
    loose: list[str] = []
    for detail in details:
        message = str(detail.get("message") or "invalid")
        path = str(detail.get("path") or "$")
        target = _field_of(path, message, known)
        if target is None:
            loose.append(message)
        elif target in placed:
            placed[target] += "; " + message
        else:
            placed[target] = message
    return placed, loose


def _field_of(path: str, message: str, known: set[str]) -> str | None:
    named = _REQUIRED.search(message)
    if named and f"{path}.{named.group(1)}" in known:
        return f"{path}.{named.group(1)}"
    candidate = re.sub(r"\[\d+\]", "", path)  # `$.params.labels[1]` → the labels field
    while candidate and candidate != "$":
        if candidate in known:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return None


def _flatten(fields: Sequence[FormField]) -> list[FormField]:
    out: list[FormField] = []
    for f in fields:
        out.append(f)
        out.extend(_flatten(f.children))
    return out
