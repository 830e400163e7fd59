"""FastAPI dependencies: who the caller is, and the request body within the size limit.

They are built per app around one Runtime (no module-level state), and they declare the
bearer schemes so that /openapi.json shows which endpoints need which token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.server.auth import VerifiedTokens, bearer, verify_admin_token
from rollout_yaml.server.body import read_json

_consumer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="consumerJWT",
    description="HS512 JWT signed with auth.jwt_secret; `sub` is the consumerKey.",
    bearerFormat="JWT",
)
_admin_scheme = HTTPBearer(
    auto_error=False, scheme_name="adminToken", description="The environment's auth.admin_token."
)


def _token(request: Request) -> str:
    """The bearer token, read as the fast lane reads it (`auth.bearer`)."""
    return bearer(request.headers.get("authorization"))


def consumer_auth(runtime: Runtime) -> Callable[..., Awaitable[str]]:
    """The consumerKey of the request's JWT, or a 401. Verified tokens are remembered in the
    application's one cache (`app.state.tokens`, which the fast lane uses too)."""

    async def consumer(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_consumer_scheme)],
    ) -> str:
        tokens: VerifiedTokens = request.app.state.tokens
        auth = runtime.config.current.settings.auth
        verified = tokens.verify(_token(request), auth)
        runtime.credentials.from_tokens.remember(verified.key, verified.claims)  # `jwt` Apps
        return verified.key

    return consumer


def admin_auth(runtime: Runtime) -> Callable[..., Awaitable[None]]:
    """Passes only with the admin token, else a 401."""

    async def admin(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_admin_scheme)],
    ) -> None:
        verify_admin_token(_token(request), runtime.config.current.settings.auth)

    return admin


def json_body(runtime: Runtime) -> Callable[[Request], Awaitable[Any]]:
    """The parsed JSON body, after the size check (413) and the JSON check (400)."""

    async def body(request: Request) -> Any:
        limit = runtime.config.current.settings.runtime.limits.max_payload_bytes
        return await read_json(request, limit)

    return body
