"""Poll triggers in the real daemon process against a real paginated API of 1,000 items:
each item is emitted once, also when the daemon is killed (`kill -9`) in the middle of a poll
and started again."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_server import AppServer
from daemon_proc import Daemon, free_port
from list_server import ListServer
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import SECRETS, copy_project


@pytest.fixture
def shop() -> Iterator[ListServer]:
    server = ListServer(1000).start()
    yield server
    server.stop()


def all_runs(daemon: Daemon) -> list[dict]:
    runs: list[dict] = []
    cursor = None
    with daemon.admin() as admin:
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = admin.get("/admin/v1/runs", params=params).json()
            runs.extend(page["runs"])
            cursor = page["next_cursor"]
            if not cursor:
                return runs


def wait_delivered(sink: AppServer, count: int) -> Counter[str]:
    sink.wait_for(count, timeout=60)
    time.sleep(1.5)  # more than a poll interval: anything extra would show up
    return Counter(r.path for r in sink.requests)


@pytest.mark.parametrize("style", ["link", "cursor"])
def test_a_thousand_items_once_each_across_a_kill_9_mid_poll(
    style: str, tmp_path: Path, sink: AppServer, shop: ListServer
) -> None:
    project = copy_project(tmp_path)
    write_shop(project, shop.url, {"items": trigger(style, initial="emit")})
    write_automations(project, {"items-to-sink": automation("items")})
    # While the first daemon runs, the sink is down: runs wait to retry, nothing is delivered
    # twice because of the kill.
    sink_yaml = project / "connectors" / "sink.yaml"
    sink_yaml.write_text(
        sink_yaml.read_text()
        .replace("max_attempts: 4", "max_attempts: 20")
        .replace("base: 100ms", "base: 1s")
    )
    shop.delay = 0.2  # ten pages of 100: two seconds a poll
    first = Daemon(project, f"http://127.0.0.1:{free_port()}").start()
    shop.wait_for(5)
    time.sleep(0.1)
    first.kill()
    assert len(shop.requests) < 10, "the poll was not interrupted"
    db = sqlite3.connect(project / "environments/test/.rollout/state.db")
    stored = db.execute("select count(*) from events").fetchone()[0]
    cursor = db.execute("select count(*) from poll_state where key like 'poll:%'").fetchone()[0]
    db.close()
    assert 0 < stored < 1000 and cursor == 0  # some pages committed, the cursor not saved

    shop.delay = 0.0
    second = Daemon(project, sink.url).start()
    try:
        delivered = wait_delivered(sink, 1000)
        assert delivered == Counter(f"/orders/{n}" for n in range(1, 1001))
        keys = {r.headers["Idempotency-Key"] for r in sink.requests}
        assert len(keys) == 1000  # one run per item
        # the restarted daemon polled again from the start: page 1 was read twice
        assert len(shop.pages_of(f"/{style}/items")) > 10

        shop.add(10)
        delivered = wait_delivered(sink, 1010)
        assert delivered == Counter(f"/orders/{n}" for n in range(1, 1011))
        runs = all_runs(second)
        assert len(runs) == 1010
        assert Counter(r["status"] for r in runs) == {"succeeded": 1010}

        status = httpx.get(f"{second.url}/status").json()
        (group,) = status["polls"]
        assert group["automations"] == ["items-to-sink"] and group["failures"] == 0
        metrics = httpx.get(f"{second.url}/metrics").text
        assert 'rollout_polls_total{app="shop",outcome="ok",trigger="items"}' in metrics
    finally:
        second.stop()
    assert SECRETS["ACME_SINK_TOKEN"] not in first.logs() + second.logs()
