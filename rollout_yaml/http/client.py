"""Sends prepared requests with one pooled `httpx.AsyncClient` per App, enforcing timeouts and
the response size limit."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

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
    """One connection pool per App, created on first use and closed with the runner."""

    def __init__(self, *, max_connections: int = 32, verify: bool = True) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._verify = verify

    def client(self, app: str) -> httpx.AsyncClient:
        found = self._clients.get(app)
        if found is None:
            found = httpx.AsyncClient(
                limits=self._limits, verify=self._verify, follow_redirects=False, trust_env=False
            )
            self._clients[app] = found
        return found

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def send(self, app: str, request: PreparedRequest, max_bytes: int) -> HttpAnswer:
        client = self.client(app)
        started = time.perf_counter()
        try:
            outgoing = client.build_request(
                request.method,
                request.url,
                params=[(k, v) for k, v in request.query] or None,
                headers=request.headers,
                content=request.content(),
                timeout=request.timeout,
            )
            response = await client.send(outgoing, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise SendError("too_large", f"response larger than {max_bytes} bytes")
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise SendError("timeout", f"timed out after {request.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise SendError("connection", f"{type(exc).__name__}: {exc}") from exc
        return HttpAnswer(
            status=response.status_code,
            headers=dict(response.headers),
            body=bytes(body),
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
