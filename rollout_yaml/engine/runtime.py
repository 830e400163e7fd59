"""The engine as one object: configuration, store, intake, dispatch. The HTTP server and the
daemon talk to this and nothing deeper."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.loader import Loaded
from rollout_yaml.config.models import Consumer
from rollout_yaml.engine.automations import AutomationEvents, Automations
from rollout_yaml.engine.connect import ConnectFlow
from rollout_yaml.engine.credentials import Credentials
from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.execute import Executor
from rollout_yaml.engine.intake import PushEvent, PushResult, prepare_push
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.notifications import Notifications
from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.poller import Poller
from rollout_yaml.engine.rate_limits import SharedRateLimiter
from rollout_yaml.engine.retention import Pruner
from rollout_yaml.engine.scheduler import Clock, Scheduler, utc_now
from rollout_yaml.engine.subscriptions import Subscriptions
from rollout_yaml.engine.webhooks import Delivery, DeliveryResult, WebhookReceiver, webhook_url
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.incremental import Change, compile_consumer_file
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.rate_limit import RateLimiter
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import HookState, NewRun, Run, RunStatus, new_id


def owner_id() -> str:
    """Who holds a lease: host and process, unique among replicas."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('r')[-8:]}"


class Runtime:
    def __init__(
        self,
        env: CompiledEnvironment,
        store: Store,
        clock: Clock = utc_now,
        events: AutomationEvents | None = None,
    ) -> None:
        runtime = env.settings.runtime
        self.config = LiveConfig(env)
        self.store = store
        self.metrics = Metrics()
        self.owner = owner_id()
        # who this process is to the command line (`/healthz`, the daemon's address file)
        self.instance = new_id("daemon")
        self.lease = runtime.lease
        self.clients = AppClients(allow_private=self._allow_private)
        # partner notifications: `emit(type, data)`, and the delivery loop started below
        self.notifications = Notifications(
            self.config, store, self.clients, owner=self.owner, metrics=self.metrics
        )
        self.credentials = Credentials(
            store,
            self.clients,
            self.owner,
            metrics=self.metrics,
            notifications=self.notifications,
        )
        self.connect = ConnectFlow(self.credentials)
        # PostgreSQL: replicas draw from one quota per credential; SQLite: one process, in memory
        limiter = SharedRateLimiter(store) if store.shared else RateLimiter()
        self.outbound = Outbound(self.clients, self.credentials, limiter)
        self.executor = Executor(
            self.config,
            store,
            self.clients,
            self.metrics,
            self.owner,
            self.lease,
            self.credentials,
            self.outbound,
            self.notifications,
        )
        self.dispatcher = Dispatcher(
            self.executor,
            store,
            self.metrics,
            owner=self.owner,
            workers=runtime.workers,
            lease=self.lease,
        )
        self.scheduler = Scheduler(
            self.config, store, self.dispatcher, owner=self.owner, lease=self.lease, clock=clock
        )
        self.poller = Poller(
            self.config,
            store,
            self.clients,
            self.metrics,
            self.dispatcher,
            owner=self.owner,
            lease=self.lease,
            credentials=self.credentials,
            clock=clock,
            outbound=self.outbound,
        )
        self.webhooks = WebhookReceiver(
            self.config,
            store,
            self.dispatcher,
            self.metrics,
            owner=self.owner,
            lease=self.lease,
            credentials=self.credentials,
        )
        # where the daemon listens, for webhook URLs when `server.public_url` is not set
        self.listening: str | None = None
        self.subscriptions = Subscriptions(
            self.config,
            store,
            self.clients,
            owner=self.owner,
            listening=lambda: self.listening,
            credentials=self.credentials,
            outbound=self.outbound,
        )
        self._scheduling: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None
        self._subscribing: asyncio.Task[None] | None = None
        self.pruner = Pruner(self.config, store, owner=self.owner)
        self._pruning: asyncio.Task[None] | None = None
        # automations created over the API; `events` hears automation.created/updated/
        # deleted/invalid: the partner notifications unless a caller gives another listener
        self.automations = Automations(
            self.config,
            store,
            self.metrics,
            self._activate_write,
            events=events if events is not None else self.notifications,
            made=self.subscriptions.ensure,
        )
        self._notifying: asyncio.Task[None] | None = None
        self._following: asyncio.Task[None] | None = None
        self._ready = False

    async def start(self, *, claim: bool = True) -> None:
        await self.automations.load()
        if self.store.shared or self.config.current.settings.runtime.processes != 1:
            # other processes write automations too: apply theirs as they commit
            self._following = asyncio.create_task(self.automations.follow(), name="automations")
        await self.dispatcher.start(claim=claim)
        if claim:
            self._scheduling = asyncio.create_task(self.scheduler.run(), name="schedules")
            self._polling = asyncio.create_task(self.poller.run(), name="polls")
            self._subscribing = asyncio.create_task(
                self.subscriptions.run(), name="webhook-subscriptions"
            )
            self._pruning = asyncio.create_task(self.pruner.run(), name="retention")
            self._notifying = asyncio.create_task(self.notifications.run(), name="notifications")
        self.metrics.generation.set(self.config.generation)
        self._ready = True

    async def stop(self, grace: float | None = None) -> None:
        self._ready = False
        tasks = (self._scheduling, self._polling, self._subscribing, self._pruning)
        for task in (*tasks, self._notifying, self._following):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.poller.close()
        if self._subscribing is not None:
            await self.subscriptions.release()
        await self.dispatcher.drain(
            self.config.current.settings.runtime.grace_period if grace is None else grace
        )
        await self.store.release(self.owner)
        await self.scheduler.release()
        await self.clients.close()

    def _allow_private(self) -> bool:
        """Read at every send, so a reload that changes `runtime.egress` applies at once."""
        return self.config.current.settings.runtime.egress.allow_private

    def ready(self) -> bool:
        return self._ready

    def swap(self, env: CompiledEnvironment) -> None:
        previous = self.config.current
        self.config.swap(env)
        self.metrics.generation.set(self.config.generation)
        self.subscriptions.changed(previous)

    def _activate(self, env: CompiledEnvironment, change: Change, *, reloaded: bool) -> None:
        previous = self.config.current
        self.config.swap_changed(env, change, reloaded=reloaded)
        self.metrics.generation.set(self.config.generation)
        removed, added = change
        self.subscriptions.changed(previous, {(a.consumer, a.key) for a in removed + added})

    def _activate_write(self, env: CompiledEnvironment, change: Change) -> None:
        self._activate(env, change, reloaded=False)

    async def reload(self, env: CompiledEnvironment) -> None:
        """A new configuration compiled from the files: the stored automations are compiled
        against it too (those that no longer compile turn invalid), then it is swapped in."""
        async with self.automations.lock:
            with_stored, _, statuses = await self.automations.compile_stored(env)
            self.swap(with_stored)
        await self.automations.record(statuses)

    async def reload_consumer(self, loaded: Loaded[Consumer]) -> list[Diagnostic]:
        """One saved consumer file compiled against the running apps and blueprints, with
        that consumer's stored automations; active unless it has errors (returned)."""
        async with self.automations.lock:
            changed, change, diagnostics = compile_consumer_file(
                self.config.current, loaded, self.automations.context()
            )
            if changed is None:
                return [d for d in diagnostics if d.is_error]
            with_stored, stored_change, statuses = await self.automations.compile_stored(
                changed, loaded.model.consumer
            )
            removed = change[0] + stored_change[0]
            added = change[1] + stored_change[1]
            self._activate(with_stored, (removed, added), reloaded=True)
        await self.automations.record(statuses)
        return []

    async def receive_webhook(self, delivery: Delivery) -> DeliveryResult:
        return await self.webhooks.receive(delivery)

    async def webhook_urls(self, consumer: str | None) -> dict[tuple[str, str], str]:
        """The URL of each automation that has a live (active or disabled) webhook."""
        base = self.subscriptions.base_url()
        return {
            (hook.consumer, hook.automation): webhook_url(base, hook)
            for hook in await self.store.list_hooks(consumer)
            if hook.state is not HookState.RETIRED
        }

    async def push(
        self, consumer: str, events: Sequence[PushEvent], *, batch: bool = False
    ) -> PushResult:
        prepared = prepare_push(
            self.config.active,
            consumer,
            events,
            owner=self.owner,
            lease=self.lease,
            batch_paths=batch,
        )
        ingested = await self.store.ingest(prepared.batch)
        queued = [
            prepared.work[run_id]
            for result in ingested
            for run_id in result.run_ids
            if run_id in prepared.work
        ]
        self.dispatcher.submit(queued)
        for event in events:
            self.metrics.events.labels(event.app, event.trigger).inc()
        return PushResult([r.event_id for r in ingested], len(queued))

    async def replay(self, run_id: str, consumer: str | None) -> Run | None:
        original = await self.store.get_run(run_id, consumer)
        if original is None:
            return None
        now = time.time()
        replay_id = new_id("run")
        run = NewRun(
            replay_id,
            original.consumer,
            original.automation,
            original.event.id,
            f"{original.event.dedupe_key}#replay:{replay_id}",
            RunStatus.QUEUED,
            None,
            now,
            self.owner,
            now + self.lease,
            replay_of=original.id,
        )
        await self.store.insert_runs([run])
        self.dispatcher.submit([WorkItem(replay_id, run.consumer, run.automation, original.event)])
        return await self.store.get_run(replay_id)

    async def drain_queue(self, timeout: float) -> bool:
        """For `--once`: poll the due poll groups and fire due schedules once, then claim and
        execute until nothing is due, and try the due partner notifications once; True if all
        finished."""
        await self.poller.poll_due()
        await self.scheduler.fire_due()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = await self.dispatcher.claim_once()
            if claimed == 0 and self.dispatcher.idle and self.dispatcher.pending_retries == 0:
                await self.notifications.deliver_due()  # one try; the rest wait for `run`
                return True
            await asyncio.sleep(0.05)
        return False
