"""The one way out to an App on a consumer's behalf: an action's attempt, a poll's pages and a
webhook subscription's request all go through here.

`Outbound.open` resolves the consumer's credential (stored ones decrypted, OAuth2 tokens fresh,
through `Credentials`), builds the one template context (`request_context`), picks the App's
auth flow (http/auth.py) and collects the secrets to redact: the environment's and every form
the flow sends the credential in. The `Call` it returns builds requests from the connector's
specs and sends them: each send takes its slot of the connector's `rate_limit`, goes out signed
through the auth flow (which renews the credential once after a 401 and sends again) and comes
back as an `Exchange`: the answer, or the `SendError` that stood for it, with the request and
response as they are recorded, redacted.

What the answer means stays with each caller: an action applies `success` / `error` /
`output` and its retry policy, a poll pages and reads items, a subscription reads its id.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import Credentials, CredentialUnavailable, secrets_with
from rollout_yaml.expr.compiled import CompiledApp, CompiledEnvironment, CompiledRequest
from rollout_yaml.http.auth import AuthFlow, auth_flow
from rollout_yaml.http.client import AppClients, HttpAnswer
from rollout_yaml.http.errors import BadAnswer, SendError
from rollout_yaml.http.rate_limit import Limiter, Quota, RateLimiter, Slot, quota_for
from rollout_yaml.http.recording import request_record, response_record
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    build_request,
    request_context,
)
from rollout_yaml.http.response import parse_body


class RateLimited(Exception):
    """The send's rate-limit slot is further away than the caller would wait here: `wait`
    seconds (the slot is kept under the caller's ticket)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limit: the next slot is in {wait:.2f}s")
        self.wait = wait


async def credential_values(
    env: CompiledEnvironment, consumer: str, key: str | None, credentials: Credentials | None
) -> dict[str, Any]:
    """The values of a consumer's credential as templates see them as `credential`: through
    `credentials` (stored ones decrypted, OAuth2 tokens refreshed unless `runtime.dry_run`),
    or from the consumer file alone without it; `{}` when no credential is named.
    CredentialUnavailable when it is neither declared nor stored at run time, or has no
    usable values."""
    if key is None:
        return {}
    if credentials is not None:  # declared in the consumer file, or stored at run time
        refresh = not env.settings.runtime.dry_run
        return await credentials.values(env, consumer, key, refresh=refresh)
    owner = env.consumers.get(consumer)
    credential = owner.credentials.get(key) if owner else None
    if credential is None:
        raise CredentialUnavailable(f"credential `{key}` is not declared for `{consumer}`")
    if credential.values is None:
        raise CredentialUnavailable(f"credential `{key}` is stored but has not been connected yet")
    return dict(credential.values)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One send: the request as signed and sent, and the answer or the error that came back
    instead; the records are redacted with the call's secrets."""

    request: PreparedRequest
    answer: HttpAnswer | None
    error: SendError | None
    unrenewable: CredentialUnavailable | None
    """The App answered 401 and the credential could not be renewed (needs_reauth, …)."""
    started: float
    elapsed_ms: float
    request_record: dict[str, Any]
    response_record: dict[str, Any] | None

    @property
    def status(self) -> int | None:
        return None if self.answer is None else self.answer.status

    def body(self) -> Any:
        """The answer's body as data (JSON, else text); BadAnswer when it cannot be read."""
        assert self.answer is not None
        try:
            return parse_body(self.answer.body)
        except BadAnswer as exc:
            raise BadAnswer(str(exc), self.answer.status) from exc


class Call:
    """A consumer's credential applied to one App: builds and sends the requests of one
    action attempt, one poll or one subscription change. One renewal after a 401 per call."""

    def __init__(
        self,
        outbound: Outbound,
        env: CompiledEnvironment,
        app: CompiledApp,
        consumer: str,
        credential: str | None,
        context: Mapping[str, Any],
    ) -> None:
        self._outbound = outbound
        self.env = env
        self.app = app
        self.consumer = consumer
        self.credential_key = credential
        renewable = outbound.credentials is not None and credential is not None
        self.flow: AuthFlow = auth_flow(app, context, self._renew if renewable else None)
        self.secrets = secrets_with(env.secret_values, self.flow.secrets())
        """What to redact from this call's records and messages (grows after a renewal)."""
        self.quota: Quota | None = quota_for(
            app.connector.rate_limit, app.key, consumer, credential
        )
        self._unrenewable: CredentialUnavailable | None = None

    @property
    def context(self) -> Mapping[str, Any]:
        return self.flow.context

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def build(self, spec: CompiledRequest) -> PreparedRequest:
        """A request of the connector rendered with this call's context (unsigned: the auth
        flow signs it when it is sent). RequestBuildError, redacted."""
        try:
            return build_request(self.app, spec, self.flow.context)
        except RequestBuildError as exc:
            raise RequestBuildError(self.redact(str(exc))) from exc

    def record(self, request: PreparedRequest) -> dict[str, Any]:
        """The request as it would be sent (signed), as an attempt records it (dry runs)."""
        return request_record(self._signed(request), self.secrets)

    def _signed(self, request: PreparedRequest) -> PreparedRequest:
        try:
            return self.flow.sign(request)
        except RequestBuildError as exc:
            raise RequestBuildError(self.redact(str(exc))) from exc

    async def _renew(self, used: Mapping[str, Any]) -> Mapping[str, Any] | None:
        credentials = self._outbound.credentials
        assert credentials is not None and self.credential_key is not None
        try:
            return await credentials.renew_after_401(
                self.env, self.consumer, self.credential_key, used
            )
        except CredentialUnavailable as exc:
            self._unrenewable = exc
            return None

    async def send(
        self, request: PreparedRequest, *, ticket: str | None = None, hold: float = math.inf
    ) -> Exchange:
        """Take a rate-limit slot, then sign and send `request` (renewing once after a 401).
        A slot more than `hold` seconds away raises RateLimited (kept under `ticket`); the
        wait is part of neither the request's timeout nor its duration."""
        limiter = self._outbound.limiter
        quota = self.quota
        expiry = request.timeout + 30.0
        taken: list[Slot] = []
        if quota is not None:
            slot = await limiter.take(quota, ticket=ticket, hold=hold, expiry=expiry)
            if slot.wait > hold:
                raise RateLimited(slot.wait)
            taken.append(slot)
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)
        max_bytes = self.env.settings.runtime.limits.max_response_bytes

        async def transport(signed: PreparedRequest) -> HttpAnswer:
            if taken and quota is not None and len(taken) < 2 and self.flow.renewed:
                again = await limiter.take(quota, expiry=expiry)  # the send after a renewal
                taken.append(again)
                await asyncio.sleep(again.wait)
            return await self._outbound.clients.send(self.app.key, signed, max_bytes)

        started = time.time()
        self._unrenewable = None
        try:
            sent, answer = await self.flow.send(request, transport)
        except SendError as exc:
            sent = self.flow.sent or request
            self.secrets = secrets_with(self.secrets, self.flow.secrets())  # a renewed token
            return Exchange(
                sent,
                None,
                exc,
                None,
                started,
                (time.time() - started) * 1000,
                request_record(sent, self.secrets),
                None,
            )
        except RequestBuildError as exc:  # an api_key template failed while signing again
            raise RequestBuildError(self.redact(str(exc))) from exc
        finally:
            if quota is not None:
                for slot in taken:
                    await limiter.sent(quota, slot)
        self.secrets = secrets_with(self.secrets, self.flow.secrets())
        return Exchange(
            sent,
            answer,
            None,
            self._unrenewable,
            started,
            answer.elapsed_ms,
            request_record(sent, self.secrets),
            response_record(answer.status, answer.headers, answer.body, self.secrets),
        )


class Outbound:
    """Opens calls for consumers. One per runtime (and per `rollout-yaml poll`)."""

    def __init__(
        self,
        clients: AppClients,
        credentials: Credentials | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.clients = clients
        self.credentials = credentials
        self.limiter: Limiter = limiter if limiter is not None else RateLimiter()

    async def open(
        self,
        env: CompiledEnvironment,
        app: CompiledApp,
        consumer: str,
        credential: str | None,
        *,
        input: Any,
        cursor: Any = None,
        page: int | None = None,
        run: Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        subscription: Mapping[str, Any] | None = None,
    ) -> Call:
        """A call with `consumer`'s credential `credential` to `app`; CredentialUnavailable
        when it has no usable values."""
        if app.connector.auth.type == "jwt":  # the consumer's token carries it, whatever the key
            values = self.credentials.from_token(consumer) if self.credentials else {}
        else:
            values = await credential_values(env, consumer, credential, self.credentials)
        context = request_context(
            app,
            input=input,
            credential=values,
            cursor=cursor,
            page=page,
            run=run,
            webhook_url=webhook_url,
            subscription=subscription,
        )
        return Call(self, env, app, consumer, credential, context)
