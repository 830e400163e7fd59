"""CORS for `/api` and `/v1`: the partner's pages call the runner from the browser (Rollout's
embedded components send the consumer JWT in `Authorization`, which needs a preflight). The
origins are `server.cors_origins`, read per request so that a reload applies at once; no
cookies are involved, so credentials are never allowed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATHS = ("/api/", "/v1/")
METHODS = "GET, POST, PUT, PATCH, DELETE"
HEADERS = "authorization, content-type, if-match"
MAX_AGE = "600"


def allowed(origin: str, origins: Sequence[str]) -> bool:
    return "*" in origins or origin.rstrip("/") in (o.rstrip("/") for o in origins)


class CorsMiddleware:
    def __init__(self, app: ASGIApp, origins: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(PATHS):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or not allowed(origin, self.origins()):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": HEADERS,
                    "Access-Control-Max-Age": MAX_AGE,
                    "Vary": "Origin",
                },
            )
            await preflight(scope, receive, send)
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(scope=message)
                answer["Access-Control-Allow-Origin"] = origin
                answer["Access-Control-Expose-Headers"] = "ETag"
                answer.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, with_cors)
