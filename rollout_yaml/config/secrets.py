"""`${NAME}` references in environment and consumer files, resolved from the process
environment and the environment's `secrets.files`."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from dotenv import dotenv_values

from rollout_yaml.config.source import PathKey

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
WHOLE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$")
REDACTED = "***"


@dataclass
class Interpolated:
    """Data with every `${NAME}` replaced, and what the replacement found."""

    data: Any
    referenced: set[PathKey] = field(default_factory=set)
    missing: list[tuple[PathKey, str]] = field(default_factory=list)


def load_secret_files(env_dir: Path, files: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in files:
        path = env_dir / name
        if path.is_file():
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    return values


def interpolate(data: Any, lookup: Mapping[str, str]) -> Interpolated:
    result = Interpolated(data=None)
    result.data = _walk(data, [], lookup, result)
    return result


def _walk(value: Any, path: list[str | int], lookup: Mapping[str, str], out: Interpolated) -> Any:
    """Replace references in strings; containers are copied only where something changed, and
    a path is built only for a string that holds a reference (most hold none)."""
    if isinstance(value, str):
        return _substitute(value, tuple(path), lookup, out) if "${" in value else value
    if isinstance(value, dict):
        changed: dict[str, Any] | None = None
        for k, v in value.items():
            if isinstance(v, str):
                if "${" not in v:
                    continue
                path.append(k)
                new = _substitute(v, tuple(path), lookup, out)
                path.pop()
            elif isinstance(v, dict | list):
                path.append(k)
                new = _walk(v, path, lookup, out)
                path.pop()
            else:
                continue
            if new is not v:
                if changed is None:
                    changed = dict(value)
                changed[k] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = []
        for index, v in enumerate(value):
            path.append(index)
            items.append(_walk(v, path, lookup, out))
            path.pop()
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _substitute(value: str, path: PathKey, lookup: Mapping[str, str], out: Interpolated) -> str:
    out.referenced.add(path)

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in lookup:
            return lookup[name]
        if default is not None:
            return default
        out.missing.append((path, name))
        return ""

    return VARIABLE.sub(replace, value)


def is_reference(raw: Any) -> bool:
    """True when a raw file value is exactly one `${NAME}` reference (how secrets are written)."""
    return isinstance(raw, str) and bool(WHOLE_REFERENCE.match(raw))


def redact(text: str, secrets: set[str] | frozenset[str]) -> str:
    """Replace every known secret value in `text` with `***`, in each spelling it can be sent
    or echoed in (see `spellings`), the longest match first. The one place that redacts:
    records, logs, messages and API answers all come through here."""
    pattern = _secrets_pattern(secrets if isinstance(secrets, frozenset) else frozenset(secrets))
    return text if pattern is None else pattern.sub(REDACTED, text)


def redact_value(value: Any, secrets: frozenset[str]) -> Any:
    """`redact` inside any JSON-like value (a run's input or output). The value is returned as
    it is when it holds no secret."""
    if not secrets or value is None:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, bool | int | float):
        return value
    text = json.dumps(value, ensure_ascii=False, default=str)
    cleaned = redact(text, secrets)
    return value if cleaned == text else json.loads(cleaned)


def spellings(secret: str) -> set[str]:
    """A secret as it may appear in what is recorded or shown: as written; percent-encoded
    (a path segment, `quote`), form- or query-encoded (`+` for spaces, `quote_plus`); and inside
    a JSON string (escaped, with and without `\\u` escapes for non-ASCII, and with `\\/` as
    some encoders write slashes). Base64 forms are the auth flow's to add (http/auth.py):
    only it knows which bytes it encodes together."""
    escaped = json.dumps(secret)[1:-1]
    return {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret, safe=""),
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped.replace("/", "\\/"),
    }


_PERCENT = re.compile(r"%([0-9A-F])([0-9A-F])")


def _spelling_pattern(spelling: str) -> str:
    """A regex for one spelling; percent escapes match in either case (`%2F` and `%2f`)."""
    parts = []
    last = 0
    for match in _PERCENT.finditer(spelling):
        parts.append(re.escape(spelling[last : match.start()]))
        parts.append(
            "%" + "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in match.groups())
        )
        last = match.end()
    parts.append(re.escape(spelling[last:]))
    return "".join(parts)


@functools.lru_cache(maxsize=16)
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    """One compiled alternation per set of secrets: an environment with thousands of consumers
    has thousands of secrets, and one pass of a regex beats one `replace` per secret. Values
    shorter than 4 characters are left alone (they would redact ordinary words)."""
    found: set[str] = set()
    for secret in secrets:
        if len(secret) >= 4:
            found |= spellings(secret)
    usable = sorted(found, key=len, reverse=True)
    if not usable:
        return None
    return re.compile("|".join(_spelling_pattern(s) for s in usable))
