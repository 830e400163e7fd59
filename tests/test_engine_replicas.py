"""Several runtimes on one PostgreSQL database, in-process, sending to a real HTTP server: what
replicas rely on besides the store (lease renewal of a backlog, pruning under a lease).

PostgreSQL only, by nature: replicas exist only there. A SQLite file is opened by one process at
a time (the store takes a lock), so no other runner can claim its runs, take its leases or
outlive it, and a database going away is a network failure SQLite has no equivalent of."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from runner_env import compile_env, copy_project

from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunQuery, RunStatus


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True})
    yield server
    server.stop()


async def _replica(project: Path, app: AppServer, database: str) -> Runtime:
    store = open_store(database, project)
    await store.open()
    runtime = Runtime(compile_env(project, app.url), store)
    await runtime.start()
    return runtime


def _orders(start: int, count: int) -> list[PushEvent]:
    return [
        PushEvent("partner", "order-created", f"o-{i}", {"order_id": i, "total": 20})
        for i in range(start, start + count)
    ]


def test_a_backlog_longer_than_the_lease_is_not_claimed_by_another_replica(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    # The fixture's lease is 3 s; 16 workers against an App answering in 100 ms deliver about
    # 160 runs/s, so 800 runs queued on one replica wait ~5 s: past the lease they were
    # created with. Renewal keeps them; the idle replica, claiming every second, gets none.
    app.default = Answer(200, {"received": True}, delay=0.1)
    project = copy_project(tmp_path)

    async def scenario() -> None:
        busy = await _replica(project, app, pg_database)
        idle = await _replica(project, app, pg_database)
        for start in range(0, 800, 100):
            result = await busy.push("acme", _orders(start, 100), batch=True)
            assert result.runs_queued == 100
        await asyncio.to_thread(app.wait_for, 800, 40)
        await asyncio.sleep(1.5)  # anything claimed twice would arrive by now
        counts = await busy.store.count_by_status()
        for replica in (busy, idle):
            await replica.stop()
            await replica.store.close()
        assert counts == {str(RunStatus.SUCCEEDED): 800}

    asyncio.run(scenario())
    keys = Counter(r.headers["Idempotency-Key"] for r in app.requests)
    assert len(keys) == 800 and set(keys.values()) == {1}


def test_runs_of_a_stopped_replica_are_claimed_by_another(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    # A replica that stops with work queued releases its leases; a running one picks it up.
    app.default = Answer(200, {"received": True}, delay=0.05)
    project = copy_project(tmp_path)

    async def scenario() -> None:
        leaving = await _replica(project, app, pg_database)
        staying = await _replica(project, app, pg_database)
        await leaving.push("acme", _orders(0, 300), batch=True)
        await leaving.stop(grace=0.2)
        await leaving.store.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            counts = await staying.store.count_by_status()
            if counts.get(str(RunStatus.SUCCEEDED)) == 300:
                break
            await asyncio.sleep(0.1)
        await staying.stop()
        await staying.store.close()
        assert counts == {str(RunStatus.SUCCEEDED): 300}

    asyncio.run(scenario())
    assert len({r.headers["Idempotency-Key"] for r in app.requests}) == 300


RETENTION = "\n  retention: { runs: 1s, events: 1s }\n"


def test_old_runs_are_pruned_by_one_replica_at_a_time(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    project = copy_project(tmp_path)
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(env_file.read_text().rstrip("\n") + RETENTION)

    async def scenario() -> None:
        first = await _replica(project, app, pg_database)
        second = await _replica(project, app, pg_database)
        await first.push("acme", _orders(0, 30), batch=True)
        await asyncio.to_thread(app.wait_for, 30)
        await asyncio.sleep(1.5)  # older than the retention now
        for r in (first, second):
            r.pruner.batch = 7
        pruned = await asyncio.gather(first.pruner.prune_once(), second.pruner.prune_once())
        left = await first.store.list_runs(RunQuery())
        for r in (first, second):
            await r.stop()
            await r.store.close()
        # the replica holding the lease deleted all of it, in batches; the other none
        assert sorted(pruned) == [(0, 0), (30, 30)] and left == []

    asyncio.run(scenario())


def test_queued_runs_whose_lease_went_to_another_replica_are_not_started(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    # As if this replica had stalled past its leases: another claimed its runs meanwhile.
    app.default = Answer(200, {"received": True}, delay=0.5)
    project = copy_project(tmp_path)

    async def scenario() -> tuple[int, float, list[str]]:
        stalled = await _replica(project, app, pg_database)
        await stalled.push("acme", _orders(0, 64), batch=True)
        await asyncio.sleep(0.2)  # 16 workers busy, the rest queued here
        later = time.time() + 3600  # every lease has expired by then
        taken = await stalled.store.claim_runs("another-replica", later, 60, 1000)
        first = await stalled.dispatcher.renew_once()
        assert await stalled.dispatcher.renew_once() == 0  # the next renewal: nothing new lost
        # The replica's own renewal loop (every lease/3) may have run between the claim and
        # the call above and found them first; either way each lost run is counted once.
        lost = int(stalled.metrics.registry.get_sample_value("rollout_leases_lost_total") or 0)
        assert first in (0, lost)
        await asyncio.sleep(1.5)  # the 16 finish; a queued run would have started by now
        sent = [r.headers["Idempotency-Key"] for r in app.requests]
        metric = stalled.metrics.registry.get_sample_value("rollout_leases_lost_total")
        await stalled.stop(grace=2)
        await stalled.store.close()
        assert len(taken) == 64
        return lost, metric, sent

    lost, metric, sent = asyncio.run(scenario())
    assert lost > 0 and metric == lost
    assert len(sent) == len(set(sent)) and len(sent) + lost == 64  # lost ones never sent


class Proxy:
    """A TCP proxy in front of PostgreSQL that a test can cut and restore, as a network
    partition or a database restart would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        self._writers -= {writer, up_writer}


def test_a_runner_recovers_when_the_database_comes_back(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_database)
    project = copy_project(tmp_path)

    async def scenario() -> None:
        proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        runtime = await _replica(project, app, through)
        await runtime.push("acme", _orders(0, 5), batch=True)
        await _succeeded(runtime, 5)
        await proxy.cut()
        assert not await runtime.store.ping()
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            await runtime.push("acme", _orders(5, 5), batch=True)
        await proxy.start()  # the same port: the database is back
        assert await runtime.store.ping()
        result = await runtime.push("acme", _orders(5, 5), batch=True)
        assert result.runs_queued == 5
        await _succeeded(runtime, 10)
        await runtime.stop()
        await runtime.store.close()
        await proxy.cut()

    asyncio.run(scenario())
    keys = [r.headers["Idempotency-Key"] for r in app.requests]
    assert len(keys) == len(set(keys)) == 10


async def _succeeded(runtime: Runtime, count: int, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (await runtime.store.count_by_status()) == {str(RunStatus.SUCCEEDED): count}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(await runtime.store.count_by_status())
