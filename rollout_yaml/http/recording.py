"""What an attempt records about its request and response: secrets replaced by `***`,
credentials' headers masked, bodies truncated to 64 KiB."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from rollout_yaml.config.secrets import REDACTED, redact
from rollout_yaml.http.request import PreparedRequest

MAX_BODY = 64 * 1024
MASKED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


def _text(body: bytes | str | None, secrets: Collection[str]) -> str | None:
    if body is None:
        return None
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = redact(text, frozenset(secrets))
    if len(text) > MAX_BODY:
        return text[:MAX_BODY] + f"… [truncated, {len(text)} characters]"
    return text


def _headers(headers: Mapping[str, str], secrets: Collection[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        if name.lower() in MASKED_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            out[name] = f"{scheme} {REDACTED}".strip()
        else:
            out[name] = redact(value, frozenset(secrets))
    return out


def request_record(request: PreparedRequest, secrets: Collection[str]) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": redact(request.full_url(), frozenset(secrets)),
        "headers": _headers(request.headers, secrets),
        "body": _text(request.content(), secrets),
    }


def response_record(
    status: int, headers: Mapping[str, str], body: bytes | None, secrets: Collection[str]
) -> dict[str, Any]:
    return {"status": status, "headers": _headers(headers, secrets), "body": _text(body, secrets)}
