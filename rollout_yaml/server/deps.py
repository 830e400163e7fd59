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
from rollout_yaml.server.auth import Unauthorized, VerifiedTokens, verify_admin_token
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


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("missing Authorization: Bearer token")
    return credentials.credentials.strip()


def consumer_auth(runtime: Runtime) -> Callable[..., Awaitable[str]]:
    """The consumerKey of the request's JWT, or a 401."""
    verified = VerifiedTokens()

    async def consumer(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_consumer_scheme)],
    ) -> str:
        auth = runtime.config.current.settings.auth
        return verified.verify(_token(credentials), auth).key

    return consumer


def admin_auth(runtime: Runtime) -> Callable[..., Awaitable[None]]:
    """Passes only with the admin token, else a 401."""

    async def admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_admin_scheme)],
    ) -> None:
        verify_admin_token(_token(credentials), runtime.config.current.settings.auth)

    return admin


def json_body(runtime: Runtime) -> Callable[[Request], Awaitable[Any]]:
    """The parsed JSON body, after the size check (413) and the JSON check (400)."""

    async def body(request: Request) -> Any:
        limit = runtime.config.current.settings.runtime.limits.max_payload_bytes
        return await read_json(request, limit)

    return body
