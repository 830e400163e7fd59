"""What an attempt records about its request and response: secrets replaced by `***` (in every
spelling `redact` knows), credentials' headers masked, bodies (decoded) truncated to 64 KiB.
A header the App sent several times (`Link`, `Set-Cookie`) is recorded as a list of values."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import httpx

from rollout_yaml.config.secrets import REDACTED, redact
from rollout_yaml.http.request import PreparedRequest

MAX_BODY = 64 * 1024
MASKED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


def _text(body: bytes | str | None, secrets: frozenset[str]) -> str | None:
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = redact(text, secrets)
    if len(text) > MAX_BODY:
        return text[:MAX_BODY] + f"… [truncated, {len(text)} characters]"
    return text


def _value(name: str, value: str, secrets: frozenset[str]) -> str:
    if name.lower() in MASKED_HEADERS:
        scheme = value.split(" ", 1)[0] if " " in value else ""
        return f"{scheme} {REDACTED}".strip()
    return redact(value, secrets)


def _headers(
    headers: Mapping[str, str] | httpx.Headers, secrets: frozenset[str]
) -> dict[str, str | list[str]]:
    pairs = headers.multi_items() if isinstance(headers, httpx.Headers) else headers.items()
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        shown = _value(name, value, secrets)
        if name not in out:
            out[name] = shown
            continue
        previous = out[name]
        out[name] = [*previous, shown] if isinstance(previous, list) else [previous, shown]
    return out


def request_record(request: PreparedRequest, secrets: Collection[str]) -> dict[str, Any]:
    found = secrets if isinstance(secrets, frozenset) else frozenset(secrets)
    return {
        "method": request.method,
        "url": redact(request.full_url(), found),
        "headers": _headers(request.headers, found),
        "body": _text(request.content(), found),
    }


def response_record(
    status: int,
    headers: Mapping[str, str] | httpx.Headers,
    body: bytes | None,
    secrets: Collection[str],
) -> dict[str, Any]:
    found = secrets if isinstance(secrets, frozenset) else frozenset(secrets)
    return {"status": status, "headers": _headers(headers, found), "body": _text(body, found)}
