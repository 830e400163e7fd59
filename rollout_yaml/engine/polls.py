"""One poll of one poll group: its requests page by page and the items they hold.

Automations of one consumer whose trigger, credential and inputParams are identical form a
poll group: one request sequence, one cursor, one set of seen ids, and each item fanned out to
every automation of the group. Shared by the runner's poller and `rollout-yaml poll`; nothing
here writes to the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rollout_yaml.engine.credentials import CredentialUnavailable
from rollout_yaml.engine.outbound import Call, Outbound
from rollout_yaml.expr.compiled import (
    CompiledApp,
    CompiledAutomation,
    CompiledEnvironment,
    CompiledPoll,
)
from rollout_yaml.http.errors import BadAnswer
from rollout_yaml.http.pagination import PaginationError, Paginator
from rollout_yaml.http.request import PreparedRequest, RequestBuildError
from rollout_yaml.http.response import error_message

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
    return PollGroups.build(env).groups


@dataclass(frozen=True)
class PollGroups:
    """The poll groups of one configuration, and what they are made of, so that the next
    configuration's groups are computed from the automations that changed (an API write, a
    saved consumer file) rather than from all of them."""

    groups: dict[str, PollGroup]
    members: dict[str, dict[tuple[str, str], CompiledAutomation]]
    """By digest, the automations of each group."""
    digests: dict[tuple[str, str], str]
    """By (consumer, key), the group of each member."""

    @classmethod
    def build(cls, env: CompiledEnvironment) -> PollGroups:
        members: dict[str, dict[tuple[str, str], CompiledAutomation]] = {}
        digests: dict[tuple[str, str], str] = {}
        for ref, automation in env.automations.items():
            if automation.enabled and _poll_of(env, automation) is not None:
                digest = _digest_of(automation)
                members.setdefault(digest, {})[ref] = automation
                digests[ref] = digest
        groups = {}
        for automations in members.values():
            group = _group(env, automations)
            groups[group.key] = group
        return cls(groups, members, digests)

    def changed(
        self,
        env: CompiledEnvironment,
        removed: Iterable[CompiledAutomation],
        added: Iterable[CompiledAutomation],
    ) -> PollGroups:
        """The groups of `env`, which is this configuration with `removed` taken out and
        `added` put in (its apps and settings unchanged)."""
        members = dict(self.members)
        digests = dict(self.digests)
        groups = dict(self.groups)
        touched: dict[str, str | None] = {}  # digest → its group's key before the change

        def take(digest: str) -> dict[tuple[str, str], CompiledAutomation]:
            if digest not in touched:
                before = members.get(digest)
                touched[digest] = _key_of(next(iter(before.values()))) if before else None
                members[digest] = dict(before or {})
            return members[digest]

        for automation in removed:
            ref = (automation.consumer, automation.key)
            digest = digests.pop(ref, None)
            if digest is not None:
                take(digest).pop(ref, None)
        for automation in added:
            ref = (automation.consumer, automation.key)
            if automation.enabled and _poll_of(env, automation) is not None:
                digest = _digest_of(automation)
                take(digest)[ref] = automation
                digests[ref] = digest
        for digest, old_key in touched.items():
            if old_key is not None:
                groups.pop(old_key, None)
            if members[digest]:
                group = _group(env, members[digest])
                groups[group.key] = group
            else:
                del members[digest]
        return PollGroups(groups, members, digests)


def _key_of(automation: CompiledAutomation) -> str:
    return f"{automation.trigger_app}/{automation.trigger_key}/{_digest_of(automation)}"


def _group(
    env: CompiledEnvironment, members: dict[tuple[str, str], CompiledAutomation]
) -> PollGroup:
    automations = sorted(members.values(), key=lambda a: a.key)
    first = automations[0]
    poll = _poll_of(env, first)
    assert poll is not None
    digest = _digest_of(first)
    return PollGroup(
        key=f"{first.trigger_app}/{first.trigger_key}/{digest}",
        digest=digest,
        consumer=first.consumer,
        app=first.trigger_app,
        trigger=first.trigger_key,
        credential=first.trigger_credential,
        input=first.trigger_input,
        automations=tuple(automations),
        interval=max(poll.every, env.settings.runtime.poll_floor),
    )


def group_key(env: CompiledEnvironment, automation: CompiledAutomation) -> str | None:
    """The key of the poll group an automation belongs to, None if it is not polled."""
    return _key_of(automation) if _poll_of(env, automation) is not None else None


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
    """The pages of one poll, requested one after the other through the outbound path (one
    call: one credential, one context, one renewal after a 401); `stopped` says why it
    ended."""

    def __init__(
        self,
        env: CompiledEnvironment,
        group: PollGroup,
        outbound: Outbound,
        cursor: Any,
    ) -> None:
        self.env = env
        self.group = group
        self.outbound = outbound
        self.cursor = cursor
        self.secrets = env.secret_values
        """What to redact from this poll's messages: the environment's secrets and the
        credential's values, once they are known."""
        self.app: CompiledApp = env.apps[group.app]
        poll = self.app.triggers[group.trigger].poll
        assert poll is not None
        self.poll: CompiledPoll = poll
        self.stopped: str | None = None
        self.without_id = 0

    async def _open(self) -> Call:
        group = self.group
        try:
            call = await self.outbound.open(
                self.env,
                self.app,
                group.consumer,
                group.credential,
                input=dict(group.input),
                cursor=self.cursor,
                page=1,
            )
        except CredentialUnavailable as exc:
            raise PollFailed("credential", str(exc)) from exc
        self.secrets = call.secrets
        return call

    async def pages(self) -> AsyncIterator[Page]:
        call = await self._open()
        try:
            first = call.build(self.poll.request)
            pager = Paginator(self.poll.paginate, self.poll.next_page, call.flow.query())
        except RequestBuildError as exc:
            raise PollFailed("request", str(exc)) from exc
        request: PreparedRequest | None = pager.first(first)
        number = 0
        while request is not None:
            number += 1
            # every page draws from the credential's quota, as an action's request does
            try:
                exchange = await call.send(request)
            except RequestBuildError as exc:
                raise PollFailed("request", f"page {number}: {exc}") from exc
            self.secrets = call.secrets
            if exchange.unrenewable is not None:
                raise PollFailed("credential", str(exchange.unrenewable))
            if exchange.error is not None:
                raise PollFailed(exchange.error.error_kind, f"page {number}: {exchange.error}")
            answer = exchange.answer
            assert answer is not None
            try:
                body = exchange.body()
            except BadAnswer as exc:
                raise PollFailed("response", f"page {number}: {exc}", answer.status) from exc
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
                exchange.request,
                answer.status,
                answer.elapsed_ms,
                tuple(self._polled(raw)),
                len(raw),
            )
            request = following
        self.stopped = pager.stopped

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
