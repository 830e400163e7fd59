"""pydantic validation errors → diagnostics that point at the exact YAML node."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.source import SourceFile
from rollout_yaml.config.suggest import did_you_mean

_OWN_CODE = re.compile(r"^RY\d{3}$")


def validation_diagnostics(
    exc: ValidationError,
    source: SourceFile,
    model: type[BaseModel],
    data: Any,
    base: Sequence[str | int] = (),
) -> list[Diagnostic]:
    return [_one(error, source, model, data, tuple(base)) for error in exc.errors()]


def _one(
    error: ErrorDetails,
    source: SourceFile,
    model: type[BaseModel],
    data: Any,
    base: tuple[Any, ...],
) -> Diagnostic:
    path, bad_key = _data_path(error["loc"], data)
    where = ".".join(str(p) for p in path)
    kind = error["type"]
    full = base + path
    if bad_key:
        return source.diagnostic(
            "RY106",
            f"invalid key {path[-1]!r} at `{where}`: keys are lowercase letters, digits and "
            "dashes, starting with a letter or digit",
            full,
            key=True,
            hint=f"rename it, e.g. `{_slug(str(path[-1]))}`",
        )
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, path[:-1], data)
        return source.diagnostic(
            "RY101",
            f"unknown key `{path[-1]}`"
            + (f" in `{'.'.join(map(str, path[:-1]))}`" if len(path) > 1 else ""),
            full,
            key=True,
            hint=did_you_mean(str(path[-1]), allowed, noun="keys"),
        )
    if kind == "missing":
        return source.diagnostic(
            "RY103",
            f"missing required field `{path[-1]}`"
            + (f" in `{'.'.join(map(str, path[:-1]))}`" if len(path) > 1 else ""),
            full[:-1],
            hint=f"add `{path[-1]}:`",
        )
    if kind == "union_tag_not_found":
        return _missing_tag(error, source, path, full)
    if _OWN_CODE.match(kind):
        return source.diagnostic(
            kind, f"`{where}`: {error['msg']}" if where else error["msg"], full
        )
    code = (
        "RY102"
        if kind.endswith(("_type", "_parsing")) or kind == "model_attributes_type"
        else "RY104"
    )
    message = error["msg"]
    if kind == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        tag = str(ctx.get("discriminator", "'type'")).strip("'")
        message = f"unknown {tag} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        full = (*full, tag)
        where = ".".join(str(p) for p in (*path, tag))
    return source.diagnostic(code, f"`{where}`: {message}" if where else message, full)


def _missing_tag(
    error: ErrorDetails, source: SourceFile, path: tuple[str | int, ...], full: tuple[Any, ...]
) -> Diagnostic:
    """A union's `type:` is missing: most often it is misspelt, so point at the misspelling."""
    tag = str((error.get("ctx") or {}).get("discriminator", "'type'")).strip("'")
    node = error.get("input")
    if isinstance(node, dict):
        for key in node:
            if isinstance(key, str) and did_you_mean(key, [tag]) and key != tag:
                return source.diagnostic(
                    "RY101",
                    f"unknown key `{key}`",
                    (*full, key),
                    key=True,
                    hint=f"did you mean `{tag}`?",
                )
    where = ".".join(str(p) for p in path)
    return source.diagnostic(
        "RY103",
        f"missing required field `{tag}`" + (f" in `{where}`" if where else ""),
        full,
        hint=f"add `{tag}:`",
    )


def _data_path(loc: tuple[int | str, ...], data: Any) -> tuple[tuple[str | int, ...], bool]:
    """Drop pydantic's union tags from a location, following the real data."""
    path: list[str | int] = []
    node = data
    bad_key = False
    for index, part in enumerate(loc):
        if part == "[key]":
            bad_key = True
            break
        is_tag_too = (
            isinstance(node, dict)
            and part in node
            and _looks_like_tag(str(part), node)
            and not isinstance(node[part], dict | list)
            and index + 1 < len(loc)
        )  # e.g. `blueprint`: both pydantic's union tag and a key holding a plain string
        if is_tag_too:
            continue
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]  # type: ignore[index]
        elif isinstance(node, dict | list):
            # A tag pydantic adds for a union member, or a key that does not exist (missing).
            if isinstance(part, str) and not _looks_like_tag(part, node):
                path.append(part)
                node = None
        else:
            path.append(part)
            node = None
    return tuple(path), bad_key


def _looks_like_tag(part: str, node: Any) -> bool:
    if isinstance(node, dict):
        tag = node.get("type")
        return part in {tag, "blueprint", "inline"} or part.startswith(("function-", "tagged-"))
    return True


def _allowed_keys(model: type[BaseModel], path: Sequence[str | int], data: Any) -> list[str]:
    annotation: Any = model
    node = data
    for part in path:
        annotation = _pick(annotation, node)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _field(annotation, str(part))
            if field is None:
                return []
            annotation = field
        else:
            origin = typing.get_origin(annotation)
            args = typing.get_args(annotation)
            if origin in (dict, list) and args:
                annotation = args[-1]
            else:
                return []
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (node[part] if isinstance(node, list) and isinstance(part, int) else None)
        )
    annotation = _pick(annotation, node)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _field(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field.annotation
    return None


def _pick(annotation: Any, node: Any) -> Any:
    """Unwrap Annotated/Optional, and choose the union member that fits the data best."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [_pick(a, node) for a in typing.get_args(annotation) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            if not models:
                return members[0] if members else annotation
            keys = set(node) if isinstance(node, dict) else set()
            tag = node.get("type") if isinstance(node, dict) else None
            for m in models:
                type_field = m.model_fields.get("type")
                if type_field is not None and tag in typing.get_args(type_field.annotation):
                    return m
            return max(
                models, key=lambda m: len(keys & {f.alias or n for n, f in m.model_fields.items()})
            )
        return annotation


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-") or "key"
