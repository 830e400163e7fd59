"""One poll of one poll group: its requests page by page and the items they hold.

Automations of one consumer whose trigger, credential and inputParams are identical form a
poll group: one request sequence, one cursor, one set of seen ids, and each item fanned out to
every automation of the group. Shared by the runner's poller and `rollout-yaml poll`; nothing
here writes to the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from rollout_yaml.engine.credentials import (
    Credentials,
    CredentialUnavailable,
    configured_values,
    secret_values,
    secrets_with,
)
from rollout_yaml.expr.compiled import (
    CompiledApp,
    CompiledAutomation,
    CompiledEnvironment,
    CompiledPoll,
)
from rollout_yaml.http.client import AppClients, SendError
from rollout_yaml.http.pagination import PaginationError, Paginator
from rollout_yaml.http.rate_limit import quota_for
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    app_context,
    auth_headers_and_query,
    build_request,
)
from rollout_yaml.http.response import error_message, parse_body

MAX_ID_LENGTH = 200


@dataclass(frozen=True, slots=True)
class PollGroup:
    key: str
    """`<app>/<trigger>/<digest>`: the poll state's and the lease's name."""
    digest: str
    consumer: str
    app: str
    trigger: str
    credential: str | None
    input: Mapping[str, Any]
    automations: tuple[CompiledAutomation, ...]
    interval: float

    @property
    def state_key(self) -> str:
        return f"poll:{self.key}"

    @property
    def lease_name(self) -> str:
        return f"poll:{self.key}"

    def event_key(self, item_id: str) -> str:
        """The event's dedupe key: the group and the item, so a re-poll after a crash stores
        nothing twice, while another group polling the same item still gets its own event."""
        return f"poll:{self.digest}:{item_id}"

    @property
    def refs(self) -> list[str]:
        return [a.key for a in self.automations]


def group_digest(consumer: str, app: str, trigger: str, credential: str | None, inputs: Any) -> str:
    text = json.dumps(
        [consumer, app, trigger, credential, inputs],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def poll_groups(env: CompiledEnvironment) -> dict[str, PollGroup]:
    """Every enabled automation on a poll trigger, grouped; the interval is the trigger's
    `every`, never below the environment's `runtime.poll_floor`."""
    members: dict[str, list[CompiledAutomation]] = {}
    for automation in env.automations.values():
        if automation.enabled and _poll_of(env, automation) is not None:
            members.setdefault(_digest_of(automation), []).append(automation)
    floor = env.settings.runtime.poll_floor
    groups = {}
    for digest, automations in members.items():
        first = automations[0]
        poll = _poll_of(env, first)
        assert poll is not None
        group = PollGroup(
            key=f"{first.trigger_app}/{first.trigger_key}/{digest}",
            digest=digest,
            consumer=first.consumer,
            app=first.trigger_app,
            trigger=first.trigger_key,
            credential=first.trigger_credential,
            input=first.trigger_input,
            automations=tuple(sorted(automations, key=lambda a: a.key)),
            interval=max(poll.every, floor),
        )
        groups[group.key] = group
    return groups


def group_of(env: CompiledEnvironment, automation: CompiledAutomation) -> PollGroup | None:
    """The poll group an automation belongs to (it need not be enabled)."""
    digest = _digest_of(automation)
    for group in poll_groups(env).values():
        if group.digest == digest:
            return group
    poll = _poll_of(env, automation)
    if poll is None:
        return None
    return PollGroup(
        key=f"{automation.trigger_app}/{automation.trigger_key}/{digest}",
        digest=digest,
        consumer=automation.consumer,
        app=automation.trigger_app,
        trigger=automation.trigger_key,
        credential=automation.trigger_credential,
        input=automation.trigger_input,
        automations=(automation,),
        interval=max(poll.every, env.settings.runtime.poll_floor),
    )


def _digest_of(automation: CompiledAutomation) -> str:
    return group_digest(
        automation.consumer,
        automation.trigger_app,
        automation.trigger_key,
        automation.trigger_credential,
        dict(automation.trigger_input),
    )


def _poll_of(env: CompiledEnvironment, automation: CompiledAutomation) -> CompiledPoll | None:
    app = env.apps.get(automation.trigger_app)
    trigger = app.triggers.get(automation.trigger_key) if app else None
    return trigger.poll if trigger else None


def item_key(value: Any) -> str | None:
    """An item's dedupe key as text: strings as they are, numbers as JSON (`7`, not `7.0`
    for an integer); a very long one is replaced by its SHA-256."""
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_ID_LENGTH:
        text = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


class PollFailed(Exception):
    """A poll that cannot go on: `kind` is credential, request, transport, egress, app_error,
    response, pagination, expression or lease. Its message may hold secrets until redacted."""

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def summary(self) -> str:
        """What an unauthenticated status page may show: the kind and the HTTP status."""
        return f"{self.kind} (HTTP {self.status})" if self.status else self.kind


@dataclass(frozen=True, slots=True)
class PolledItem:
    id: str
    payload: Any
    item: Any


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    request: PreparedRequest
    status: int
    elapsed_ms: float
    items: tuple[PolledItem, ...]
    count: int
    """Items the page held, including those without an id."""


