"""Sends prepared requests with one pooled aiohttp session per App, enforcing timeouts, the
egress policy and the response size limit (on the decoded body), and decoding compressed
answers. Signing, rate limits and retries are the callers' (http/auth.py, engine/outbound.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
from yarl import URL

from rollout_yaml.http.decoding import ACCEPT_ENCODING, BodyReader
from rollout_yaml.http.egress import (
    EgressDenied,
    GuardedResolver,
    check_address,
    denial_in,
    guarded_socket,
    parse_ip,
)
from rollout_yaml.http.errors import ConnectFailed, EgressRefused, SendError, SendTimeout
from rollout_yaml.http.request import PreparedRequest


def _allow_all() -> bool:
    return True


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An App's answer. `headers` keeps repeated fields (several `Link`, `Set-Cookie`);
    `headers.get` joins them with commas, `headers.get_list` gives each. `body` is decoded
    (gzip, deflate, br undone)."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed_ms: float


class AppClients:
    """One aiohttp connection pool per App, created on first use and closed with the runner.

    Sessions keep no cookies (a jar shared by every consumer of an App would leak one
    consumer's session cookies into another's requests), follow no redirects and read no proxy
    settings from the environment. Answers are decoded here rather than by aiohttp, so that
    the size limit counts decoded bytes as they stream in (http/decoding.py). aiohttp rather
    than httpcore: httpcore's pool cost about 2 ms of CPU a request here, aiohttp's a fraction of it
    (benchmarks/README.md).

    `allow_private` is asked at every send (the runtime passes the live configuration's
    `runtime.egress.allow_private`). A pool belongs to one answer, so a connection opened while
    private addresses were allowed is never reused after they no longer are. `resolver` replaces
    aiohttp's DNS resolver (tests map names to chosen addresses); the egress filter wraps it.
    """

    def __init__(
        self,
        *,
        max_connections: int = 32,
        verify: bool = True,
        allow_private: Callable[[], bool] = _allow_all,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._sessions: dict[tuple[str, bool], aiohttp.ClientSession] = {}
        self._max_connections = max_connections
        self._verify = verify
        self._allow_private = allow_private
        self._resolver = resolver
        self._resolvers: list[GuardedResolver] = []  # aiohttp closes only resolvers it made

    def session(self, app: str, allow_private: bool | None = None) -> aiohttp.ClientSession:
        """The App's pool for one egress policy (by default the current one)."""
        if allow_private is None:
            allow_private = self._allow_private()
        found = self._sessions.get((app, allow_private))
        if found is None:
            ssl_context = httpx.create_ssl_context(verify=self._verify, trust_env=False)

            def policy() -> bool:
                return allow_private

            resolver = GuardedResolver(policy, self._resolver)
            self._resolvers.append(resolver)
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=30,
                ssl=ssl_context,
                resolver=resolver,
                socket_factory=guarded_socket(policy),
            )
            found = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
            )
            self._sessions[(app, allow_private)] = found
        return found

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        for resolver in self._resolvers:
            await resolver.close()
        self._resolvers.clear()

    async def send(self, app: str, request: PreparedRequest, max_bytes: int) -> HttpAnswer:
        """Send `request` as built (and signed); raise a `SendError` when no usable answer
        comes back. `max_bytes` bounds the decoded body."""
        url = URL(request.full_url(), encoded=True)  # already encoded: send it as built
        allow_private = self._allow_private()
        if not allow_private:
            host = url.raw_host or ""
            try:
                if parse_ip(host) is not None:  # a literal never reaches the resolver
                    check_address(host)
            except EgressDenied as refused:
                raise EgressRefused(str(refused)) from refused
        session = self.session(app, allow_private)
        headers = request.headers
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers = {**headers, "Accept-Encoding": ACCEPT_ENCODING}
        started = time.perf_counter()
        seconds = request.timeout
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=request.content(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                reader = BodyReader(response.headers.get("Content-Encoding"), max_bytes)
                async for chunk in response.content.iter_any():
                    reader.feed(chunk)
                body = reader.finish()
                status = response.status
                answer_headers = httpx.Headers(list(response.headers.items()))
        except SendError:
            raise
        except TimeoutError as exc:
            raise SendTimeout(f"timed out after {seconds:g}s") from exc
        except (aiohttp.ClientError, EgressDenied) as exc:
            cause = denial_in(exc)
            if cause is not None:
                raise EgressRefused(str(cause)) from exc
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        return HttpAnswer(
            status=status,
            headers=answer_headers,
            body=body,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
