"""`POST /v1/events` without the framework's per-request machinery.

Pushing events is the one endpoint under sustained load, and routing, dependency solving and
response classes cost more than the work itself (benchmarks/README.md). This middleware answers
the ordinary case — a valid token, a body within the limit, events the engine accepts — with the
same functions the routed endpoint uses. Anything else (a bad token, malformed JSON, a rejected
event: cases where nothing was stored) is handed to the routed endpoint with the body replayed,
so every error answer comes from one place and stays identical.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server import reads
from rollout_yaml.server.auth import Unauthorized, VerifiedTokens, bearer
from rollout_yaml.server.body import decode_json
from rollout_yaml.server.errors import ApiError

PATH = "/v1/events"
_HEADERS = [(b"content-type", b"application/json")]


class _Declined(Exception):
    """The fast lane does not answer this request; the routed endpoint will, given the body
    read so far (`more`: the rest is still to come from the connection)."""

    def __init__(self, read: bytes = b"", more: bool = False) -> None:
        self.read = read
        self.more = more


class EventsFastLane:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.tokens = VerifiedTokens()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        try:
            consumer = self._consumer(scope)
            body = await self._body(scope, receive)
            events, batch = reads.events_of(decode_json(body))
            answer = await reads.push(self.runtime, consumer, events, batch=batch)
        except _Declined as declined:
            await self.app(scope, _replay(declined.read, declined.more, receive), send)
            return
        except (ApiError, Unauthorized, EventRejected):  # nothing was stored
            await self.app(scope, _replay(body, False, receive), send)
            return
        payload = json.dumps(answer, separators=(",", ":")).encode()
        headers = [*_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _consumer(self, scope: Scope) -> str:
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        auth = self.runtime.config.current.settings.auth
        return self.tokens.verify(bearer(header), auth).key

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
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
