"""Sends prepared requests with one pooled `httpx.AsyncClient` per App, enforcing timeouts and
the response size limit."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import httpx
from yarl import URL

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
    """One aiohttp connection pool per App, created on first use and closed with the runner.

    Sessions keep no cookies (a jar shared by every consumer of an App would leak one
    consumer's session cookies into another's requests), follow no redirects, decompress
    nothing and read no proxy settings from the environment. aiohttp rather than httpcore:
    httpcore's pool cost about 2 ms of CPU a request here, aiohttp's a fraction of it
    (benchmarks/README.md).
    """

    def __init__(self, *, max_connections: int = 32, verify: bool = True) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._max_connections = max_connections
        self._verify = verify

    def session(self, app: str) -> aiohttp.ClientSession:
        found = self._sessions.get(app)
        if found is None:
            ssl_context = httpx.create_ssl_context(verify=self._verify, trust_env=False)
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=30, ssl=ssl_context
            )
            found = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
            )
            self._sessions[app] = found
        return found

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def send(self, app: str, request: PreparedRequest, max_bytes: int) -> HttpAnswer:
        session = self.session(app)
        started = time.perf_counter()
        seconds = request.timeout
        try:
            async with session.request(
                request.method,
                URL(request.full_url(), encoded=True),  # already encoded: send it as built
                headers=request.headers,
                data=request.content(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_any():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise SendError("too_large", f"response larger than {max_bytes} bytes")
                status = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
        except TimeoutError as exc:
            raise SendError("timeout", f"timed out after {seconds:g}s") from exc
        except aiohttp.ClientError as exc:
            raise SendError("connection", f"{type(exc).__name__}: {exc}") from exc
        return HttpAnswer(
            status=status,
            headers=headers,
            body=bytes(body),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
