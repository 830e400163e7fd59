"""`rate_limit:` shared by replicas on PostgreSQL (engine/rate_limits.py, migration 8): three
runtimes with stores of their own (as three processes would have) send one credential's runs
to a real HTTP server, and the App never sees more than N in any window of `per`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from app_server import AppServer
from runner_env import compile_env, copy_project
from store_env import close_stores, replica_stores

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.rate_limits import JITTER_SHARE, SharedRateLimiter, margin
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.http.rate_limit import Quota, RateLimiter
from rollout_yaml.store.records import RunQuery, RunStatus

N, PER, REPLICAS, RUNS_EACH = 4, 1.0, 3, 3
DONE = (RunStatus.SUCCEEDED, RunStatus.FAILED)


def most_in_any_window(stamps: list[float], per: float) -> int:
    stamps = sorted(stamps)
    return max(
        sum(1 for later in stamps[i:] if later - first < per) for i, first in enumerate(stamps)
    )


def test_a_quota_is_one_log_in_the_database_for_every_replica(
    pg_database: str, tmp_path: Path
) -> None:
    """Two slots per 10 s: each replica takes one; a third waits for a send to be answered and
    then for `per` after that answer (the App may have seen the send until then)."""
    quota = Quota(("app", "acme", "cred"), 2, 10.0)

    async def scenario() -> None:
        stores = await replica_stores(pg_database, tmp_path, 2)
        try:
            first, second = (SharedRateLimiter(store) for store in stores)
            one = await first.take(quota)
            two = await second.take(quota)  # the second slot, from the other replica
            assert stores[0].shared and one.wait == two.wait == 0 and one.token != two.token
            in_flight = await first.take(quota, hold=0.0)  # both sends still in flight
            assert 0 < in_flight.wait < 1 and in_flight.token is None
            await first.sent(quota, one)
            await second.sent(quota, two)
            answered = await second.take(quota, hold=1.0)  # now: 10 s after the answers
            assert 10 - 1 < answered.wait <= 10 + margin(10.0) + 10 * JITTER_SHARE
        finally:
            await close_stores(stores)

    asyncio.run(scenario())


def test_a_waiter_takes_the_slot_once_the_window_moves_on(pg_database: str, tmp_path: Path) -> None:
    quota = Quota(("app", "acme", "cred"), 1, 0.3)

    async def scenario() -> None:
        (store,) = await replica_stores(pg_database, tmp_path, 1)
        try:
            limiter = SharedRateLimiter(store)
            first = await limiter.take(quota)
            await limiter.sent(quota, first)
            started = time.monotonic()
            assert (await limiter.take(quota, hold=5.0)).wait == 0  # waited inside, then took it
            assert 0.3 <= time.monotonic() - started < 2
        finally:
            await close_stores([store])

    asyncio.run(scenario())


def test_a_send_that_never_ends_counts_until_its_expiry(pg_database: str, tmp_path: Path) -> None:
    """A replica that died mid-send never confirms: its slot frees after the send's expiry."""
    quota = Quota(("app", "acme", "cred"), 1, 0.2)

    async def scenario() -> None:
        (store,) = await replica_stores(pg_database, tmp_path, 1)
        try:
            limiter = SharedRateLimiter(store)
            assert (await limiter.take(quota, expiry=0.5)).wait == 0  # never confirmed
            started = time.monotonic()
            assert (await limiter.take(quota, hold=5.0)).wait == 0
            assert 0.5 + 0.2 <= time.monotonic() - started < 3
        finally:
            await close_stores([store])

    asyncio.run(scenario())


def test_sqlite_keeps_the_quota_in_the_process(tmp_path: Path, sink: AppServer) -> None:
    async def scenario() -> None:
        (store,) = await replica_stores(f"sqlite:///{tmp_path / 'state.db'}", tmp_path, 1)
        try:
            runtime = Runtime(compile_env(copy_project(tmp_path), sink.url), store)
            assert not store.shared and isinstance(runtime.outbound.limiter, RateLimiter)
        finally:
            await close_stores([store])

    asyncio.run(scenario())


def test_three_replicas_under_n_per_second_never_send_more_than_n_in_a_second(
    pg_database: str, tmp_path: Path, sink: AppServer
) -> None:
    project = copy_project(tmp_path)
    connector = project / "connectors" / "sink.yaml"
    connector.write_text(
        connector.read_text().replace(
            "auth: { type: bearer }\n",
            f"auth: {{ type: bearer }}\nrate_limit: {{ requests: {N}, per: {PER:g}s }}\n",
        )
    )

    async def scenario() -> list[RunStatus]:
        stores = await replica_stores(pg_database, tmp_path, REPLICAS)
        runtimes = [Runtime(compile_env(project, sink.url), store) for store in stores]
        try:
            for runtime in runtimes:
                await runtime.start()
            for index, runtime in enumerate(runtimes):  # each replica takes its own pushes
                events = [
                    PushEvent("partner", "order-created", None, {"order_id": n, "total": 20})
                    for n in range(index * RUNS_EACH, (index + 1) * RUNS_EACH)
                ]
                await runtime.push("acme", events)
            deadline = time.time() + 30
            while time.time() < deadline:
                runs = await stores[0].list_runs(RunQuery(consumer="acme", limit=100))
                if len(runs) == REPLICAS * RUNS_EACH and all(r.status in DONE for r in runs):
                    return [r.status for r in runs]
                await asyncio.sleep(0.1)
            raise AssertionError("the runs did not finish")
        finally:
            for runtime in runtimes:
                await runtime.stop(grace=2)
            await close_stores(stores)

    statuses = asyncio.run(scenario())
    assert statuses == [RunStatus.SUCCEEDED] * (REPLICAS * RUNS_EACH)
    stamps = [r.at for r in sink.requests if r.path.startswith("/orders/")]
    assert len(stamps) == REPLICAS * RUNS_EACH
    assert most_in_any_window(stamps, PER) <= N  # each replica alone would allow N
    # and the quota is used, not starved: 9 sends at 4 a window take about three windows
    assert max(stamps) - min(stamps) < 3 * (PER + margin(PER)) + 1.5
