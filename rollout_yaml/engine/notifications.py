"""Partner notifications (`notify:` in environment.yaml): what happened, told to the partner's
URL, signed per Standard Webhooks and delivered at least once.

Every notification is first a row of the outbox (`notifications` table), written in the
transaction of what it reports where there is one: a run's terminal state (`run.finished`,
with `Store.record`), a stored credential turning `needs_reauth` (with
`Store.mark_credential`, only when the status changes). Others call `emit(type, data)`, which
commits the row before it returns. A crash therefore loses none: what is committed is sent
after the restart, by this process or any replica.

The delivery loop claims due rows under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
replicas never send the same one at the same time, and POSTs each one to `notify.url` through
the egress rules (`AppClients`, like every request to an App). A 2xx answer marks it delivered;
anything else is tried again after `notify.retry.first`, doubling up to `retry.max`, each wait
shortened at random by up to a half (jitter), until it is delivered. The `webhook-id` is the
row's id on every attempt: a receiver that saw it already (an answer lost on the way back, a
lease that expired mid-send) drops the copy.

For callers (`runtime.notifications`):

- `await notifications.emit("automation.created", {"consumer": c, "automation": view})`
  records one (when `notify.events` asks for the type) and wakes the loop; durable when it
  returns, so call it before answering the request that made the change.
- To store it in the very transaction of a write, `prepare(type, data)` gives the rows (`[]`
  when not asked for): pass them to a store write that calls `queries.add_notifications(conn,
  rows)` in its query function, then `wake()` after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from rollout_yaml import json_codec
from rollout_yaml.config.models.notify import NOTIFICATION_TYPES, NotifyRetry, secret_keys
from rollout_yaml.config.secrets import redact, redact_value
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.schedule import iso_utc
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import SendError
from rollout_yaml.http.request import PreparedRequest
from rollout_yaml.http.signatures import (
    STANDARD_ID,
    STANDARD_SIGNATURE,
    STANDARD_TIMESTAMP,
    standard_signature,
)
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import NewNotification, Notification, RunUpdate, new_id

log = logging.getLogger("rollout_yaml.notifications")

POOL = "@notify"
"""The connection pool of deliveries in `AppClients` (no App can have this key)."""
BATCH = 20
"""Notifications claimed and sent at once by one process."""
ANSWER_BYTES = 1_048_576
"""The largest answer body read (only the status matters; a larger body fails the attempt)."""
ERROR_TEXT = 300
"""Characters of an answer's body kept in `last_error`."""
COUNT_EVERY = 10.0
"""Seconds between two counts of what is undelivered (the `rollout_notifications_undelivered`
gauge)."""
PRUNE_EVERY = 300.0
PRUNE_LEASE = "notifications-retention"


def moment(timestamp: float) -> str:
    return iso_utc(datetime.fromtimestamp(timestamp, UTC))


