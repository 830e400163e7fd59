"""What promoting one environment's definitions over another's changes, in the user's terms:
per App its version, auth, and each trigger and action added, removed or changed (request,
schemas, auth); and each blueprint. Compares loaded models, so a comment or a reordering
changes files but not meaning, and the diff says so."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from rollout_yaml.config.loader import Definitions, Loaded
from rollout_yaml.config.models import Blueprint, Connector
from rollout_yaml.config.models.connector import TRIGGER_KINDS
from rollout_yaml.config.release import FileChanges, file_order
from rollout_yaml.expr.schemas import SchemaProblem, resolve_refs

Kind = Literal["added", "removed", "changed"]
SIGN: dict[str, str] = {"added": "+", "removed": "-", "changed": "~"}


@dataclass(frozen=True)
class Change:
    """One trigger, action or blueprint added, removed or changed, and in what."""

    key: str
    change: Kind
    aspects: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "change": self.change,
            "aspects": list(self.aspects),
            "details": list(self.details),
        }


@dataclass(frozen=True)
class AppChange:
    """One App (connector) added, removed or changed."""

    app: str
    change: Kind
    version_from: str | None
    version_to: str | None
    aspects: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    triggers: tuple[Change, ...] = ()
    actions: tuple[Change, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "change": self.change,
            "version": {"from": self.version_from, "to": self.version_to},
            "aspects": list(self.aspects),
            "details": list(self.details),
            "triggers": [c.to_dict() for c in self.triggers],
            "actions": [c.to_dict() for c in self.actions],
        }


@dataclass(frozen=True)
class ReleaseDiff:
    """From what `target` runs now to what `source` runs."""

    source: str
    target: str
    apps: tuple[AppChange, ...]
    blueprints: tuple[Change, ...]
    files: FileChanges

    @property
    def changes_meaning(self) -> bool:
        return bool(self.apps or self.blueprints)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "changed": bool(self.files) or self.changes_meaning,
            "apps": [a.to_dict() for a in self.apps],
            "blueprints": [b.to_dict() for b in self.blueprints],
            "files": self.files.to_dict(),
        }

    def to_text(self) -> str:
        head = f"{self.source} → {self.target}"
        if not self.files and not self.changes_meaning:
            return f"{head}: no change ({self.target} already runs what {self.source} runs)"
        lines = [f"{head}:"]
        for app in self.apps:
            lines.extend(_app_text(app))
        for blueprint in self.blueprints:
            lines.extend(_change_text("blueprint", blueprint, indent=""))
        if self.files and not self.changes_meaning:
            lines.append("no change in meaning (comments, formatting or order only)")
        lines.append("files: " + _files_text(self.files))
        return "\n".join(lines)


def _app_text(app: AppChange) -> Iterator[str]:
    if app.change == "added":
        yield f"+ app {app.app} {app.version_to} (new)"
    elif app.change == "removed":
        yield f"- app {app.app} {app.version_from} (removed)"
    else:
        version = (
            f"version {app.version_from} → {app.version_to}"
            if app.version_from != app.version_to
            else f"version {app.version_to} (unchanged)"
        )
        yield f"~ app {app.app}: {version}"
    for detail in app.details:
        yield f"    {detail}"
    for change in app.triggers:
        yield from _change_text("trigger", change, indent="  ")
    for change in app.actions:
        yield from _change_text("action", change, indent="  ")


def _change_text(noun: str, change: Change, indent: str) -> Iterator[str]:
    what = f" ({', '.join(change.aspects)})" if change.aspects else ""
    yield f"{indent}{SIGN[change.change]} {noun} {change.key}{what}"
    for detail in change.details:
        yield f"{indent}    {detail}"


def _files_text(files: FileChanges) -> str:
    signs = {
        **{name: "+" for name in files.added},
        **{name: "~" for name in files.changed},
        **{name: "-" for name in files.removed},
    }
    return ", ".join(f"{signs[name]}{name}" for name in sorted(signs, key=file_order)) or "none"


# -- comparing ---------------------------------------------------------------------------------


def diff_definitions(
    old: Definitions, new: Definitions, source: str, target: str, files: FileChanges
) -> ReleaseDiff:
    """`old` is what `target` runs now, `new` what `source` runs (and `target` would run)."""
    old_apps = _user_defined(old.connectors)
    new_apps = _user_defined(new.connectors)
    apps = [
        change
        for key in sorted(old_apps.keys() | new_apps.keys())
        if (change := _app_change(key, old_apps.get(key), new_apps.get(key))) is not None
    ]
    old_bps = {k: v.model for k, v in old.blueprints.items()}
    new_bps = {k: v.model for k, v in new.blueprints.items()}
    blueprints = [
        found
        for key in sorted(old_bps.keys() | new_bps.keys())
        if (found := _blueprint_change(key, old_bps.get(key), new_bps.get(key))) is not None
    ]
    return ReleaseDiff(source, target, tuple(apps), tuple(blueprints), files)


def _user_defined(connectors: Mapping[str, Loaded[Connector]]) -> dict[str, Connector]:
    return {k: v.model for k, v in connectors.items() if v.source is not None}


def _dump(model: BaseModel | None) -> Any:
    return None if model is None else model.model_dump(mode="json", by_alias=True)


def _app_change(key: str, old: Connector | None, new: Connector | None) -> AppChange | None:
    if old is None or new is None:
        present = new or old
        assert present is not None
        return AppChange(
            app=key,
            change="added" if old is None else "removed",
            version_from=old.version if old else None,
            version_to=new.version if new else None,
            triggers=tuple(
                Change(k, "added" if old is None else "removed") for k in present.triggers
            ),
            actions=tuple(
                Change(k, "added" if old is None else "removed") for k in present.actions
            ),
        )
    aspects: list[str] = []
    details: list[str] = []
    if old.auth.type != new.auth.type:
        aspects.append("auth")
        details.append(f"auth: type {old.auth.type} → {new.auth.type}")
    elif _dump(old.auth) != _dump(new.auth):
        aspects.append("auth")
        details.extend(_leaf_changes(_dump(old.auth), _dump(new.auth), "auth"))
    for name in ("base_url", "defaults", "rate_limit"):
        before, after = _plain(getattr(old, name)), _plain(getattr(new, name))
        if before != after:
            aspects.append(name)
            details.extend(_leaf_changes(before, after, name))
    if old.schemas != new.schemas:
        aspects.append("schemas")
        for name in sorted(old.schemas.keys() | new.schemas.keys()):
            before, after = old.schemas.get(name), new.schemas.get(name)
            if before != after:
                details.extend(
                    f"schemas.{name}: {line}" for line in _schema_changes(before, after, "field")
                )
    if (old.name, old.description) != (new.name, new.description):
        aspects.append("description")
    if _plain(old.tests) != _plain(new.tests):
        aspects.append("tests")
        count = len(new.tests) - len(old.tests)
        details.append(f"tests: {count:+d}" if count else "tests: changed")
    triggers = _keyed(old.triggers, new.triggers, _trigger_parts, old, new)
    actions = _keyed(old.actions, new.actions, _action_parts, old, new)
    if not (aspects or triggers or actions) and old.version == new.version:
        return None
    return AppChange(
        app=key,
        change="changed",
        version_from=old.version,
        version_to=new.version,
        aspects=tuple(aspects),
        details=tuple(details),
        triggers=tuple(triggers),
        actions=tuple(actions),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _dump(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


Part = tuple[str, str, Any]
"""(aspect, label shown in details, plain value)."""

SCHEMA_NOUNS = {
    "input_schema": "input",
    "payload_schema": "field",
    "output_schema": "output field",
    "params": "param",
}


def _keyed(
    old: Mapping[str, BaseModel],
    new: Mapping[str, BaseModel],
    parts: Callable[[Any, Connector], list[Part]],
    old_connector: Connector,
    new_connector: Connector,
) -> list[Change]:
    changes: list[Change] = []
    for key in sorted(old.keys() | new.keys()):
        if key not in old:
            changes.append(Change(key, "added"))
        elif key not in new:
            changes.append(Change(key, "removed"))
        else:
            before, after = parts(old[key], old_connector), parts(new[key], new_connector)
            change = _compare_parts(key, before, after)
            if change is not None:
                changes.append(change)
    return changes


def _compare_parts(key: str, old: list[Part], new: list[Part]) -> Change | None:
    aspects: list[str] = []
    details: list[str] = []
    before = {label: (aspect, value) for aspect, label, value in old}
    after = {label: (aspect, value) for aspect, label, value in new}
    kind_changed = "kind" in before and before["kind"] != after.get("kind")
    for label in [*before, *(k for k in after if k not in before)]:
        if kind_changed and label.split(".")[0] in TRIGGER_KINDS:
            continue  # `kind: poll → webhook` says it; the old and new specs are not comparable
        aspect, old_value = before.get(label, (after.get(label, ("", None))[0], None))
        new_value = after[label][1] if label in after else None
        if old_value == new_value:
            continue
        if aspect not in aspects:
            aspects.append(aspect)
        if label in SCHEMA_NOUNS:
            details.extend(
                f"{label}: {line}"
                for line in _schema_changes(old_value, new_value, SCHEMA_NOUNS[label])
            )
        elif aspect != "description":
            details.extend(_leaf_changes(old_value, new_value, label))
    if not aspects:
        return None
    return Change(key, "changed", tuple(aspects), tuple(details))


def _resolved(schema: Any, connector: Connector) -> Any:
    """A schema with its `$ref`s to the connector's `schemas:` inlined: a change to a shared
    schema is a change to every trigger and action using it."""
    if schema is None:
        return None
    try:
        return resolve_refs(schema, connector.schemas)
    except SchemaProblem:
        return schema


def _trigger_parts(trigger: Any, connector: Connector) -> list[Part]:
    data = _dump(trigger)
    parts: list[Part] = [
        ("description", "name", data["name"]),
        ("description", "description", data["description"]),
        ("kind", "kind", trigger.kind),
        ("input_schema", "input_schema", _resolved(data["input_schema"], connector)),
        ("payload_schema", "payload_schema", _resolved(data["payload_schema"], connector)),
        ("filter", "filter", data["filter"]),
    ]
    spec = data[trigger.kind] or {}
    for name, value in spec.items():
        if name in ("request", "paginate", "subscribe", "unsubscribe"):
            parts.append(("request", f"{trigger.kind}.{name}", value))
        elif name == "verify":
            parts.append(("verify", f"{trigger.kind}.verify", value))
        else:
            parts.append((trigger.kind, f"{trigger.kind}.{name}", value))
    return parts


def _action_parts(action: Any, connector: Connector) -> list[Part]:
    data = _dump(action)
    return [
        ("description", "name", data["name"]),
        ("description", "description", data["description"]),
        ("input_schema", "input_schema", _resolved(data["input_schema"], connector)),
        ("output_schema", "output_schema", _resolved(data["output_schema"], connector)),
        ("request", "request", data["request"]),
        ("request", "idempotency_header", data["idempotency_header"]),
        ("response", "success", data["success"]),
        ("response", "error", data["error"]),
        ("response", "output", data["output"]),
        ("retry", "retry", data["retry"]),
    ]


def _blueprint_parts(bp: Blueprint) -> list[Part]:
    data = _dump(bp)
    return [
        ("description", "name", data["name"]),
        ("description", "description", data["description"]),
        ("params", "params", data["params"]),
        ("trigger", "trigger", f"{bp.trigger.app}/{bp.trigger.trigger}"),
        ("trigger", "trigger.input", data["trigger"]["input"]),
        ("filter", "filter", data["filter"]),
        ("action", "action", f"{bp.action.app}/{bp.action.action}"),
        ("mapping", "action.input", data["action"]["input"]),
        ("tests", "tests", data["tests"]),
    ]


def _blueprint_change(key: str, old: Blueprint | None, new: Blueprint | None) -> Change | None:
    if old is None:
        assert new is not None
        return Change(
            key,
            "added",
            (),
            (f"{new.trigger.app}/{new.trigger.trigger} → {new.action.app}/{new.action.action}",),
        )
    if new is None:
        return Change(key, "removed")
    change = _compare_parts(key, _blueprint_parts(old), _blueprint_parts(new))
    if change is None:
        return None
    details = tuple(d if not d.startswith("tests:") else "tests changed" for d in change.details)
    return Change(key, "changed", change.aspects, tuple(dict.fromkeys(details)))


# -- details -----------------------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if len(text) <= limit else f"`{text[: limit - 1]}…`"


def _leaf_changes(old: Any, new: Any, path: str, limit: int = 6) -> list[str]:
    """`path: old → new` for each leaf that differs (at most `limit`, then a count)."""
    found: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in [*a, *(k for k in b if k not in a)]:
                walk(a.get(key), b.get(key), f"{at}.{key}")
            return
        if a is None:
            found.append(f"{at}: added {_short(b)}")
        elif b is None:
            found.append(f"{at}: removed (was {_short(a)})")
        else:
            found.append(f"{at}: {_short(a)} → {_short(b)}")

    walk(old, new, path)
    if len(found) > limit:
        return [*found[:limit], f"… and {len(found) - limit} more in {path}"]
    return found


def _fields(schema: Any, prefix: str = "") -> dict[str, tuple[Any, bool]]:
    """Every property a JSON Schema names, by dotted path, with whether it is required."""
    out: dict[str, tuple[Any, bool]] = {}
    if not isinstance(schema, dict):
        return out
    required = set(schema.get("required") or ())
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for name, sub in properties.items():
            path = f"{prefix}{name}"
            out[path] = (sub, name in required)
            out.update(_fields(sub, f"{path}."))
    items = schema.get("items")
    if isinstance(items, dict):
        out.update(_fields(items, f"{prefix.rstrip('.')}[]." if prefix else "[]."))
    return out


def _schema_changes(old: Any, new: Any, noun: str) -> list[str]:
    """A schema change as a user reads it: inputs or fields added, removed, now required."""
    if old is None:
        return ["added"]
    if new is None:
        return ["removed"]
    before, after = _fields(old), _fields(new)
    added = [p for p in after if p not in before]
    removed = [p for p in before if p not in after]

    def nested_in(path: str, tops: list[str]) -> bool:
        return any(path.startswith(f"{top}.") or path.startswith(f"{top}[]") for top in tops)

    lines: list[str] = []
    for path in added:
        if not nested_in(path, added):
            kind = "required" if after[path][1] else "optional"
            lines.append(f"new {kind} {noun} `{path}`")
    for path in removed:
        if not nested_in(path, removed):
            lines.append(f"{noun} `{path}` removed")
    for path, (schema, required) in after.items():
        if path not in before:
            continue
        old_schema, was_required = before[path]
        if required != was_required:
            lines.append(f"{noun} `{path}` {'now required' if required else 'now optional'}")
        old_type = old_schema.get("type") if isinstance(old_schema, dict) else None
        new_type = schema.get("type") if isinstance(schema, dict) else None
        if old_type != new_type:
            lines.append(f"{noun} `{path}` type {_short(old_type)} → {_short(new_type)}")
    if not lines and old != new:
        lines.append("constraints or descriptions changed")
    return lines
