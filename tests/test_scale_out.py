"""Scale-out as a partner runs it: several real `rollout-yaml run` processes on one PostgreSQL
database, events pushed across them, one replica killed with SIGKILL mid-load, and a real HTTP
server as the App counting idempotency keys."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from app_server import Answer, AppServer
from daemon_proc import Daemon
from list_server import ListServer
from pg_env import fetch
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import copy_project

EVENTS = 5000
BATCH = 50
WORKERS = 16  # runtime.workers of the test project: at most this many runs in flight


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True})
    yield server
    server.stop()


def shared_project(tmp_path: Path) -> Path:
    """The test project with `database:` read from the environment, as production sets it."""
    project = copy_project(tmp_path)
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(
        env_file.read_text().replace("database: sqlite", 'database: "${DATABASE_URL}"')
    )
    return project


def replicas(project: Path, app: AppServer, url: str, count: int) -> list[Daemon]:
    """`count` daemons started at the same time, as a deployment starts its replicas."""
    daemons = [Daemon(project, app.url, extra_env={"DATABASE_URL": url}) for _ in range(count)]
    with ThreadPoolExecutor(count) as pool:
        starts = [pool.submit(d.start) for d in daemons]
    try:
        for start in starts:
            start.result()
    except BaseException:
        for daemon in daemons:
            daemon.stop()
        raise
    return daemons


def test_three_replicas_one_killed_mid_load_every_event_one_successful_run(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    daemons = replicas(shared_project(tmp_path), app, pg_database, 3)
    victim = daemons[1]
    alive = [True, True, True]
    pushed = threading.Semaphore(0)
    killed_at: list[float] = []

    def send(batch: int) -> None:
        events = [
            {
                "app": "partner",
                "trigger": "order-created",
                "id": f"e-{i}",
                "payload": {"order_id": i, "total": 20},
            }
            for i in range(batch * BATCH, (batch + 1) * BATCH)
        ]
        target = batch % 3
        while True:  # the load balancer: a replica that does not answer is skipped
            if not alive[target]:
                target = (target + 1) % 3
                continue
            try:
                with daemons[target].client("acme") as client:
                    answer = client.post("/v1/events", json={"events": events})
            except httpx.TransportError:
                target = (target + 1) % 3
                continue
            assert answer.status_code == 202, answer.text
            pushed.release()
            return

    def kill_when_a_third_is_pushed() -> None:
        for _ in range(EVENTS // BATCH // 3):
            pushed.acquire()
        alive[1] = False
        killed_at.append(time.time())
        victim.kill()
        killed_at.append(time.time())

    started = time.time()
    try:
        killer = threading.Thread(target=kill_when_a_third_is_pushed)
        killer.start()
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(send, range(EVENTS // BATCH)))
        killer.join()
        deadline = time.time() + 45
        while time.time() < deadline:
            done = fetch(pg_database, "SELECT count(*) FROM runs WHERE status = 'succeeded'")
            if done[0][0] == EVENTS:
                break
            time.sleep(0.25)
        statuses = dict(fetch(pg_database, "SELECT status, count(*) FROM runs GROUP BY status"))
        per_event = fetch(
            pg_database,
            "SELECT count(*), count(DISTINCT event_id), (SELECT count(*) FROM events) FROM runs",
        )
        claimed = sum(
            _counter(httpx.get(f"{d.url}/metrics").text, "rollout_runs_claimed_total")
            for d in (daemons[0], daemons[2])
        )
    finally:
        for daemon in daemons:
            daemon.stop()
    elapsed = time.time() - started
    assert statuses == {"succeeded": EVENTS}, statuses
    assert per_event == [(EVENTS, EVENTS, EVENTS)]  # every event exactly one run
    arrivals: dict[str, list[float]] = defaultdict(list)
    for request in app.requests:
        arrivals[request.headers["Idempotency-Key"]].append(request.at)
    assert len(arrivals) == EVENTS
    counts = Counter(len(times) for times in arrivals.values())
    assert set(counts) <= {1, 2}, counts
    twice = [sorted(times) for times in arrivals.values() if len(times) == 2]
    # a run sent twice was in flight on the killed replica: sent before the kill, again after
    # (the App notes a request when its thread reads it, a moment after it was sent; the second
    # send waits for the victim's lease to expire, seconds later)
    kill_sent, kill_done = killed_at
    late = [t for t in twice if not (t[0] <= kill_done + 0.5 and t[1] >= kill_sent + 1)]
    assert not late, (killed_at, late)
    assert len(twice) <= WORKERS
    assert claimed >= len(twice)  # the survivors took the victim's runs over, and say so
    assert elapsed < 60, f"took {elapsed:.0f} s"


def _counter(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


EVERY_2S = """
  heartbeat:
    trigger: { app: schedule, trigger: every, input: { every: 2s } }
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: 2, text: "{{ payload.scheduled_at }}" }
"""


def assert_one_fire_per_tick(app: AppServer, at_least: int) -> None:
    """The every-2 s schedule reached the App once per tick, on its phase, however many
    processes or replicas ran the scheduler."""
    ticks = [r.json()["text"] for r in app.requests if r.path == "/orders/2"]
    assert len(ticks) == len(set(ticks)), f"a tick fired twice: {sorted(ticks)}"
    moments = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")) for t in ticks)
    assert len(moments) >= at_least
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(moments)}
    assert gaps == {2.0}, f"ticks off their 2 s phase: {sorted(ticks)}"


def test_three_replicas_fire_a_schedule_once_per_tick(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    project = shared_project(tmp_path)
    consumer = project / "environments/test/consumers/acme.yaml"
    consumer.write_text(consumer.read_text() + EVERY_2S)
    daemons = replicas(project, app, pg_database, 3)
    try:
        time.sleep(9)
    finally:
        for daemon in daemons:
            daemon.stop()
    assert_one_fire_per_tick(app, at_least=3)


def test_three_replicas_poll_a_group_once_per_interval(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    shop = ListServer(30).start()
    try:
        project = shared_project(tmp_path)
        write_shop(project, shop.url, {"items": trigger("cursor", initial="emit", every="2s")})
        # two automations with the same trigger, credential and inputParams: one poll group
        write_automations(project, {"items-a": automation("items"), "items-b": automation("items")})
        daemons = replicas(project, app, pg_database, 3)
        try:
            app.wait_for(60, timeout=30)  # 30 items, 2 automations
            time.sleep(7)  # three more intervals with nothing new
            shop.add(5)
            app.wait_for(70, timeout=15)
            time.sleep(2.5)
        finally:
            for daemon in daemons:
                daemon.stop()
    finally:
        shop.stop()
    polls = sorted(seen.at for seen in shop.pages_of("/cursor/items"))
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) >= 5
    # one poll per 2 s interval across the three replicas, not one per replica (three would
    # leave gaps of 0.67 s on average). An interval counts from the poll's start as recorded;
    # the request reaches the App a moment later, less promptly on a busy machine, so one gap
    # may be a few hundred milliseconds short of 2 s.
    assert min(gaps) > 1.0, f"polled twice within an interval: {gaps}"
    assert sum(gaps) / len(gaps) > 1.8, f"polled more often than every 2 s: {gaps}"
    deliveries = Counter(r.path for r in app.requests if r.path.startswith("/orders/"))
    assert deliveries == Counter({f"/orders/{n}": 2 for n in range(1, 36)})


# -- one daemon, several processes (`runtime.processes`) -----------------------------------


def with_processes(project: Path, count: int) -> Path:
    env_file = project / "environments/test/environment.yaml"
    text = env_file.read_text()
    assert "  workers: 16\n" in text
    env_file.write_text(text.replace("  workers: 16\n", f"  workers: 16\n  processes: {count}\n"))
    return project


def test_a_daemon_of_two_processes_on_sqlite_fires_a_schedule_once_per_tick(
    tmp_path: Path, app: AppServer
) -> None:
    # both processes run the scheduler; the named lease in the SQLite file lets one fire
    project = with_processes(copy_project(tmp_path), 2)
    consumer = project / "environments/test/consumers/acme.yaml"
    consumer.write_text(consumer.read_text() + EVERY_2S)
    daemon = Daemon(project, app.url).start()
    try:
        assert "daemon started 2 processes" in daemon.logs()
        time.sleep(7)
    finally:
        daemon.stop()
    assert_one_fire_per_tick(app, at_least=2)


def test_a_two_process_daemon_killed_mid_load_on_postgresql_loses_nothing(
    tmp_path: Path, app: AppServer, pg_database: str
) -> None:
    # The App is slow, so runs queue in both processes; the daemon dies with SIGKILL (and its
    # processes with it); the next one takes every run over once the leases expire (3 s).
    app.default = Answer(200, {"received": True}, delay=0.05)
    project = with_processes(shared_project(tmp_path), 2)
    first = Daemon(project, app.url, extra_env={"DATABASE_URL": pg_database}).start()
    total = 400

    def send(batch: int) -> None:
        events = [
            {
                "app": "partner",
                "trigger": "order-created",
                "id": f"e-{i}",
                "payload": {"order_id": i, "total": 20},
            }
            for i in range(batch * BATCH, (batch + 1) * BATCH)
        ]
        with first.client("acme") as client:  # a connection each: either process
            answer = client.post("/v1/events", json={"events": events})
        assert answer.status_code == 202, answer.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(total // BATCH)))
    first.kill()
    killed = time.time()
    second = Daemon(
        project, app.url, port=first.port, extra_env={"DATABASE_URL": pg_database}
    ).start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            done = fetch(pg_database, "SELECT count(*) FROM runs WHERE status = 'succeeded'")
            if done[0][0] == total:
                break
            time.sleep(0.25)
        statuses = dict(fetch(pg_database, "SELECT status, count(*) FROM runs GROUP BY status"))
        per_event = fetch(
            pg_database,
            "SELECT count(*), count(DISTINCT event_id), (SELECT count(*) FROM events) FROM runs",
        )
    finally:
        second.stop()
    assert statuses == {"succeeded": total}, statuses
    assert per_event == [(total, total, total)]  # every event exactly one run
    arrivals: dict[str, list[float]] = defaultdict(list)
    for request in app.requests:
        arrivals[request.headers["Idempotency-Key"]].append(request.at)
    assert len(arrivals) == total
    # sent again only if the dead daemon had sent it (in flight, or answered but its record
    # not yet committed): its first send came before the kill
    again = [sorted(times) for times in arrivals.values() if len(times) > 1]
    assert all(times[0] <= killed + 0.5 for times in again), (killed, again)
