"""Workers: a bounded number of runs execute at once; retries wait on timers; a claim loop
picks up what this process did not start itself (runs left by a crash, or by a replica)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from rollout_yaml.engine.execute import Executor
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.store.base import Store

log = logging.getLogger("rollout_yaml.engine")


class Dispatcher:
    def __init__(
        self,
        executor: Executor,
        store: Store,
        metrics: Metrics,
        *,
        owner: str,
        workers: int,
        lease: float,
        claim_interval: float = 1.0,
    ) -> None:
        self.executor = executor
        self.store = store
        self.metrics = metrics
        self.owner = owner
        self.workers = workers
        self.lease = lease
        self.claim_interval = claim_interval
        self._queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._busy = 0
        self._known: set[str] = set()  # runs queued, executing or waiting for a retry here
        self._accepting = True

    def submit(self, items: Iterable[WorkItem]) -> None:
        for item in items:
            if item.run_id in self._known:
                continue
            self._known.add(item.run_id)
            self._queue.put_nowait(item)
        self.metrics.queue_depth.set(self._queue.qsize())

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self._busy == 0

    @property
    def pending_retries(self) -> int:
        return len(self._timers)

    async def start(self, *, claim: bool = True) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"worker-{i}") for i in range(self.workers)
        ]
        if claim:
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="claim"))

    async def claim_once(self) -> int:
        """Lease due runs nobody is executing and queue them here; return how many."""
        room = max(self.workers * 4 - self._queue.qsize(), 0)
        if room == 0:
            return 0
        runs = await self.store.claim_runs(self.owner, time.time(), self.lease, room)
        fresh = [WorkItem.from_run(r) for r in runs if r.id not in self._known]
        self.submit(fresh)
        return len(fresh)

    async def _claim_loop(self) -> None:
        while self._accepting:
            try:
                await self.claim_once()
            except Exception:
                log.exception("claiming due runs failed; trying again")
            await asyncio.sleep(self.claim_interval)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            self._busy += 1
            try:
                verdict = await self.executor.execute(item)
            except Exception:
                # The run stays leased; when its lease expires it is claimed and tried again.
                log.exception("executing run failed", extra={"run_id": item.run_id})
                self._known.discard(item.run_id)
            else:
                if verdict.retry_in is not None and self._accepting:
                    again = item if verdict.same_attempt else item.next_attempt()
                    self._schedule_retry(again, verdict.retry_in)
                else:
                    self._known.discard(item.run_id)
            finally:
                self._busy -= 1
                self.metrics.queue_depth.set(self._queue.qsize())

    def _schedule_retry(self, item: WorkItem, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._timers.pop(item.run_id, None)
            self._queue.put_nowait(item)

        self._timers[item.run_id] = loop.call_later(delay, due)

    async def drain(self, grace: float) -> None:
        """Stop taking new work, let in-flight runs finish (up to `grace` seconds), then stop."""
        self._accepting = False
        for timer in self._timers.values():
            timer.cancel()  # the retry stays in the database, claimable by the next runner
        self._timers.clear()
        deadline = time.monotonic() + grace
        while not self.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
