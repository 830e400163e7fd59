"""Workers: a bounded number of runs execute at once; retries wait on timers; a claim loop
picks up what this process did not start itself (runs left by a crash, or by a replica).

The claim loop claims at the speed work is done: a claim that comes back full (a backlog after
a restart, a burst of retries coming due) is followed by the next one as soon as the queue
runs low, so a backlog drains at the rate of the workers; only a claim that finds less than it
asked for waits the claim interval before looking again.

Every run this process holds (queued here, executing, or waiting for a retry) is leased to it
in the database, and the lease is renewed every third of its length: a backlog or a slow App
never lets a replica claim a run that is still in hand here. A run whose lease was lost anyway
(this process stalled past it, or the database was unreachable) and that another replica has
claimed is dropped from the queue instead of being executed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._running: set[str] = set()
        self._lost: set[str] = set()  # queued here, but their lease went to another replica
        self._accepting = True
        self._room = asyncio.Event()  # set when the queue has run down to `workers` items

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
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="renew"))
        if claim:
            self._tasks.append(asyncio.create_task(self._claim_loop(), name="claim"))

    async def renew_once(self) -> int:
        """Extend the leases of every run held here; return how many were lost to a replica."""
        if not self._known:
            return 0
        before = set(self._known)  # all committed, so the renewal sees each of them
        held = await self.store.renew_leases(self.owner, time.time() + self.lease)
        lost = {
            r
            for r in before - held
            if r in self._known and r not in self._running and r not in self._lost
        }  # a run already known lost is not lost again (nor counted twice)
        if lost:
            log.warning(
                "%d queued run(s) were claimed by another runner after their lease expired; "
                "they are left to it",
                len(lost),
            )
        self._lost |= lost
        self.metrics.leases_lost.inc(len(lost))
        return len(lost)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.renew_once()
            except Exception:
                log.exception("renewing leases failed; trying again")

    async def claim_once(self) -> int:
        """Lease due runs nobody is executing and queue them here; return how many."""
        return (await self._claim())[0]

    async def _claim(self) -> tuple[int, bool]:
        """Claim up to the queue's room; return how many were queued and whether more may be
        due (the queue had no room, or the database gave all that was asked for)."""
        room = max(self.workers * 4 - self._queue.qsize(), 0)
        if room == 0:
            return 0, True
        self.metrics.claims.inc()
        runs = await self.store.claim_runs(self.owner, time.time(), self.lease, room)
        fresh = [WorkItem.from_run(r) for r in runs if r.id not in self._known]
        self.submit(fresh)
        self.metrics.runs_claimed.inc(len(fresh))
        return len(fresh), len(runs) == room

    async def _claim_loop(self) -> None:
        while self._accepting:
            more = False
            try:
                _, more = await self._claim()
            except Exception:
                log.exception("claiming due runs failed; trying again")
            if more:
                await self._until_room()
            else:
                await asyncio.sleep(self.claim_interval)

    async def _until_room(self) -> None:
        """Wait until the workers have run the queue down to one item each (so none of them
        waits for the next claim), looking again every claim interval."""
        while self._accepting and self._queue.qsize() > self.workers:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), self.claim_interval)

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            if self._queue.qsize() <= self.workers:
                self._room.set()
            if item.run_id in self._lost:
                self._lost.discard(item.run_id)
                self._known.discard(item.run_id)
                continue
            self._busy += 1
            self._running.add(item.run_id)
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
                self._running.discard(item.run_id)
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
