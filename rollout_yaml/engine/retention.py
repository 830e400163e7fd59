"""Retention: finished runs older than `runtime.retention.runs` are deleted with their attempts,
and events older than `runtime.retention.events` once no run refers to them.

Deletion goes in small batches (one short transaction each, with a pause between), so pruning a
large backlog never holds locks the runs being recorded need. With several replicas, the one
holding the `retention` lease prunes; the others skip the pass.
"""

from __future__ import annotations

import asyncio
import logging
import time

from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.store.base import Store

log = logging.getLogger("rollout_yaml.engine")

LEASE = "retention"
BATCH = 500


class Pruner:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        *,
        owner: str,
        interval: float = 300.0,
        batch: int = BATCH,
        pause: float = 0.05,
        max_batches: int = 200,
    ) -> None:
        self.config = config
        self.store = store
        self.owner = owner
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.max_batches = max_batches

    async def prune_once(self) -> tuple[int, int]:
        """One pass, up to `max_batches` batches; returns the runs and events deleted (0, 0
        when another replica holds the lease)."""
        # The lease outlives the longest pass, so no replica starts one while this one runs.
        ttl = self.interval + self.max_batches * (self.pause + 1.0)
        if not await self.store.acquire_lease(LEASE, self.owner, time.time(), ttl):
            return 0, 0
        retention = self.config.current.settings.runtime.retention
        runs = events = 0
        try:
            for _ in range(self.max_batches):
                now = time.time()
                pruned = await self.store.prune(
                    now - retention.runs, now - retention.events, self.batch
                )
                runs, events = runs + pruned[0], events + pruned[1]
                if pruned[0] < self.batch and pruned[1] < self.batch:
                    break
                await asyncio.sleep(self.pause)
        finally:
            # hold it until the next pass is due, so the replicas do not take turns early
            await self.store.acquire_lease(LEASE, self.owner, time.time(), self.interval)
        if runs or events:
            log.info("retention: deleted %d run(s) and %d event(s)", runs, events)
        return runs, events

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:
                log.exception("retention pruning failed; trying again later")
            await asyncio.sleep(self.interval)
