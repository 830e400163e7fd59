"""Keeps the `webhooks` table in step with the configuration, and the Apps' REST-hook
subscriptions in step with the table.

Each webhook automation has one live row: its hookId (the URL) and, for triggers that declare
`subscribe`, the subscription made at the App. The hookId stays while the automation's trigger,
credential and inputParams are unchanged (a fingerprint of them is stored); when they change,
or the automation is removed, the row is retired, its subscription removed with the trigger's
`unsubscribe` request, and a new row is made. A disabled automation keeps its hookId but is
unsubscribed until it is enabled again.

One replica does this work at a time (the `webhook-subscriptions` lease); it runs on start,
after every reload, when a retry is due, and every `interval` seconds. A failed request is
retried with exponential backoff; the failure is logged (redacted) and shown by `GET /status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from rollout_yaml.engine.credentials import Credentials, CredentialUnavailable
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.outbound import Outbound, credential_values
from rollout_yaml.engine.webhooks import fingerprint, is_webhook, public_base, webhook_url
from rollout_yaml.expr.compiled import (
    CompiledApp,
    CompiledEnvironment,
    CompiledRequest,
    CompiledWebhook,
)
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import BadAnswer
from rollout_yaml.http.request import RequestBuildError
from rollout_yaml.http.response import error_message
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import Hook, HookState

log = logging.getLogger("rollout_yaml.webhooks")

LEASE_NAME = "webhook-subscriptions"
KEEP_PREVIOUS = 3  # configurations kept to unsubscribe what a reload removed


def new_hook_id() -> str:
    """128 random bits, hex: the secret part of a webhook URL."""
    return secrets.token_hex(16)


class _Failed(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Target:
    """What a subscription request needs: the configuration whose App, trigger and
    credential it is sent with."""

    env: CompiledEnvironment
    app: CompiledApp
    spec: CompiledWebhook


class Subscriptions:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        clients: AppClients,
        *,
        owner: str,
        listening: Callable[[], str | None] = lambda: None,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.time,
        interval: float = 30.0,
        lease_ttl: float = 90.0,
        backoff_base: float = 1.0,
        backoff_max: float = 600.0,
        outbound: Outbound | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clients = clients
        self.outbound = outbound or Outbound(clients, credentials)
        self.owner = owner
        self.listening = listening
        self.credentials = credentials
        self.clock = clock
        self.interval = interval
        self.lease_ttl = lease_ttl
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._previous: list[CompiledEnvironment] = []
        self._pending: set[tuple[str, str]] | None = None
        """Automations changed since the last pass (None: every one, a full pass)."""
        self._next_full = 0.0
        self._next_due = 0.0
        self._wake = asyncio.Event()
        self._reconciling = asyncio.Lock()  # one reconcile at a time: a row made once
        self._dry_run_said: set[str] = set()

    def base_url(self) -> str:
        return public_base(self.config.current, self.listening())

    def changed(
        self, previous: CompiledEnvironment, refs: Collection[tuple[str, str]] | None = None
    ) -> None:
        """Called after a swap: diff the new configuration against the table now; only the
        automations `refs` when the swap changed just those (an API write, one consumer)."""
        self._previous = [previous, *self._previous][:KEEP_PREVIOUS]
        if refs is None:
            self._pending = None
        elif self._pending is not None:
            self._pending.update(refs)
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = await self.sync()
            except Exception:
                log.exception("syncing webhook subscriptions failed; trying again")
                delay = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.05))

    async def release(self) -> None:
        await self.store.release_lease(LEASE_NAME, self.owner)

    # -- one pass ----------------------------------------------------------------------

    async def sync(self) -> float:
        """Reconcile the table with the configuration, then make the due App calls; return
        the seconds until the next pass is needed."""
        if not await self._hold_lease():
            return self.interval
        env = self.config.current
        pending, self._pending = self._pending, set()
        if pending is not None and self.clock() < min(self._next_full, self._next_due):
            return await self._sync_some(env, pending)  # no retry due: only what changed
        async with self._reconciling:
            await self._reconcile(env)
        now = self.clock()
        for hook in await self.store.list_hooks():
            if hook.next_attempt_at is not None and hook.next_attempt_at > now:
                continue
            if not await self._hold_lease():
                return self.interval
            await self._work(env, hook)
        due = [h.next_attempt_at for h in await self.store.list_hooks() if h.next_attempt_at]
        self._next_full = self.clock() + self.interval
        self._next_due = min([self._next_full, *due])
        return min([self.interval, *(when - self.clock() for when in due)])

    async def _sync_some(self, env: CompiledEnvironment, refs: set[tuple[str, str]]) -> float:
        """A pass over the rows of the automations `refs` only: what one write changed, at a
        cost that does not grow with the environment."""
        for consumer in sorted({c for c, _ in refs}):
            keys = {k for c, k in refs if c == consumer}
            async with self._reconciling:
                await self._reconcile(env, consumer, keys)
            now = self.clock()
            for hook in await self.store.list_hooks(consumer):
                if hook.automation not in keys:
                    continue
                if hook.next_attempt_at is not None and hook.next_attempt_at > now:
                    continue
                if not await self._hold_lease():
                    return self.interval
                await self._work(env, hook)
            for hook in await self.store.list_hooks(consumer):  # retries the work scheduled
                if hook.automation in keys and hook.next_attempt_at is not None:
                    self._next_due = min(self._next_due, hook.next_attempt_at)
        return max(0.0, min(self._next_due, self._next_full) - self.clock())

    async def ensure(self, consumer: str, key: str) -> None:
        """Make the row of one automation now (its webhook URL is in the answer that created
        it), where this process holds the lease; the next pass makes the App calls."""
        env = self.config.current
        automation = env.automations.get((consumer, key))
        if automation is None or not is_webhook(env, automation):
            return
        if not await self._hold_lease():
            return
        async with self._reconciling:
            await self._reconcile(env, consumer, {key})

    async def _hold_lease(self) -> bool:
        return await self.store.acquire_lease(LEASE_NAME, self.owner, self.clock(), self.lease_ttl)

    async def _reconcile(
        self, env: CompiledEnvironment, consumer: str | None = None, keys: set[str] | None = None
    ) -> None:
        """Make the rows say what the configuration says: one live row per webhook
        automation with its current fingerprint, the rest retired (of one consumer's
        automations `keys` only, when given)."""
        live = {
            (hook.consumer, hook.automation): hook
            for hook in await self.store.list_hooks(consumer)
            if hook.state is not HookState.RETIRED and (keys is None or hook.automation in keys)
        }
        now = self.clock()
        if consumer is None or keys is None:
            automations = list(env.automations.values())
        else:
            found = (env.automations.get((consumer, key)) for key in sorted(keys))
            automations = [a for a in found if a is not None]
        for automation in automations:
            if not is_webhook(env, automation):
                continue
            wanted = HookState.ACTIVE if automation.enabled else HookState.DISABLED
            print_ = fingerprint(automation)
            hook = live.pop((automation.consumer, automation.key), None)
            if hook is not None and hook.fingerprint != print_:
                await self._retire(hook, "its trigger, credential or inputParams changed")
                hook = None
            if hook is None:
                created = Hook(
                    id=new_hook_id(),
                    consumer=automation.consumer,
                    automation=automation.key,
                    app=automation.trigger_app,
                    trigger=automation.trigger_key,
                    credential=automation.trigger_credential,
                    input=dict(automation.trigger_input),
                    fingerprint=print_,
                    state=wanted,
                    subscription=None,
                    subscribed_url=None,
                    attempts=0,
                    next_attempt_at=None,
                    last_error=None,
                    created_at=now,
                    updated_at=now,
                )
                await self.store.insert_hook(created)
                log.info(
                    "webhook URL created for %s",
                    automation.ref,
                    extra={"consumer": automation.consumer, "automation": automation.key},
                )
            elif hook.state is not wanted:
                await self.store.update_hook(
                    hook.id,
                    {
                        "state": wanted,
                        "attempts": 0,
                        "next_attempt_at": None,
                        "last_error": None,
                        "updated_at": now,
                    },
                )
        for hook in live.values():
            await self._retire(hook, "its automation was removed")

    async def _retire(self, hook: Hook, why: str) -> None:
        log.info(
            "webhook URL of %s/%s retired: %s",
            hook.consumer,
            hook.automation,
            why,
            extra={"consumer": hook.consumer, "automation": hook.automation},
        )
        await self.store.update_hook(
            hook.id,
            {
                "state": HookState.RETIRED,
                "attempts": 0,
                "next_attempt_at": None,
                "last_error": None,
                "updated_at": self.clock(),
            },
        )

    # -- App calls ---------------------------------------------------------------------

    async def _work(self, env: CompiledEnvironment, hook: Hook) -> None:
        subscribed = hook.subscription is not None
        if hook.state is HookState.ACTIVE:
            app = env.apps.get(hook.app)
            trigger = app.triggers.get(hook.trigger) if app else None
            if trigger is None or trigger.webhook is None or trigger.webhook.subscribe is None:
                return
            target = await self._target(hook, [env])
            if target is None:  # a stored credential not connected yet: retried, shown
                why = f"credential `{hook.credential}` has no values (not connected yet)"
                await self._failed(hook, "subscribe", why)
                return
            url = webhook_url(self.base_url(), hook)
            if subscribed and hook.subscribed_url == url:
                return
            if env.settings.runtime.dry_run:
                if hook.id not in self._dry_run_said:
                    self._dry_run_said.add(hook.id)
                    log.info("dry run: not subscribing %s/%s", hook.consumer, hook.automation)
                return
            # the public URL changed: move the subscription to the new one
            if subscribed and not await self._unsubscribe(target, hook):
                return
            await self._subscribe(target, hook, url)
        elif subscribed:
            target = await self._target(hook, [env, *self._previous])
            if target is None or target.spec.unsubscribe is None:
                self._leave(hook, "no configured `unsubscribe` request (or credential) to use")
                await self._cleared(hook)
                return
            if await self._unsubscribe(target, hook):
                await self._cleared(hook)
        elif hook.state is HookState.RETIRED:
            await self.store.delete_hook(hook.id)

    async def _cleared(self, hook: Hook) -> None:
        if hook.state is HookState.RETIRED:
            await self.store.delete_hook(hook.id)
        else:
            await self.store.update_hook(
                hook.id,
                {"subscription": None, "subscribed_url": None, "updated_at": self.clock()},
            )

    def _leave(self, hook: Hook, why: str) -> None:
        log.warning(
            "cannot unsubscribe the webhook of %s/%s (%s); the App keeps subscription %s",
            hook.consumer,
            hook.automation,
            why,
            (hook.subscription or {}).get("id"),
            extra={"consumer": hook.consumer, "automation": hook.automation},
        )

    async def _target(self, hook: Hook, envs: list[CompiledEnvironment]) -> _Target | None:
        """The first configuration that still has this hook's App trigger and credential
        (the current one first: its credential values are the freshest)."""
        for candidate in envs:
            app = candidate.apps.get(hook.app)
            trigger = app.triggers.get(hook.trigger) if app else None
            if app is None or trigger is None or trigger.webhook is None:
                continue
            try:
                await credential_values(candidate, hook.consumer, hook.credential, self.credentials)
            except CredentialUnavailable:
                continue
            return _Target(candidate, app, trigger.webhook)
        return None

    async def _subscribe(self, target: _Target, hook: Hook, url: str) -> None:
        spec = target.spec
        assert spec.subscribe is not None
        try:
            body = await self._send(target, hook, spec.subscribe, url, None)
        except _Failed as failed:
            await self._failed(hook, "subscribe", str(failed))
            return
        found = spec.subscription_id.search(body) if spec.subscription_id is not None else None
        subscription_id = None if found is None else found if isinstance(found, str) else str(found)
        if spec.subscription_id is not None and subscription_id is None:
            log.warning(
                "the subscribe answer of %s/%s holds no subscription id (`subscribe.id`)",
                hook.consumer,
                hook.automation,
                extra={"consumer": hook.consumer, "automation": hook.automation},
            )
        await self.store.update_hook(
            hook.id,
            {
                "subscription": {"id": subscription_id},
                "subscribed_url": url,
                "attempts": 0,
                "next_attempt_at": None,
                "last_error": None,
                "updated_at": self.clock(),
            },
        )
        log.info(
            "subscribed %s/%s at %s (subscription %s)",
            hook.consumer,
            hook.automation,
            hook.app,
            subscription_id,
            extra={"consumer": hook.consumer, "automation": hook.automation},
        )

    async def _unsubscribe(self, target: _Target, hook: Hook) -> bool:
        spec = target.spec
        if spec.unsubscribe is None:
            self._leave(hook, "the trigger has no `unsubscribe` request")
            return True
        try:
            await self._send(
                target, hook, spec.unsubscribe, hook.subscribed_url, hook.subscription, gone_ok=True
            )
        except _Failed as failed:
            await self._failed(hook, "unsubscribe", str(failed))
            return False
        log.info(
            "unsubscribed %s/%s at %s (subscription %s)",
            hook.consumer,
            hook.automation,
            hook.app,
            (hook.subscription or {}).get("id"),
            extra={"consumer": hook.consumer, "automation": hook.automation},
        )
        return True

    async def _send(
        self,
        target: _Target,
        hook: Hook,
        request_spec: CompiledRequest,
        url: str | None,
        subscription: dict[str, Any] | None,
        *,
        gone_ok: bool = False,
    ) -> Any:
        """Build and send one subscription request with the consumer's credential through
        the outbound path, as actions are sent; a non-2xx answer (except 404/410 when
        removing) is a failure. Messages are redacted."""
        try:
            call = await self.outbound.open(
                target.env,
                target.app,
                hook.consumer,
                hook.credential,
                input=dict(hook.input or {}),
                webhook_url=url,
                subscription=subscription,
            )
        except CredentialUnavailable as exc:
            raise _Failed(str(exc)) from exc
        try:
            exchange = await call.send(call.build(request_spec))
        except RequestBuildError as exc:  # redacted by the call
            raise _Failed(str(exc)) from exc
        if exchange.unrenewable is not None:
            raise _Failed(call.redact(str(exchange.unrenewable)))
        if exchange.error is not None:
            raise _Failed(call.redact(str(exchange.error)))
        answer = exchange.answer
        assert answer is not None
        try:
            body = exchange.body()
        except BadAnswer as exc:
            raise _Failed(call.redact(f"HTTP {answer.status}: {exc}")) from exc
        if 200 <= answer.status < 300 or (gone_ok and answer.status in (404, 410)):
            return body
        message = error_message(target.app, None, answer.status, body)
        raise _Failed(call.redact(f"HTTP {answer.status}: {message}"))

    async def _failed(self, hook: Hook, what: str, error: str) -> None:
        attempts = hook.attempts + 1
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
        delay *= random.uniform(0.8, 1.2)
        await self.store.update_hook(
            hook.id,
            {
                "attempts": attempts,
                "next_attempt_at": self.clock() + delay,
                "last_error": f"{what}: {error}",
                "updated_at": self.clock(),
            },
        )
        log.warning(
            "%s of %s/%s failed (attempt %d, next in %.0fs): %s",
            what,
            hook.consumer,
            hook.automation,
            attempts,
            delay,
            error,
            extra={"consumer": hook.consumer, "automation": hook.automation},
        )

    # -- status ------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """For `GET /status`: rows by state, and those waiting to be (un)subscribed."""
        hooks = await self.store.list_hooks()
        counts: dict[str, int] = {}
        pending = []
        for hook in hooks:
            counts[str(hook.state)] = counts.get(str(hook.state), 0) + 1
            if hook.last_error is not None or hook.state is HookState.RETIRED:
                pending.append(
                    {
                        "consumer": hook.consumer,
                        "automation": hook.automation,
                        "app": hook.app,
                        "trigger": hook.trigger,
                        "state": str(hook.state),
                        "subscribed": hook.subscription is not None,
                        "attempts": hook.attempts,
                        "last_error": hook.last_error,
                        "next_attempt_at": hook.next_attempt_at,
                    }
                )
        return {"hooks": counts, "pending": pending}
