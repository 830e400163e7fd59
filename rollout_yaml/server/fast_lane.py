"""The two endpoints under sustained load, without the framework's per-request machinery:
`POST /v1/events` (the partner's backend) and `POST /webhooks/{app}/{trigger}/{hookId}`
(third-party Apps).

Routing, dependency solving and response classes cost more than the work itself
(benchmarks/README.md). This middleware answers these requests itself, start to end, with the
functions the routed endpoints use: the body is read by `body.read_within` (one size limit),
the token verified by `auth.bearer` and the application's one token cache, events checked and
stored by `reads.push` / `Runtime.receive_webhook`, refusals answered by `errors.refusal`. It
only skips the parsing of the routing layer; every request is processed once, here or there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import Delivery, query_fields
from rollout_yaml.server import reads
from rollout_yaml.server.auth import VerifiedTokens, bearer
from rollout_yaml.server.body import decode_json, read_within
from rollout_yaml.server.errors import REFUSALS, refusal
from rollout_yaml.server.responses import JSONResponse

EVENTS_PATH = "/v1/events"
WEBHOOKS_PREFIX = "/webhooks/"

Body = Callable[[], Awaitable[bytes]]
Handler = Callable[[Scope, dict[str, str], Body], Awaitable[dict[str, Any]]]


class FastLane:
    def __init__(self, app: ASGIApp, runtime: Runtime, tokens: VerifiedTokens) -> None:
        self.app = app
        self.runtime = runtime
        self.tokens = tokens

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
        self, scope: Scope, receive: Receive, send: Send, handle: Handler, status: int
    ) -> None:
        headers = _headers(scope)
        limit = self.runtime.config.current.settings.runtime.limits.max_payload_bytes

        async def body() -> bytes:
            return await read_within(_chunks(receive), headers.get("content-length"), limit)

        try:
            response = JSONResponse(await handle(scope, headers, body), status)
        except ClientDisconnect:
            return  # nobody to answer; nothing was stored
        except REFUSALS as refused:
            response = refusal(refused)
        await response(scope, receive, send)

    async def _push(self, _scope: Scope, headers: dict[str, str], body: Body) -> dict[str, Any]:
        auth = self.runtime.config.current.settings.auth
        # the token first: a caller without one learns nothing of the body checks
        consumer = self.tokens.verify(bearer(headers.get("authorization")), auth)
        self.runtime.credentials.from_tokens.remember(consumer.key, consumer.claims)
        events, batch = reads.events_of(decode_json(await body()))
        return await reads.push(self.runtime, consumer.key, events, batch=batch)

    async def _deliver(self, scope: Scope, headers: dict[str, str], body: Body) -> dict[str, Any]:
        app, trigger, hook_id = scope["path"].removeprefix(WEBHOOKS_PREFIX).split("/")
        query = query_fields(scope.get("query_string", b"").decode("latin-1"))
        delivery = Delivery(app, trigger, hook_id, headers, await body(), query)
        return reads.delivery_answer(await self.runtime.receive_webhook(delivery))


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as the connection delivers it."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _headers(scope: Scope) -> dict[str, str]:
    """Header names in lower case, the first of repeated ones (as Starlette's `Headers`)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found
