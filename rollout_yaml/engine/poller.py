"""Polls each poll group every `every` (never below `runtime.poll_floor`) and turns new items
into events. Time comes from an injected clock, so it is tested without sleeping.

Per page, in one transaction: the events of items the group has not seen, one run per
automation of the group, and the page's ids marked seen. The cursor is saved only after the
last page's commit. A crash in between re-polls from the old cursor: the seen ids drop what was
already stored, and the events' dedupe key (group + item id) would refuse it anyway.

A group is polled under the named lease `poll:<group>`: replicas sharing a database poll it
once per interval. A failed poll changes nothing but its failure count; it is tried again at
the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import Credentials
from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.intake import Prepared, add_event
from rollout_yaml.engine.live_config import Active, LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.polls import Page, PollFailed, PollFetch, PollGroup, PollGroups
from rollout_yaml.engine.scheduler import Clock, utc_now
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.pagination import LOOP, MAX_PAGES
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import EventRecord, new_id

log = logging.getLogger("rollout_yaml.engine")

STATE_PREFIX = "poll:"
KEEP_SEEN = 10_000
"""Seen ids kept per group: at least this many, and at least every item of the last poll."""
CONCURRENT_POLLS = 16


@dataclass
class PolledItemView:
    id: str
    new: bool
    payload: Any


@dataclass
class PollReport:
    """What one poll did: for logs, `/status` and `rollout-yaml poll --emit`."""

    group: str
    cursor_before: Any = None
    cursor_after: Any = None
    initial: bool = False
    emitted: bool = True
    pages: list[Page] = field(default_factory=list)
    items: list[PolledItemView] = field(default_factory=list)
    events_stored: int = 0
    runs_queued: int = 0
    without_id: int = 0
    stopped: str | None = None
    error: str | None = None
    redact: frozenset[str] = frozenset()
    """The values to hide when showing this report: the environment's secrets and the
    credential's (a stored token is known only once the poll has read it)."""