def backoff(retry: NotifyRetry, attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the attempt after `attempts` failed ones: `first`, doubling up to
    `max`, with up to half of it taken off at random, so that many notifications failing
    together do not come back together."""
    exponent = min(max(attempts - 1, 0), 62)
    full = min(retry.max, retry.first * 2.0**exponent)
    return full * (1.0 - 0.5 * rand())


class Notifications:
    """The outbox's writer (`prepare`, `emit`) and its delivery loop (`run`)."""

    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        clients: AppClients,
        *,
        owner: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        poll: float = 1.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.store = store
        self.clients = clients
        self.owner = owner
        self.metrics = metrics
        self.clock = clock
        self.poll = poll
        self.rand = rand
        self._wake = asyncio.Event()
        self._pruned_at = 0.0
        self._counted_at = 0.0

    # -- writing -------------------------------------------------------------------------

    def prepare(
        self, type: str, data: Mapping[str, Any], env: CompiledEnvironment | None = None
    ) -> list[NewNotification]:
        """The notification of `type` about `data`, ready to be stored with the write it
        reports (`[]` when `notify` does not ask for this type). Secrets are redacted."""
        if type not in NOTIFICATION_TYPES:
            raise ValueError(f"unknown notification type `{type}`")
        env = env or self.config.current
        if not env.settings.notify.wants(type):
            return []
        now = self.clock()
        payload = {
            "type": type,
            "timestamp": moment(now),
            "data": redact_value(dict(data), env.secret_values),
        }
        return [NewNotification(new_id("msg"), type, payload, now)]

    async def emit(self, type: str, data: Mapping[str, Any]) -> str | None:
        """Record a notification and deliver it soon; returns its id (the `webhook-id`),
        or None when `notify` does not ask for this type. Durable once it returns."""
        notices = self.prepare(type, data)
        if not notices:
            return None
        await self.store.add_notifications(notices)
        self.wake()
        return notices[0].id

    def run_finished(
        self, env: CompiledEnvironment, item: WorkItem, update: RunUpdate
    ) -> list[NewNotification]:
        """`run.finished` for a run's terminal state (as recorded: redacted); nothing is built
        when `notify` does not ask for it (this runs once per run)."""
        if not env.settings.notify.wants("run.finished"):
            return []
        return self.prepare(
            "run.finished",
            {
                "run": {
                    "id": item.run_id,
                    "consumer": item.consumer,
                    "automation": item.automation,
                    "status": str(update.status),
                    "event": {
                        "id": item.event.id,
                        "key": item.event.dedupe_key,
                        "app": item.event.app,
                        "trigger": item.event.trigger,
                    },
                    "output": update.output,
                    "error": update.error,
                    "error_kind": update.error_kind,
                    "attempt_count": update.attempts,
                    "finished_at": moment(update.finished_at or update.updated_at),
                }
            },
            env,
        )

    def wake(self) -> None:
        """Something new is in the outbox: deliver it without waiting for the next poll."""
        self._wake.set()

    # -- delivering ----------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled: whatever is due, then again when woken or after a poll."""
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
                await self._count(sent)
                await self._prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again after a pause
                log.exception("notification delivery pass failed")
                sent = 0
            if sent >= BATCH:
                continue
            retry = self.config.current.settings.notify.retry
            interval = min(self.poll, max(0.05, retry.first / 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def deliver_due(self) -> int:
        """Claim and send what is due now; returns how many were sent (delivered or not)."""
        settings = self.config.current.settings.notify
        if settings.url is None:
            return 0  # kept until a `notify.url` is configured again
        lease = settings.retry.timeout + 30.0
        claimed = await self.store.claim_notifications(self.owner, self.clock(), lease, BATCH)
        if claimed:
            await asyncio.gather(*(self._deliver(notice) for notice in claimed))
        return len(claimed)

    async def _deliver(self, notice: Notification) -> None:
        env = self.config.current
        settings = env.settings.notify
        attempts = notice.attempts + 1
        error = await self._send(env, notice)
        now = self.clock()
        if error is None:
            kept = await self.store.finish_delivery(
                notice.id, self.owner, attempts, now, None, None
            )
            outcome = "delivered"
        else:
            error = redact(error, env.secret_values)
            retry_at = now + backoff(settings.retry, attempts, self.rand)
            kept = await self.store.finish_delivery(
                notice.id, self.owner, attempts, None, retry_at, error
            )
            outcome = "failed"
            log.info(
                "notification %s (%s) not delivered, attempt %d: %s",
                notice.id,
                notice.type,
                attempts,
                error,
            )
        if not kept:
            log.info("notification %s: lease lost while sending", notice.id)
        if self.metrics is not None:
            self.metrics.notifications.labels(notice.type, outcome).inc()

    async def _send(self, env: CompiledEnvironment, notice: Notification) -> str | None:
        """One delivery; None when the partner answered 2xx, else why not."""
        settings = env.settings.notify
        assert settings.url is not None
        try:
            keys = secret_keys(settings.secret or "")
        except ValueError as exc:
            return f"notify.secret: {exc}"
        if not keys:
            return "notify.secret is not set"
        body = json_codec.dumps(notice.payload)
        timestamp = int(self.clock())
        request = PreparedRequest(
            method="POST",
            url=settings.url,
            path="",
            query=[],
            headers={
                "Content-Type": "application/json",
                "User-Agent": "rollout-yaml",
                STANDARD_ID: notice.id,
                STANDARD_TIMESTAMP: str(timestamp),
                # one signature per secret (several while rotating): receivers accept any
                STANDARD_SIGNATURE: " ".join(
                    standard_signature(key, notice.id, timestamp, body) for key in keys
                ),
            },
            body=body.decode("utf-8"),
            timeout=settings.retry.timeout,
        )
        try:
            answer = await self.clients.send(POOL, request, ANSWER_BYTES)
        except SendError as exc:
            return f"{exc.error_kind}: {exc}"
        except Exception as exc:  # never let one delivery end the loop
            return f"{type(exc).__name__}: {exc}"
        if 200 <= answer.status < 300:
            return None
        text = answer.body[:ERROR_TEXT].decode("utf-8", "replace").strip()
        return f"answered {answer.status}" + (f": {text}" if text else "")

    async def _count(self, sent: int) -> None:
        """Set the undelivered gauge after a pass that sent some, else every `COUNT_EVERY`."""
        now = self.clock()
        if self.metrics is None or self.config.current.settings.notify.url is None:
            return
        if not sent and now - self._counted_at < COUNT_EVERY:
            return
        self._counted_at = now
        self.metrics.notifications_undelivered.set(await self.store.count_undelivered())

    async def _prune(self) -> None:
        """Delivered notifications go after `runtime.retention.runs`, like runs."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        if not await self.store.acquire_lease(PRUNE_LEASE, self.owner, now, PRUNE_EVERY):
            return
        keep = self.config.current.settings.runtime.retention.runs
        while await self.store.prune_notifications(now - keep) >= 500:
            await asyncio.sleep(0.05)
