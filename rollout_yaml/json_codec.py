"""The one JSON codec: what comes in is read strictly, what goes out and what is stored is
always valid JSON that reads back.

Every intake (events, webhooks, API bodies) calls `loads`, which refuses what RFC 8259 does not
allow and what a run could not be built from: `NaN`/`Infinity`, numbers that overflow to
infinity (`1e999`), lone UTF-16 surrogates (`"\\ud800"`) and nesting deeper than `MAX_DEPTH`.
The refusal names the JSON path of the first problem. Everything written (answers, stored
columns, request bodies) goes through `dumps`, which never fails on a JSON-like value: it
replaces what JSON cannot carry (see `_sanitized`) instead of writing something unreadable.
`loads_stored` reads what older versions may have written (`NaN`, lone surrogates) as valid
values, so no stored run is ever unreadable.

orjson does the work: these are the hot path of every request.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

MAX_DEPTH = 64
"""Levels of arrays and objects a document may nest (`[[1]]` is 2). Deeper bodies get 400."""

_SURROGATE = re.compile("[\ud800-\udfff]")
TOO_DEEP_MARK = f"… [nested deeper than {MAX_DEPTH} levels]"


class JSONRejected(ValueError):
    """A document refused at intake; `path` is the JSON path of the problem (`$` if none)."""

    def __init__(self, reason: str, path: str = "$") -> None:
        super().__init__(f"{path}: {reason}" if path != "$" else reason)
        self.reason = reason
        self.path = path


def loads(data: bytes | str) -> Any:
    """A document as data, or JSONRejected. Objects with repeated keys keep the last value;
    integers beyond 64 bits are read as floats (as JavaScript reads them)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _explained(data, exc) from None
    if _brackets(data) > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise JSONRejected(f"nested deeper than {MAX_DEPTH} levels", _too_deep(value) or "$")
    return value


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON. Never raises for JSON-like data: non-finite numbers
    become null, lone surrogates U+FFFD, subtrees deeper than MAX_DEPTH a marker string,
    integers beyond 64 bits and unknown types are written with the standard library or as
    text."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(
            _sanitized(value, 1), ensure_ascii=False, separators=(",", ":"), default=str
        ).encode()


def dumps_text(value: Any) -> str:
    """`dumps` as text, for the database driver's JSON columns."""
    return dumps(value).decode()


def loads_stored(data: bytes | str) -> Any:
    """A stored column: strict JSON as written now, or what an older version wrote (`NaN`,
    `Infinity`, lone surrogates, deep nesting), made valid the way `dumps` would have."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(data, parse_constant=lambda _name: None)
    except RecursionError:
        return TOO_DEEP_MARK
    return _sanitized(value, 1)


# -- finding what is wrong (only on the error path) ------------------------------------------


def _brackets(data: bytes | str) -> int:
    """An upper bound of the nesting depth, counted at C speed."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than `limit` levels, a level at a time: no path is built,
    so a wide body with many brackets costs little more than its parse."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1
    return False


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=True)}]"


def _too_deep(value: Any) -> str | None:
    """The path of the first container below MAX_DEPTH, or None."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if depth > MAX_DEPTH:
            return path
        for key, child in items:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1, _child_path(path, key)))
    return None


def _explained(data: bytes | str, exc: orjson.JSONDecodeError) -> JSONRejected:
    """orjson's refusal as a message with a JSON path where one can be found."""
    message = str(exc).split(":", 1)[0]
    if "depth limit" in message:
        return JSONRejected(f"nested deeper than {MAX_DEPTH} levels", _deep_path(data))
    if isinstance(data, bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return JSONRejected("not UTF-8")
    try:  # the standard library reads NaN and lone surrogates, so they can be located
        value = json.loads(data, parse_constant=lambda _name: math.inf)
    except (ValueError, RecursionError):
        return JSONRejected(f"not JSON: {exc}")
    found = _first_invalid(value)
    if found is None:
        return JSONRejected(f"not JSON: {exc}")
    path, why = found
    return JSONRejected(why, path)


def _first_invalid(value: Any) -> tuple[str, str] | None:
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return path, "numbers must be finite (NaN, Infinity and overflowing numbers are not)"
        if isinstance(node, str) and _has_surrogate(node):
            return path, "a string holds a lone UTF-16 surrogate (not Unicode text)"
        if isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                if _has_surrogate(key):
                    return path, "a key holds a lone UTF-16 surrogate (not Unicode text)"
                stack.append((child, _child_path(path, key)))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _deep_path(data: bytes | str) -> str:
    """The path at which a document passes MAX_DEPTH, scanning its text (orjson stops at 1024
    levels, the standard library at the recursion limit: neither can build the value)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    path: list[str] = []
    index: list[int] = []  # per open array: the position of the current element
    kinds: list[str] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < size and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if kinds and kinds[-1] == "{" and text[end + 1 : end + 64].lstrip().startswith(":"):
                try:
                    key = json.loads(text[i : end + 1])
                except ValueError:
                    key = text[i + 1 : end]
                path[-1] = _child_path("", str(key))
            i = end + 1
            continue
        if char in "[{":
            if len(kinds) >= MAX_DEPTH:
                return "$" + "".join(path)
            if kinds and kinds[-1] == "[":
                path[-1] = f"[{index[-1]}]"
            kinds.append(char)
            path.append("")
            index.append(0)
        elif char in "]}":
            if kinds:
                kinds.pop()
                path.pop()
                index.pop()
        elif char == "," and kinds:
            index[-1] += 1
        i += 1
    return "$"


def _sanitized(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value if not _has_surrogate(value) else _replace_surrogates(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return TOO_DEEP_MARK
        return {
            (_replace_surrogates(k) if isinstance(k, str) else str(k)): _sanitized(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if depth > MAX_DEPTH:
            return TOO_DEEP_MARK
        return [_sanitized(v, depth + 1) for v in value]
    return value


def _replace_surrogates(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)
