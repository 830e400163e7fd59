"""The engine as one object: configuration, store, intake, dispatch. The HTTP server and the
daemon talk to this and nothing deeper."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence

from rollout_yaml.engine.connect import ConnectFlow
from rollout_yaml.engine.credentials import Credentials
from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.execute import Executor
from rollout_yaml.engine.intake import PushEvent, PushResult, prepare_push
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.poller import Poller
from rollout_yaml.engine.retention import Pruner
from rollout_yaml.engine.scheduler import Clock, Scheduler, utc_now
from rollout_yaml.engine.subscriptions import Subscriptions
from rollout_yaml.engine.webhooks import Delivery, DeliveryResult, WebhookReceiver, webhook_url
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import HookState, NewRun, Run, RunStatus, new_id


def owner_id() -> str:
    """Who holds a lease: host and process, unique among replicas."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id('r')[-8:]}"


class Runtime:
    def __init__(self, env: CompiledEnvironment, store: Store, clock: Clock = utc_now) -> None:
        runtime = env.settings.runtime
        self.config = LiveConfig(env)
        self.store = store
        self.metrics = Metrics()
        self.owner = owner_id()
        self.lease = runtime.lease
        self.clients = AppClients(allow_private=self._allow_private)
        self.credentials = Credentials(store, self.clients, self.owner, metrics=self.metrics)
        self.connect = ConnectFlow(self.credentials)
        self.executor = Executor(
            self.config,
            store,
            self.clients,
            self.metrics,
            self.owner,
            self.lease,
            self.credentials,
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
        )
        self._scheduling: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None
        self._subscribing: asyncio.Task[None] | None = None
        self.pruner = Pruner(self.config, store, owner=self.owner)
        self._pruning: asyncio.Task[None] | None = None
        self._ready = False

    async def start(self, *, claim: bool = True) -> None:
        await self.dispatcher.start(claim=claim)
        if claim:
            self._scheduling = asyncio.create_task(self.scheduler.run(), name="schedules")
            self._polling = asyncio.create_task(self.poller.run(), name="polls")
            self._subscribing = asyncio.create_task(
                self.subscriptions.run(), name="webhook-subscriptions"
            )
            self._pruning = asyncio.create_task(self.pruner.run(), name="retention")
        self.metrics.generation.set(self.config.generation)
        self._ready = True

    async def stop(self, grace: float | None = None) -> None:
        self._ready = False
        for task in (self._scheduling, self._polling, self._subscribing, self._pruning):
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
        execute until nothing is due; True if all finished."""
        await self.poller.poll_due()
        await self.scheduler.fire_due()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = await self.dispatcher.claim_once()
            if claimed == 0 and self.dispatcher.idle and self.dispatcher.pending_retries == 0:
                return True
            await asyncio.sleep(0.05)
        return False