class PollFetch:
    """The pages of one poll, requested one after the other; `stopped` says why it ended."""

    def __init__(
        self,
        env: CompiledEnvironment,
        group: PollGroup,
        clients: AppClients,
        cursor: Any,
        credentials: Credentials | None = None,
    ) -> None:
        self.env = env
        self.group = group
        self.clients = clients
        self.cursor = cursor
        self.credentials = credentials
        self.secrets = env.secret_values
        """What to redact from this poll's messages: the environment's secrets and the
        credential's values, once they are known."""
        self.app: CompiledApp = env.apps[group.app]
        poll = self.app.triggers[group.trigger].poll
        assert poll is not None
        self.poll: CompiledPoll = poll
        self.stopped: str | None = None
        self.without_id = 0

    async def _credential(self) -> dict[str, Any]:
        """The group's credential: stored ones decrypted and OAuth2 tokens refreshed through
        `credentials` (the runner); from the consumer file alone without it."""
        group = self.group
        try:
            if self.credentials is None or group.credential is None:
                values = configured_values(self.env, group.consumer, group.credential)
            else:
                refresh = not self.env.settings.runtime.dry_run
                values = await self.credentials.values(
                    self.env, group.consumer, group.credential, refresh=refresh
                )
        except CredentialUnavailable as exc:
            raise PollFailed("credential", str(exc)) from exc
        self.secrets = secrets_with(self.env.secret_values, secret_values(self.app, values))
        return values

    async def _renewed(self, used: dict[str, Any]) -> dict[str, Any] | None:
        """New values after the App answered 401 (an OAuth2 token it no longer takes)."""
        group = self.group
        if self.credentials is None or group.credential is None:
            return None
        try:
            fresh = await self.credentials.renew_after_401(
                self.env, group.consumer, group.credential, used
            )
        except CredentialUnavailable as exc:
            raise PollFailed("credential", str(exc)) from exc
        if fresh is not None:
            self.secrets = secrets_with(self.env.secret_values, secret_values(self.app, fresh))
        return fresh

    def _first(self, credential: dict[str, Any]) -> tuple[PreparedRequest, Paginator]:
        group, app = self.group, self.app
        context = {
            "input": dict(group.input),
            "credential": credential,
            "app": app_context(app),
            "cursor": self.cursor,
            "page": 1,
            "run": {"id": None, "attempt": 1},
            "webhook": {"url": None},
            "subscription": {},
        }
        try:
            request = build_request(app, self.poll.request, context, credential)
            _, auth_query = auth_headers_and_query(app, context, credential)
        except RequestBuildError as exc:
            raise PollFailed("request", str(exc)) from exc
        pager = Paginator(self.poll.paginate, self.poll.next_page, auth_query)
        return pager.first(request), pager

    async def pages(self) -> AsyncIterator[Page]:
        request: PreparedRequest | None
        credential = await self._credential()
        request, pager = self._first(credential)
        renewed = False
        max_bytes = self.env.settings.runtime.limits.max_response_bytes
        # every page draws from the credential's quota, as an action's request does
        quota = quota_for(
            self.app.connector.rate_limit, self.app.key, self.group.consumer, self.group.credential
        )
        number = 0
        while request is not None:
            number += 1
            try:
                answer = await self.clients.send(self.app.key, request, max_bytes, quota=quota)
            except SendError as exc:
                kind = "egress" if exc.kind == "egress" else "transport"
                raise PollFailed(kind, f"page {number}: {exc}") from exc
            if answer.status == 401 and not renewed:
                fresh = await self._renewed(credential)
                if fresh is not None:  # the same page once more, with the new token
                    renewed, credential = True, fresh
                    request = self._reauthorized(request, fresh)
                    number -= 1
                    continue
            body = parse_body(answer.body)
            if not 200 <= answer.status < 300:
                message = error_message(self.app, None, answer.status, body)
                raise PollFailed(
                    "app_error", f"page {number}: HTTP {answer.status}: {message}", answer.status
                )
            raw = self._items(number, body)
            try:
                following = pager.next(request, answer.headers, body, len(raw))
            except PaginationError as exc:
                raise PollFailed("pagination", f"page {number}: {exc}") from exc
            yield Page(
                number,
                request,
                answer.status,
                answer.elapsed_ms,
                tuple(self._polled(raw)),
                len(raw),
            )
            request = following
        self.stopped = pager.stopped

    def _reauthorized(
        self, request: PreparedRequest, credential: dict[str, Any]
    ) -> PreparedRequest:
        context = {"credential": credential, "app": app_context(self.app), "input": {}}
        headers, _ = auth_headers_and_query(self.app, context, credential)
        return replace(request, headers={**request.headers, **headers})

    def _items(self, number: int, body: Any) -> list[Any]:
        if isinstance(body, str):
            raise PollFailed("response", f"page {number}: the answer is not JSON")
        found = _search(self.poll.items.search, body, "items")
        if found is None:
            return []
        if not isinstance(found, list):
            raise PollFailed(
                "response",
                f"page {number}: `items` gave {type(found).__name__}, not a list of items",
            )
        return found

    def _polled(self, raw: list[Any]) -> list[PolledItem]:
        out = []
        for item in raw:
            key = item_key(_search(self.poll.id.search, item, "id"))
            if key is None:
                self.without_id += 1
                continue
            payload = (
                _search(self.poll.payload.search, item, "payload")
                if self.poll.payload is not None
                else item
            )
            out.append(PolledItem(key, payload, item))
        return out

    def next_cursor(self, items: list[Any]) -> Any:
        """`cursor` over every item of the poll; the previous cursor when it gives null."""
        if self.poll.cursor is None:
            return self.cursor
        value = _search(self.poll.cursor.search, items, "cursor")
        return self.cursor if value is None else value


def _search(search: Any, data: Any, what: str) -> Any:
    try:
        return search(data)
    except Exception as exc:  # a JMESPath type error on the App's data
        raise PollFailed("expression", f"`{what}` failed on the App's answer: {exc}") from exc
