"""A connector's `rate_limit: {requests: N, per: 1m}`, applied per credential: sends wait for a
free slot instead of failing.

A sliding log, not a token bucket: a bucket of N tokens refilled at N/per lets almost 2N sends
through in one window (a full bucket at its end, a refill after), while an App that says "100
per minute" counts any minute. Each send reserves the earliest time at which the last N sends,
its own included, span at least `per`; reservations are taken in arrival order without a lock
(nothing awaits between reading and writing the log), so concurrent senders queue fairly and
nothing blocks the event loop.

`RateLimiter` keeps the log in the process (SQLite: one runner). With PostgreSQL the engine
uses a `Limiter` that keeps it in the database instead (engine/rate_limits.py), so replicas
share one quota.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from rollout_yaml.config.models.request import RateLimit


@dataclass(frozen=True, slots=True)
class Quota:
    """One credential's share of a connector's `rate_limit`: the key names whose sends count
    together (app, consumer, credential)."""

    key: tuple[str, str, str]
    requests: int
    per: float


def quota_for(
    rate_limit: RateLimit | None, app: str, consumer: str, credential: str | None
) -> Quota | None:
    """The quota a send with this credential draws from; None when the App has no limit.
    Without a credential (auth `none`) the consumer's sends to the App count together."""
    if rate_limit is None:
        return None
    return Quota((app, consumer, credential or ""), rate_limit.requests, rate_limit.per)


@dataclass(frozen=True, slots=True)
class Slot:
    """A send's place in a quota: send after `wait` seconds; `token` names it to `sent`."""

    wait: float
    token: str | None = None


class Limiter(Protocol):
    async def take(
        self,
        quota: Quota,
        *,
        ticket: str | None = None,
        hold: float = math.inf,
        expiry: float = 300.0,
    ) -> Slot:
        """A slot of `quota` for one send. A slot more than `hold` away is kept under
        `ticket` (taking again with the same ticket gives what is left until it); `expiry`
        bounds how long the send may take."""
        ...

    async def sent(self, quota: Quota, slot: Slot) -> None:
        """The send of `slot` is over: answered, or failed."""
        ...


@dataclass
class _Window:
    slots: deque[float]
    per: float
    tickets: dict[str, float] = field(default_factory=dict)


class RateLimiter:
    """Slots reserved per quota key. Sends of different keys never wait on each other."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._reservations = 0

    def reserve(self, quota: Quota, *, ticket: str | None = None, hold: float = 0.0) -> float:
        """Reserve the next free slot for one send and return the seconds until it.

        A caller that will not wait that long itself (more than `hold`) passes a `ticket`
        (e.g. the run id): the slot is kept under it, and reserving again with the same ticket
        returns what is left until that slot instead of taking another one.
        """
        now = self._clock()
        window = self._window(quota)
        if ticket is not None and ticket in window.tickets:
            return max(0.0, window.tickets.pop(ticket) - now)
        slots = window.slots
        slot = now if len(slots) < quota.requests else max(now, slots[0] + quota.per)
        slots.append(slot)  # the deque keeps the last `requests` slots only
        wait = slot - now
        if ticket is not None and wait > hold:
            window.tickets[ticket] = slot
        self._reservations += 1
        if self._reservations % 1024 == 0:
            self._forget_idle(now)
        return wait

    async def take(
        self,
        quota: Quota,
        *,
        ticket: str | None = None,
        hold: float = math.inf,
        expiry: float = 300.0,
    ) -> Slot:
        return Slot(self.reserve(quota, ticket=ticket, hold=hold))

    async def sent(self, quota: Quota, slot: Slot) -> None:
        """Nothing to do: in one process a slot's time is when its send leaves."""

    def _window(self, quota: Quota) -> _Window:
        window = self._windows.get(quota.key)
        if window is None:
            window = _Window(deque(maxlen=quota.requests), quota.per)
            self._windows[quota.key] = window
        elif window.slots.maxlen != quota.requests:  # the limit changed on a reload
            window.slots = deque(window.slots, maxlen=quota.requests)
        window.per = quota.per
        return window

    def _forget_idle(self, now: float) -> None:
        """Drop keys whose slots can no longer delay anyone (bounded memory), and tickets
        nobody came back for within a window."""
        for key in list(self._windows):
            window = self._windows[key]
            horizon = now - window.per
            window.tickets = {t: s for t, s in window.tickets.items() if s > horizon}
            if not window.tickets and (not window.slots or window.slots[-1] <= horizon):
                del self._windows[key]
