"""Auth flows: how a credential is applied to a request, and what happens when the App answers
401 — one small object per auth kind, apart from the client that moves the bytes (as httpx's
auth flows are).

A flow is made for one credential and one request context (`request_context`). `sign` adds
the credential's headers and query parameters to a built request; `send` signs, sends through
the transport it is given and, for a kind that can renew (OAuth2), asks `renew` once after a
401 and signs and sends once more. Renewing itself (refresh tokens, locks, the store) is the
engine's: the flow only knows when to ask. `secrets` is every value the flow sends that must
never be recorded, in the forms it sends them (a basic auth token is base64 of both parts).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from rollout_yaml.expr.compiled import CompiledApp
from rollout_yaml.http.client import HttpAnswer
from rollout_yaml.http.request import PreparedRequest, render_tree_part, scalar

Renew = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]
"""Given the credential values the App refused, new values, or None when nothing can renew."""
Transport = Callable[[PreparedRequest], Awaitable[HttpAnswer]]


def credential_secrets(app: CompiledApp, values: Mapping[str, Any]) -> frozenset[str]:
    """The values of `values` that are secrets of this App's credentials (for redaction)."""
    fields = app.connector.secret_fields() | {"client_secret"}
    return frozenset(str(v) for k, v in values.items() if k in fields and v)


class AuthFlow:
    """No auth (`type: none`): requests go out as built."""

    renewable: ClassVar[bool] = False

    def __init__(
        self, app: CompiledApp, context: Mapping[str, Any], renew: Renew | None = None
    ) -> None:
        self.app = app
        self.context: dict[str, Any] = dict(context)
        self._renew = renew if self.renewable else None
        self.renewed = False
        self.sent: PreparedRequest | None = None
        """The last request as signed and sent (recorded even when no answer came)."""

    @property
    def credential(self) -> Mapping[str, Any]:
        found = self.context.get("credential")
        return found if isinstance(found, Mapping) else {}

    def parts(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers and query parameters this credential adds."""
        return {}, {}

    def query(self) -> dict[str, Any]:
        return self.parts()[1]

    def secrets(self) -> frozenset[str]:
        return credential_secrets(self.app, self.credential)

    def sign(self, request: PreparedRequest) -> PreparedRequest:
        """`request` with the credential applied; signing again replaces what an earlier
        signature added. A query parameter the URL itself carries (a next-page URL the App
        wrote) is left as the App wrote it."""
        headers, query = self.parts()
        if not headers and not query:
            return request
        own = {k for k, _ in parse_qsl(urlsplit(request.url).query, keep_blank_values=True)}
        names = [name for name in query if name not in own]
        kept = [(k, v) for k, v in request.query if k not in names]
        added = [
            (name, scalar(item))
            for name in names
            for item in (query[name] if isinstance(query[name], list) else [query[name]])
            if item is not None
        ]
        return replace(request, headers={**request.headers, **headers}, query=kept + added)

    async def send(
        self, request: PreparedRequest, transport: Transport
    ) -> tuple[PreparedRequest, HttpAnswer]:
        """Sign and send; after a 401, renew the credential once (per flow) and send again."""
        self.sent = self.sign(request)
        answer = await transport(self.sent)
        if answer.status != 401 or self._renew is None or self.renewed:
            return self.sent, answer
        self.renewed = True
        fresh = await self._renew(self.credential)
        if fresh is None:
            return self.sent, answer
        self.context = {**self.context, "credential": dict(fresh)}
        self.sent = self.sign(request)
        return self.sent, await transport(self.sent)


class ApiKeyFlow(AuthFlow):
    """`api_key`: the connector's `auth.headers` / `auth.query` templates over the context."""

    def parts(self) -> tuple[dict[str, str], dict[str, Any]]:
        headers = render_tree_part(self.app.auth_headers, self.context, "auth headers") or {}
        query = render_tree_part(self.app.auth_query, self.context, "auth query") or {}
        return {k: str(v) for k, v in headers.items()}, dict(query)


class JwtFlow(ApiKeyFlow):
    """`jwt`: like `api_key`, over the `authData` of the consumer's token, every value of which
    is a secret (the partner's App decides what it holds)."""

    def secrets(self) -> frozenset[str]:
        return frozenset(str(v) for v in self.credential.values() if isinstance(v, str) and v)


class BearerFlow(AuthFlow):
    field = "token"

    def parts(self) -> tuple[dict[str, str], dict[str, Any]]:
        return {"Authorization": f"Bearer {self.credential.get(self.field, '')}"}, {}


class OAuth2Flow(BearerFlow):
    """A bearer access token that the engine can refresh after a 401."""

    field = "access_token"
    renewable = True


class BasicFlow(AuthFlow):
    def _token(self) -> str:
        raw = f"{self.credential.get('username', '')}:{self.credential.get('password', '')}"
        return base64.b64encode(raw.encode()).decode()

    def parts(self) -> tuple[dict[str, str], dict[str, Any]]:
        return {"Authorization": "Basic " + self._token()}, {}

    def secrets(self) -> frozenset[str]:
        found = super().secrets()
        return found | {self._token()} if self.credential.get("password") else found


FLOWS: dict[str, type[AuthFlow]] = {
    "none": AuthFlow,
    "api_key": ApiKeyFlow,
    "jwt": JwtFlow,
    "bearer": BearerFlow,
    "basic": BasicFlow,
    "oauth2": OAuth2Flow,
}


def auth_flow(app: CompiledApp, context: Mapping[str, Any], renew: Renew | None = None) -> AuthFlow:
    """The flow of the App's auth kind for the credential in `context`."""
    return FLOWS[app.connector.auth.type](app, context, renew)


def sign(app: CompiledApp, request: PreparedRequest, context: Mapping[str, Any]) -> PreparedRequest:
    """`request` signed with the credential of `context` (previews and offline tests)."""
    return auth_flow(app, context).sign(request)
