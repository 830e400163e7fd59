"""Fires the built-in `schedule` app's triggers: one event per due tick per automation, with a
missed tick fired once on start. Time comes from an injected clock, so it is tested without
sleeping.

A tick's event is stored with a dedupe key made of the automation and the scheduled time, and
the automation's state (its anchor and last tick) is saved only after that commit: a crash in
between re-fires the same tick, which the dedupe key turns into nothing new.

With several replicas on one database, one of them fires the schedules: the one holding the
`schedules` lease, renewed on every pass. A replica that takes the lease over (its holder
stopped or died, and the lease expired) first reads the state the previous holder saved, so a
new `every` automation keeps the anchor the first replica gave it and ticks stay where they were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.intake import Prepared, add_event
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.schedule import Schedule, due, iso_utc, schedule_from_input
from rollout_yaml.engine.schedule import dedupe_key as tick_key
from rollout_yaml.expr.compiled import CompiledAutomation
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import EventRecord, new_id

log = logging.getLogger("rollout_yaml.engine")

SCHEDULE_APP = "schedule"
STATE_PREFIX = "schedule:"
LEASE = "schedules"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        dispatcher: Dispatcher,
        *,
        owner: str,
        lease: float,
        clock: Clock = utc_now,
    ) -> None:
        self.config = config
        self.store = store
        self.dispatcher = dispatcher
        self.owner = owner
        self.lease = lease
        self.clock = clock
        self._states: dict[str, Any] | None = None
        self._invalid: set[str] = set()

    async def fire_due(self) -> int:
        """One pass over every enabled schedule automation; returns the ticks fired. Only the
        holder of the `schedules` lease fires; the others return 0."""
        if not await self.store.acquire_lease(LEASE, self.owner, time.time(), self.lease):
            self._states = None  # another replica fires; read its state when taking over
            return 0
        if self._states is None:
            self._states = await self.store.load_states(STATE_PREFIX)
        active = self.config.active
        now = self.clock()
        fired = 0
        for automation in active.env.automations.values():
            if automation.enabled and automation.trigger_app == SCHEDULE_APP:
                fired += await self._one(automation, now)
        return fired

    def _schedule(self, automation: CompiledAutomation) -> Schedule | None:
        try:
            return schedule_from_input(automation.trigger_key, dict(automation.trigger_input))
        except ValueError as exc:
            if automation.ref not in self._invalid:  # say it once, not every second
                self._invalid.add(automation.ref)
                log.error(
                    "schedule of %s is not valid: %s",
                    automation.ref,
                    exc,
                    extra={"consumer": automation.consumer, "automation": automation.key},
                )
            return None

    async def _one(self, automation: CompiledAutomation, now: datetime) -> int:
        assert self._states is not None
        schedule = self._schedule(automation)
        if schedule is None:
            return 0
        key = f"{STATE_PREFIX}{automation.ref}"
        state = self._states.get(key)
        if state is None:  # a new automation: it starts counting now, it does not fire now
            await self._save(key, {"anchor": iso_utc(now), "last_fired": iso_utc(now)})
            return 0
        anchor = _parse(state.get("anchor")) or now
        tick = due(schedule, _parse(state.get("last_fired")), now, anchor)
        if tick is None:
            return 0
        record = EventRecord(
            new_id("evt"),
            automation.consumer,
            SCHEDULE_APP,
            automation.trigger_key,
            tick_key(automation.ref, tick),
            tick.payload(),
            now.timestamp(),
            "schedule",
        )
        prepared = Prepared([], {})
        add_event(
            self.config.active, record, [automation], prepared, owner=self.owner, lease=self.lease
        )
        ingested = await self.store.ingest(prepared.batch)
        self.dispatcher.submit(
            prepared.work[run_id]
            for result in ingested
            for run_id in result.run_ids
            if run_id in prepared.work
        )
        await self._save(key, {"anchor": iso_utc(anchor), "last_fired": iso_utc(tick.scheduled_at)})
        log.info(
            "schedule tick %s",
            iso_utc(tick.scheduled_at),
            extra={"consumer": automation.consumer, "automation": automation.key},
        )
        return 1

    async def _save(self, key: str, state: dict[str, Any]) -> None:
        assert self._states is not None
        await self.store.save_state(key, state)
        self._states[key] = state

    async def release(self) -> None:
        """On shutdown: let another replica take the schedules over at once."""
        await self.store.release_lease(LEASE, self.owner)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.fire_due()
            except Exception:
                log.exception("firing schedules failed; trying again")
            await asyncio.sleep(interval)


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