class Poller:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        clients: AppClients,
        metrics: Metrics,
        dispatcher: Dispatcher | None,
        *,
        owner: str,
        lease: float,
        credentials: Credentials | None = None,
        clock: Clock = utc_now,
        outbound: Outbound | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clients = clients
        self.outbound = outbound or Outbound(clients, credentials)
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.owner = owner
        self.lease = lease
        self.credentials = credentials
        self.clock = clock
        self._groups: tuple[int, PollGroups] = (0, PollGroups({}, {}, {}))
        self._last_polled: dict[str, float] | None = None  # by group, from the states
        self._running: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        self._limit = asyncio.Semaphore(CONCURRENT_POLLS)
        self._status: dict[str, dict[str, Any]] = {}
        self._dry_run_said = False

    # -- scheduling ----------------------------------------------------------------------

    def groups(self) -> dict[str, PollGroup]:
        """The poll groups of the active configuration (computed once per generation)."""
        generation = self.config.generation
        known, groups = self._groups
        if known != generation:
            env = self.config.current
            changes = self.config.changes_since(known) if known else None
            if changes is None:
                groups = PollGroups.build(env)
            else:  # only the automations that changed: a write costs one group
                for removed, added in changes:
                    groups = groups.changed(env, removed, added)
            self._groups = (generation, groups)
        return groups.groups

    def _now(self) -> float:
        return self.clock().timestamp()

    async def _load(self) -> dict[str, float]:
        if self._last_polled is None:
            states = await self.store.load_states(STATE_PREFIX)
            self._last_polled = {}
            for key, state in states.items():
                group = key.removeprefix(STATE_PREFIX)
                if isinstance(state, dict) and state.get("last_polled_at") is not None:
                    self._last_polled[group] = float(state["last_polled_at"])
                    self._status[group] = _status_of(state)
        return self._last_polled

    def _due_time(self, group: PollGroup, last: float | None) -> float:
        return float("-inf") if last is None else last + group.interval

    async def start_due(self) -> list[asyncio.Task[None]]:
        """Start a poll of every group that is due and not being polled here already."""
        if self.config.current.settings.runtime.dry_run:
            if not self._dry_run_said:  # `runtime.dry_run`: send nothing, polls included
                self._dry_run_said = True
                log.info("dry run: polls are not sent (`rollout-yaml poll` shows one)")
            return list(self._running.values())
        self._dry_run_said = False
        last_polled = await self._load()
        now = self._now()
        for group in self.groups().values():
            if group.key in self._running:
                continue
            due_at = self._due_time(group, last_polled.get(group.key))
            if due_at <= now:
                task = asyncio.create_task(self._guarded(group, due_at), name=f"poll {group.key}")
                self._running[group.key] = task
                task.add_done_callback(functools.partial(self._finished, group.key))
        return list(self._running.values())

    def _finished(self, key: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(key, None)

    async def poll_due(self) -> int:
        """Poll every due group once and wait for all of them (`run --once`, tests); returns
        how many polls ran here."""
        before = self._polls_done()
        tasks = await self.start_due()
        await asyncio.gather(*tasks, return_exceptions=True)
        return self._polls_done() - before

    def _polls_done(self) -> int:
        return sum(int(s.get("polls", 0)) for s in self._status.values())

    async def run(self, interval: float = 0.5) -> None:
        while True:
            try:
                await self.start_due()
            except Exception:
                log.exception("starting polls failed; trying again")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        """Stop polling and give up the leases held (in-flight pages are not committed)."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        for name in list(self._held):
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.owner)
        self._held.clear()

    async def _guarded(self, group: PollGroup, due_at: float) -> None:
        async with self._limit:
            try:
                await self.poll_group(group, due_at=due_at)
            except Exception:
                log.exception(
                    "polling %s failed unexpectedly",
                    group.key,
                    extra={"consumer": group.consumer, "automation": ",".join(group.refs)},
                )
                assert self._last_polled is not None
                self._last_polled[group.key] = self._now()

    # -- one poll ------------------------------------------------------------------------

    async def poll_group(
        self, group: PollGroup, *, due_at: float | None = None, force: bool = False
    ) -> PollReport | None:
        """Poll `group` under its lease if it is due (or `force`); None when another owner
        holds the lease or another replica has just polled it."""
        last_polled = await self._load()
        now = self._now()
        ttl = self._lease_ttl(group)
        if not await self.store.acquire_lease(group.lease_name, self.owner, now, ttl):
            # another replica polls it now; look again after an interval
            last_polled[group.key] = now
            return None
        self._held.add(group.lease_name)
        try:
            found = await self.store.load_states(group.state_key)
            state = found.get(group.state_key)
            state = state if isinstance(state, dict) else None
            last = state.get("last_polled_at") if state else None
            if not force and last is not None and float(last) + group.interval > now:
                last_polled[group.key] = float(last)  # a replica polled it meanwhile
                return None
            if due_at is not None and due_at != float("-inf"):
                self.metrics.poll_lag.labels(group.app, group.trigger).set(max(now - due_at, 0))
            report = await self._poll(group, state, now, ttl)
            last_polled[group.key] = now
            return report
        finally:
            self._held.discard(group.lease_name)
            await self.store.release_lease(group.lease_name, self.owner)

    def _lease_ttl(self, group: PollGroup) -> float:
        """Renewed after every page, so it only has to outlast one page's request."""
        app = self.config.current.apps.get(group.app)
        trigger = app.triggers.get(group.trigger) if app else None
        timeout = trigger.poll.request.timeout if trigger and trigger.poll else 30.0
        return max(self.lease, timeout + 30.0)

    async def _poll(
        self, group: PollGroup, state: dict[str, Any] | None, now: float, ttl: float
    ) -> PollReport:
        active = self.config.active
        env = active.env
        initial = state is None or not state.get("initialized")
        cursor_before = state.get("cursor") if state else None
        fetch = PollFetch(env, group, self.outbound, cursor_before)
        emit = not initial or fetch.poll.initial == "emit"
        report = PollReport(group.key, cursor_before=fetch.cursor, initial=initial, emitted=emit)
        seen_here: set[str] = set()
        every_item: list[Any] = []
        extra = {"consumer": group.consumer, "automation": ",".join(group.refs)}
        try:
            async for page in fetch.pages():
                report.pages.append(page)
                every_item.extend(item.item for item in page.items)
                await self._commit_page(active, group, page, emit, now, seen_here, report)
                if not await self.store.acquire_lease(
                    group.lease_name, self.owner, self._now(), ttl
                ):
                    raise PollFailed("lease", "the poll's lease was taken over by another owner")
            cursor = fetch.next_cursor(every_item)
        except PollFailed as failed:
            message = redact(str(failed), fetch.secrets)
            report.redact = fetch.secrets
            report.error = message
            report.stopped = "failed"
            failures = int(state.get("failures", 0)) + 1 if state else 1
            kept = dict(state or {})
            kept.update(last_polled_at=now, last_error=failed.summary, failures=failures)
            await self.store.save_state(group.state_key, kept)
            self.metrics.polls.labels(group.app, group.trigger, "failed").inc()
            self._record_status(group, kept)
            log.warning(
                "poll of %s/%s failed (%d in a row), trying again in %gs: %s",
                group.app,
                group.trigger,
                failures,
                group.interval,
                message,
                extra=extra,
            )
            return report
        report.without_id = fetch.without_id
        report.stopped = fetch.stopped
        report.redact = fetch.secrets
        report.cursor_after = cursor
        saved = {
            "initialized": True,
            "cursor": cursor,
            "last_polled_at": now,
            "last_ok_at": now,
            "last_error": None,
            "failures": 0,
            "pages": len(report.pages),
            "items": len(every_item),
            "events": report.events_stored,
        }
        await self.store.save_poll_state(
            group.state_key, saved, group.key, max(KEEP_SEEN, len(every_item))
        )
        self.metrics.polls.labels(group.app, group.trigger, "ok").inc()
        self._record_status(group, saved)
        if fetch.stopped in (MAX_PAGES, LOOP):
            log.warning(
                "poll of %s/%s stopped after %d pages: %s",
                group.app,
                group.trigger,
                len(report.pages),
                fetch.stopped,
                extra=extra,
            )
        if fetch.without_id:
            log.warning(
                "poll of %s/%s: %d items without an id were left out (the trigger's `id` "
                "gave null)",
                group.app,
                group.trigger,
                fetch.without_id,
                extra=extra,
            )
        log.info(
            "polled %s/%s: %d pages, %d items, %d new events%s",
            group.app,
            group.trigger,
            len(report.pages),
            len(every_item),
            report.events_stored,
            " (first poll: recorded, not emitted)" if not emit else "",
            extra=extra,
        )
        return report

    async def _commit_page(
        self,
        active: Active,
        group: PollGroup,
        page: Page,
        emit: bool,
        now: float,
        seen_here: set[str],
        report: PollReport,
    ) -> None:
        fresh = []
        for item in page.items:
            if item.id not in seen_here:  # the same item twice in one poll (shifting pages)
                seen_here.add(item.id)
                fresh.append(item)
        known = await self.store.seen_ids(group.key, [i.id for i in fresh])
        new = [item for item in fresh if item.id not in known]
        report.items.extend(
            PolledItemView(item.id, item.id not in known, item.payload) for item in page.items
        )
        prepared = Prepared([], {})
        if emit:
            received = time.time()
            for item in new:
                record = EventRecord(
                    new_id("evt"),
                    group.consumer,
                    group.app,
                    group.trigger,
                    group.event_key(item.id),
                    item.payload,
                    received,
                    "poll",
                )
                add_event(
                    active,
                    record,
                    group.automations,
                    prepared,
                    owner=self.owner,
                    lease=self.lease,
                )
        ingested = await self.store.record_polled(
            prepared.batch, group.key, [i.id for i in new], now
        )
        stored = [r for r in ingested if r.new]
        report.events_stored += len(stored)
        queued = [
            prepared.work[run_id]
            for result in ingested
            for run_id in result.run_ids
            if run_id in prepared.work
        ]
        report.runs_queued += len(queued)
        if stored:
            self.metrics.events.labels(group.app, group.trigger).inc(len(stored))
        if self.dispatcher is not None:
            self.dispatcher.submit(queued)

    # -- what `/status` shows ------------------------------------------------------------

    def _record_status(self, group: PollGroup, state: dict[str, Any]) -> None:
        previous = self._status.get(group.key, {})
        self._status[group.key] = {**_status_of(state), "polls": previous.get("polls", 0) + 1}
        failing = sum(1 for s in self._status.values() if s.get("failures"))
        self.metrics.polls_failing.set(failing)

    def status(self) -> list[dict[str, Any]]:
        """Each poll group with its last poll, as this process knows it. Error details stay
        in the logs: this is shown without authentication, so it names only the kind."""
        out = []
        for group in self.groups().values():
            known = self._status.get(group.key, {})
            last = known.get("last_polled_at")
            out.append(
                {
                    "group": group.key,
                    "consumer": group.consumer,
                    "app": group.app,
                    "trigger": group.trigger,
                    "automations": group.refs,
                    "every": group.interval,
                    "last_polled_at": last,
                    "last_ok_at": known.get("last_ok_at"),
                    "next_poll_at": None if last is None else last + group.interval,
                    "failures": known.get("failures", 0),
                    "last_error": known.get("last_error"),
                }
            )
        return out


def _status_of(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "last_polled_at": state.get("last_polled_at"),
        "last_ok_at": state.get("last_ok_at"),
        "failures": state.get("failures", 0),
        "last_error": state.get("last_error"),
    }
