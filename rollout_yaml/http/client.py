"""Sends prepared requests with one pooled `httpx.AsyncClient` per App, enforcing timeouts and
the response size limit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from rollout_yaml.http.request import PreparedRequest


class SendError(Exception):
    """The request got no usable answer: `kind` is timeout, connection or too_large."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float


class AppClients:
    """One connection pool per App, created on first use and closed with the runner.

    Requests are httpx `Request`s handed straight to an httpx transport: no client-level
    cookie jar (a jar shared by every consumer of an App would leak one consumer's session
    cookies into another's requests), no redirects, no auth flows, no environment proxies.
    The transport is aiohttp's (httpx-aiohttp), with a session that keeps no cookies:
    httpcore's pool costs about 2 ms of CPU a request here, aiohttp's a fraction of it
    (benchmarks/README.md).
    """

    def __init__(self, *, max_connections: int = 32, verify: bool = True) -> None:
        self._transports: dict[str, httpx.AsyncBaseTransport] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._verify = verify

    def transport(self, app: str) -> httpx.AsyncBaseTransport:
        found = self._transports.get(app)
        if found is None:
            found = AiohttpTransport(client=self._session)
            self._transports[app] = found
        return found

    def _session(self) -> aiohttp.ClientSession:
        """Called once per App, inside the running loop, on its first request."""
        ssl_context = httpx.create_ssl_context(verify=self._verify, trust_env=False)
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 100, keepalive_timeout=30, ssl=ssl_context
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
        )

    async def close(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()
        self._transports.clear()

    async def send(self, app: str, request: PreparedRequest, max_bytes: int) -> HttpAnswer:
        transport = self.transport(app)
        started = time.perf_counter()
        seconds = request.timeout
        outgoing = httpx.Request(
            request.method,
            request.url,
            params=[(k, v) for k, v in request.query] or None,
            headers=request.headers,
            content=request.content(),
            extensions={
                "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
            },
        )
        try:
            async with asyncio.timeout(seconds):
                response = await transport.handle_async_request(outgoing)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body.extend(chunk)
                        if len(body) > max_bytes:
                            raise SendError("too_large", f"response larger than {max_bytes} bytes")
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise SendError("timeout", f"timed out after {seconds:g}s") from exc
        except httpx.TransportError as exc:
            raise SendError("connection", f"{type(exc).__name__}: {exc}") from exc
        return HttpAnswer(
            status=response.status_code,
            headers=dict(response.headers),
            body=bytes(body),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
