"""The two endpoints under sustained load, without the framework's per-request machinery:
`POST /v1/events` (the partner's backend) and `POST /webhooks/{app}/{trigger}/{hookId}`
(third-party Apps).

Routing, dependency solving and response classes cost more than the work itself
(benchmarks/README.md). This middleware answers the ordinary case — a valid token or signature,
a body within the limit, events the engine accepts — with the same functions the routed
endpoints use. Anything else (a bad token, malformed JSON, a bad signature, a rejected event:
cases where nothing was stored) is handed to the routed endpoint with the body replayed, so every
error answer comes from one place and stays identical.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import Delivery
from rollout_yaml.server import reads
from rollout_yaml.server.auth import Unauthorized, VerifiedTokens, bearer
from rollout_yaml.server.body import decode_json
from rollout_yaml.server.errors import ApiError

EVENTS_PATH = "/v1/events"
WEBHOOKS_PREFIX = "/webhooks/"
_HEADERS = [(b"content-type", b"application/json")]


class _Declined(Exception):
    """The fast lane does not answer this request; the routed endpoint will, given the body
    read so far (`more`: the rest is still to come from the connection)."""

    def __init__(self, read: bytes = b"", more: bool = False) -> None:
        self.read = read
        self.more = more


class FastLane:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.tokens = VerifiedTokens()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == EVENTS_PATH:
            await self._answer(scope, receive, send, self._push, 202)
            return
        hook = path.removeprefix(WEBHOOKS_PREFIX).split("/")
        if path.startswith(WEBHOOKS_PREFIX) and len(hook) == 3 and all(hook):
            await self._answer(scope, receive, send, self._deliver, 200)
            return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, handle: Any, status: int
    ) -> None:
        body = b""
        try:
            body = await self._body(receive)
            answer = await handle(scope, body)
        except _Declined as declined:
            await self.app(scope, _replay(declined.read, declined.more, receive), send)
            return
        except (ApiError, Unauthorized, EventRejected):  # nothing was stored
            await self.app(scope, _replay(body, False, receive), send)
            return
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers = [*_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _push(self, scope: Scope, body: bytes) -> dict[str, Any]:
        header = _headers(scope).get("authorization")
        consumer = self.tokens.verify(bearer(header), self.runtime.config.current.settings.auth)
        events, batch = reads.events_of(decode_json(body))
        return await reads.push(self.runtime, consumer.key, events, batch=batch)

    async def _deliver(self, scope: Scope, body: bytes) -> dict[str, Any]:
        app, trigger, hook_id = scope["path"].removeprefix(WEBHOOKS_PREFIX).split("/")
        result = await self.runtime.receive_webhook(
            Delivery(app, trigger, hook_id, _headers(scope), body)
        )
        if result.challenge is not None:
            return {"challenge": result.challenge}
        return {"event_ids": result.event_ids, "runs_queued": result.runs_queued}

    async def _body(self, receive: Receive) -> bytes:
        limit = self.runtime.config.current.settings.runtime.limits.max_payload_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Declined()  # the client went away: let the framework deal with it
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
            if size > limit:  # the routed endpoint answers 413
                raise _Declined(b"".join(chunks), more)
            if not more:
                return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    """Header names in lower case, the first of repeated ones (as Starlette's `Headers`)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that gives the bytes already read, then whatever the connection sends."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replayed
