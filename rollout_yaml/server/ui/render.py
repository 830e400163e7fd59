"""Pages from the package's Jinja2 templates, autoescaped, with the security headers.

This environment is not the sandboxed one that renders connector templates: it renders only
the package's own files. Values from events and Apps are passed in as data and escaped; none is
ever compiled as a template, so `{{ 7*7 }}` in a payload is shown as those characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from rollout_yaml.server.ui.headers import page_headers


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def pretty_body(body: str | None) -> str:
    """A recorded body, indented when it is JSON, else as it was recorded."""
    if body is None:
        return ""
    try:
        return pretty_json(json.loads(body))
    except ValueError:
        return body


def http_message(record: Mapping[str, Any] | None) -> str:
    """A recorded request or response as HTTP reads: start line, headers, blank line, body."""
    if not record:
        return ""
    if "method" in record:
        start = f"{record.get('method', '')} {record.get('url', '')}"
    else:
        start = f"HTTP {record.get('status', '')}"
    headers = [f"{name}: {value}" for name, value in (record.get("headers") or {}).items()]
    body = record.get("body")
    text = "\n".join([start, *headers])
    return text + ("\n\n" + pretty_body(body) if body is not None else "")


def when(moment: str | float | None) -> str:
    """An ISO time or epoch seconds as `2024-05-02 10:00:03 UTC`."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, int | float):
        value = datetime.fromtimestamp(moment, UTC)
    else:
        value = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def milliseconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def between(start: str | None, end: str | None) -> str:
    """The time from one ISO moment to another."""
    if not start or not end:
        return "—"
    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    last = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return milliseconds((last - first).total_seconds() * 1000)


class Pages:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("rollout_yaml.server.ui", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            json=pretty_json, http=http_message, when=when, ms=milliseconds, between=between
        )

    def html(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(name).render(**context)

    def response(
        self,
        name: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        frame_ancestors: Sequence[str] = (),
        framed: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        answer = HTMLResponse(self.html(name, context), status_code=status)
        answer.headers.update({**page_headers(frame_ancestors, framed=framed), **(headers or {})})
        return answer
