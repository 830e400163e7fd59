"""No secret leaves in an answer: every response body passes through `redact` on its way out.

This is a last line of defence, not the only one (runs are stored redacted already). It works on
the bytes that are sent, whatever produced them, so a new endpoint cannot forget it. `redact`
looks for each secret in every spelling it may take (JSON-escaped, percent-encoded, …).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollout_yaml.config.secrets import redact


def redact_bytes(body: bytes, secrets: frozenset[str]) -> bytes:
    # surrogateescape round-trips any bytes, so a non-UTF-8 body is still searched and kept.
    text = body.decode("utf-8", "surrogateescape")
    return redact(text, secrets).encode("utf-8", "surrogateescape")


def redact_data(data: Any, secrets: Iterable[str]) -> Any:
    """A JSON-able value with every secret replaced (for the command line's output)."""
    text = json.dumps(data, ensure_ascii=False, default=str)
    return json.loads(redact(text, frozenset(secrets)))


class RedactMiddleware:
    """Pure ASGI middleware: buffers each response body, redacts it, fixes Content-Length."""

    def __init__(self, app: ASGIApp, secrets: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self.secrets = secrets
        self._cached: frozenset[str] = frozenset()

    def _secrets(self) -> frozenset[str]:
        current = self.secrets()
        if not isinstance(current, frozenset):
            current = frozenset(current)
        if current != self._cached:  # the configuration was reloaded
            self._cached = current  # the same set object keeps its compiled pattern
        return self._cached

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = redact_bytes(b"".join(chunks), self._secrets())
            headers = [
                (name, value)
                for name, value in start.get("headers", [])
                if name.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, capture)
