"""`rate_limit:` shared by the replicas of a PostgreSQL environment.

Every replica takes its sends' slots from one log per quota kept in the database
(`Store.reserve_rate_slot`: a row locked while it is read and written, times by the database's
clock), so three replicas under "N per second" send N per second together, not 3N.

The guarantee is about what the App sees. A send may reach the App any time between when it
left and when its answer came back, so a send counts against the window from its slot until
`per` after its answer (`Store.confirm_rate_slot`), and a slot is taken only when fewer than N
sends can still be inside the window: however late a send left or however long it took, the
App never sees N + 1 within `per`. The price is that a slow App's sends count longer (at most
N per `per` plus the answer time). A send still in flight counts until its answer, or until
its timeout and a grace after it (a replica that died mid-send).

A caller whose slot is not free yet waits the seconds the database gives and asks again (with
a little jitter so waiters spread out), or, past `hold`, hears how long to stay away (a run
goes back to the queue until then). Nothing is reserved ahead, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable

from rollout_yaml.http.rate_limit import Quota, Slot
from rollout_yaml.store.base import Store

MARGIN_SHARE = 0.02
MAX_MARGIN = 0.05
JITTER_SHARE = 0.05


def margin(per: float) -> float:
    """A little extra spacing for the App's own clock resolution: 2% of the window, at most
    50 ms."""
    return min(per * MARGIN_SHARE, MAX_MARGIN)


class SharedRateLimiter:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._rng = rng or random.Random()

    async def take(
        self,
        quota: Quota,
        *,
        ticket: str | None = None,
        hold: float = math.inf,
        expiry: float = 300.0,
    ) -> Slot:
        """A slot taken now (wait 0, after waiting here up to `hold` seconds), else the seconds
        until one may free, longer than `hold` (nothing is kept: `ticket` is not needed)."""
        key = "/".join(quota.key)
        started = self._clock()
        while True:
            token = uuid.uuid4().hex
            wait = await self.store.reserve_rate_slot(
                key, quota.requests, quota.per, margin(quota.per), token, expiry
            )
            if wait <= 0:
                return Slot(0.0, token)
            wait += self._rng.uniform(0, quota.per * JITTER_SHARE)
            if self._clock() - started + wait > hold:
                return Slot(wait)
            await asyncio.sleep(wait)

    async def sent(self, quota: Quota, slot: Slot) -> None:
        if slot.token is not None:
            await self.store.confirm_rate_slot("/".join(quota.key), slot.token)
