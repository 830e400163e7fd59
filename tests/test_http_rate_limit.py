"""A connector's `rate_limit`, per credential: sends wait for a slot, never exceed N in any
window of `per`, and one key's waiting never delays another key's sends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer

from rollout_yaml.config.loader import load_definitions
from rollout_yaml.config.models.request import RateLimit
from rollout_yaml.config.project import Layout
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.rate_limit import Quota, RateLimiter, quota_for
from rollout_yaml.http.request import PreparedRequest

# The local server stamps a request when its handler thread runs, after the client sent it;
# on a busy machine two stamps can be closer than the sends were by some tens of ms.
JITTER = 0.1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"ok": True})
    yield server
    server.stop()


def _request(url: str) -> PreparedRequest:
    return PreparedRequest(method="POST", url=url, path="", query=[], headers={}, timeout=5.0)


def _max_in_any_window(stamps: list[float], per: float) -> int:
    stamps = sorted(stamps)
    return max(
        sum(1 for t in stamps[i:] if t < start + per - JITTER) for i, start in enumerate(stamps)
    )


def test_slots_never_put_more_than_n_sends_in_any_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    quota = Quota(("app", "c", "cred"), 3, 10.0)
    slots = []
    for step in (0.0, 0.0, 1.0, 0.0, 0.0, 4.0, 30.0, 0.0, 0.5):
        clock.now += step
        slots.append(clock.now + limiter.reserve(quota))
    # a burst of three at once, then each further send waits for the oldest to leave the window
    assert slots[:5] == [1000.0, 1000.0, 1001.0, 1010.0, 1010.0]
    for i in range(len(slots) - 3):
        assert slots[i + 3] - slots[i] >= 10.0
    assert slots == sorted(slots)


def test_keys_do_not_share_slots() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    first = Quota(("app", "acme", "main"), 1, 60.0)
    other_credential = Quota(("app", "acme", "backup"), 1, 60.0)
    other_consumer = Quota(("app", "globex", "main"), 1, 60.0)
    assert limiter.reserve(first) == 0
    assert limiter.reserve(first) == 60.0
    assert limiter.reserve(other_credential) == 0
    assert limiter.reserve(other_consumer) == 0


def test_a_ticket_keeps_the_slot_for_the_run_that_went_back_to_the_queue() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    quota = Quota(("app", "c", "k"), 1, 10.0)
    assert limiter.reserve(quota, ticket="run_1", hold=2) == 0
    assert limiter.reserve(quota, ticket="run_2", hold=2) == 10.0  # too long: kept for run_2
    assert limiter.reserve(quota, ticket="run_3", hold=2) == 20.0
    clock.now += 10.0
    assert limiter.reserve(quota, ticket="run_2", hold=2) == 0  # its own slot, not a new one
    assert limiter.reserve(quota, ticket="run_4", hold=2) == 20.0  # after run_3's


def test_a_changed_limit_applies_to_the_next_send() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    key = ("app", "c", "k")
    assert limiter.reserve(Quota(key, 1, 10.0)) == 0
    assert limiter.reserve(Quota(key, 3, 10.0)) == 0
    assert limiter.reserve(Quota(key, 3, 10.0)) == 0
    assert limiter.reserve(Quota(key, 3, 10.0)) == 10.0


def test_quota_for_keys_by_app_consumer_and_credential() -> None:
    limit = RateLimit(requests=100, per="1m")  # type: ignore[arg-type]
    assert quota_for(None, "shop", "acme", "main") is None
    assert quota_for(limit, "shop", "acme", "main") == Quota(("shop", "acme", "main"), 100, 60.0)
    assert quota_for(limit, "shop", "acme", None) == Quota(("shop", "acme", ""), 100, 60.0)


@pytest.mark.parametrize(
    ("limit", "code", "line"),
    [("{ requests: 10, per: 0s }", "RY104", 5), ("{ requests: 0, per: 1s }", "RY104", 5)],
)
def test_a_limit_that_allows_nothing_or_everything_is_a_diagnostic(
    tmp_path: Path, limit: str, code: str, line: int
) -> None:
    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "shop.yaml").write_text(
        f"app: shop\nname: Shop\nversion: 1.0.0\nbase_url: https://shop.example\n"
        f"rate_limit: {limit}\n",
        encoding="utf-8",
    )
    found = load_definitions(tmp_path, Layout(tmp_path)).diagnostics
    assert [(d.code, d.file, d.line) for d in found] == [(code, "connectors/shop.yaml", line)]


async def _limited_send(
    limiter: RateLimiter, clients: AppClients, app: str, url: str, quota: Quota
) -> None:
    """A send after its slot, as the outbound path (engine/outbound.py) makes it."""
    await asyncio.sleep((await limiter.take(quota)).wait)
    await clients.send(app, _request(url), 1000)


def test_sends_at_r_per_second_take_the_expected_time_at_a_real_server(app: AppServer) -> None:
    """12 sends at 5 per second: 5 at once, 5 a second later, 2 a second after that."""
    quota = Quota(("limited", "acme", "main"), 5, 1.0)

    async def scenario() -> float:
        clients, limiter = AppClients(), RateLimiter()
        started = time.monotonic()
        try:
            await asyncio.gather(
                *(
                    _limited_send(limiter, clients, "limited", f"{app.url}/n/{i}", quota)
                    for i in range(12)
                )
            )
        finally:
            await clients.close()
        return time.monotonic() - started

    took = asyncio.run(scenario())
    assert took >= 2.0
    stamps = [r.at for r in app.requests]
    assert len(stamps) == 12
    assert _max_in_any_window(stamps, 1.0) == 5, sorted(t - min(stamps) for t in stamps)
    assert max(stamps) - min(stamps) >= 2.0 - JITTER


def test_one_apps_limit_does_not_slow_another_apps_sends(app: AppServer) -> None:
    slow = Quota(("slow", "acme", "main"), 1, 1.0)
    fast = Quota(("fast", "acme", "main"), 100, 1.0)

    async def scenario() -> tuple[float, float]:
        clients, limiter = AppClients(), RateLimiter()
        try:
            started = time.monotonic()
            throttled = asyncio.gather(
                *(
                    _limited_send(limiter, clients, "slow", f"{app.url}/slow/{i}", slow)
                    for i in range(4)
                )
            )
            await asyncio.sleep(0.05)  # the slow App's sends are now waiting for slots
            await asyncio.gather(
                *(
                    _limited_send(limiter, clients, "fast", f"{app.url}/fast/{i}", fast)
                    for i in range(10)
                )
            )
            fast_done = time.monotonic() - started
            await throttled
            return fast_done, time.monotonic() - started
        finally:
            await clients.close()

    fast_done, slow_done = asyncio.run(scenario())
    assert slow_done >= 3.0  # four sends at one a second
    assert fast_done < 1.0  # the other App did not wait behind them
    fast_stamps = [r.at for r in app.requests if r.path.startswith("/fast/")]
    slow_stamps = sorted(r.at for r in app.requests if r.path.startswith("/slow/"))
    assert len(fast_stamps) == 10
    assert max(fast_stamps) < slow_stamps[1]  # all ten arrived before the slow App's second
