"""The engine as one object: configuration, store, intake, dispatch. The HTTP server and the
daemon talk to this and nothing deeper."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence

from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.execute import Executor
from rollout_yaml.engine.intake import PushEvent, PushResult, prepare_push
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.retention import Pruner
from rollout_yaml.engine.scheduler import Clock, Scheduler, utc_now
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import NewRun, Run, RunStatus, new_id


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
        self.clients = AppClients()
        self.executor = Executor(
            self.config, store, self.clients, self.metrics, self.owner, self.lease
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
        self.pruner = Pruner(self.config, store, owner=self.owner)
        self._background: list[asyncio.Task[None]] = []
        self._ready = False

    async def start(self, *, claim: bool = True) -> None:
        await self.dispatcher.start(claim=claim)
        if claim:
            self._background = [
                asyncio.create_task(self.scheduler.run(), name="schedules"),
                asyncio.create_task(self.pruner.run(), name="retention"),
            ]
        self.metrics.generation.set(self.config.generation)
        self._ready = True

    async def stop(self, grace: float | None = None) -> None:
        self._ready = False
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        await self.dispatcher.drain(
            self.config.current.settings.runtime.grace_period if grace is None else grace
        )
        await self.store.release(self.owner)
        await self.scheduler.release()
        await self.clients.close()

    def ready(self) -> bool:
        return self._ready

    def swap(self, env: CompiledEnvironment) -> None:
        self.config.swap(env)
        self.metrics.generation.set(self.config.generation)

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
        """For `--once`: claim and execute until nothing is due; True if all finished."""
        await self.scheduler.fire_due()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            claimed = await self.dispatcher.claim_once()
            if claimed == 0 and self.dispatcher.idle and self.dispatcher.pending_retries == 0:
                return True
            await asyncio.sleep(0.05)
        return False
