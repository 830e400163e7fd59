"""poll: 10,000 automations over 100 poll groups against a paginated local API (cursor paging).

Ten consumers, each with ten `tag` inputParams shared by 100 automations: 100 poll groups of
100 automations. Round 0 is each group's first poll (`initial: skip`, 500 items on 5 pages);
then rounds in which the API gains a few items (each fanned out to the group's 100 runs) and
a round with nothing new. Reports polls/s per round, duplicate emissions (events of one item in
one group, and runs of one item per automation: must be 0) and database rows written per poll.
The poller runs in this process on the real engine and SQLite, the API in a thread; runs are
left queued (executing them is the e2e benchmark's subject). The baseline is the API's own
rate: the same page requests sent straight with aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.poller import Poller
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.sqlite import SQLiteStore

NAME = "poll"
CONSUMERS = 10
TAGS = 10
PER_GROUP = 100
INITIAL_ITEMS = 500
NEW_PER_ROUND = (5, 5, 0)
PAGE = 100
SHOWN = ("polls", "requests", "polls_per_s", "rows_added_per_poll")


class ListApi:
    """`GET /items?since_id&limit&after` → `{"results": [...], "paging": {"next": {"after"}}}`."""

    def __init__(self) -> None:
        self.count = INITIAL_ITEMS
        self.requests = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _items(self, request: web.Request) -> web.Response:
        self.requests += 1
        since = int(request.query.get("since_id") or 0)
        limit = int(request.query.get("limit") or PAGE)
        start = max(since, int(request.query.get("after") or 0))
        end = min(start + limit, self.count)
        page = [{"id": n, "name": f"item {n}"} for n in range(start + 1, end + 1)]
        body: dict[str, Any] = {"results": page}
        if end < self.count:
            body["paging"] = {"next": {"after": str(end)}}
        return web.json_response(body)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/items", self._items)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()

    def start(self) -> ListApi:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def write_project(root: Path, url: str) -> Path:
    if root.exists():
        shutil.rmtree(root)
    (root / "connectors").mkdir(parents=True)
    consumers = root / "environments" / "bench" / "consumers"
    consumers.mkdir(parents=True)
    (root / "environments" / "bench" / "environment.yaml").write_text(
        "environment: bench\nrelease: live\nruntime: { dry_run: true }\n"
    )
    shop = {
        "app": "shop",
        "name": "Shop",
        "version": "1.0.0",
        "base_url": url,
        "auth": {"type": "bearer"},
        "triggers": {
            "items": {
                "name": "New item",
                "input_schema": {"type": "object", "properties": {"tag": {"type": "string"}}},
                "poll": {
                    "every": "1m",
                    "request": {
                        "path": "/items",
                        "query": {
                            "since_id": "{{ cursor }}",
                            "limit": PAGE,
                            "tag": "{{ input.tag }}",
                        },
                    },
                    "paginate": {
                        "type": "cursor",
                        "param": "after",
                        "next": "paging.next.after",
                        "max_pages": 50,
                    },
                    "items": "results",
                    "id": "to_string(id)",
                    "cursor": "max_by(@, &id).id",
                    "payload": "{item_id: id, name: name}",
                    "initial": "skip",
                },
            }
        },
    }
    sink = {
        "app": "sink",
        "name": "Sink",
        "version": "1.0.0",
        "base_url": "https://sink.invalid",
        "actions": {
            "deliver": {
                "name": "Deliver",
                "input_schema": {"type": "object"},
                "request": {"method": "POST", "path": "/items", "json": {"id": "{{ input.id }}"}},
            }
        },
    }
    (root / "connectors" / "shop.yaml").write_text(json.dumps(shop))
    (root / "connectors" / "sink.yaml").write_text(json.dumps(sink))
    for c in range(CONSUMERS):
        automations = {}
        for t in range(TAGS):
            for a in range(PER_GROUP):
                automations[f"a-{t}-{a}"] = {
                    "trigger": {
                        "app": "shop",
                        "trigger": "items",
                        "credential": "shop",
                        "input": {"tag": f"t{t}"},
                    },
                    "action": {
                        "app": "sink",
                        "action": "deliver",
                        "input": {"id": "{{ payload.item_id }}"},
                    },
                }
        consumer = {
            "consumer": f"c{c}",
            "credentials": {"shop": {"app": "shop", "values": {"token": "${SHOP_TOKEN}"}}},
            "automations": automations,
        }
        (consumers / f"c{c}.yaml").write_text(json.dumps(consumer))
    return root


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return sum(
            conn.execute(f"select count(*) from {table}").fetchone()[0]
            for table in ("events", "runs", "poll_seen", "poll_state")
        )


async def _direct(url: str, pages: int) -> float:
    """Requests/s of the API alone, the same page requests, 16 at a time."""
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()

        async def one(i: int) -> None:
            async with session.get(f"{url}/items", params={"after": str((i % 5) * PAGE)}) as r:
                await r.read()

        for start in range(0, pages, 16):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 16, pages))))
        return pages / (time.perf_counter() - started)


async def _rounds(project: Path, api: ListApi, db: Path) -> dict[str, Any]:
    compiled, diagnostics = load_and_compile(
        Layout(project), "bench", missing_secret=Severity.ERROR, environ={"SHOP_TOKEN": "tok-0123"}
    )
    assert compiled is not None, [d.message for d in diagnostics if d.is_error]
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = SQLiteStore(db)
    await store.open()
    clients = AppClients()
    poller = Poller(
        LiveConfig(compiled),
        store,
        clients,
        Metrics(),
        None,
        owner="bench",
        lease=60.0,
        clock=lambda: now[0],
    )
    groups = len(poller.groups())
    rounds = []
    try:
        for number, new in enumerate((0, *NEW_PER_ROUND)):
            api.count += new
            requests_before, rows_before = api.requests, _rows(db)
            started = time.perf_counter()
            polled = await poller.poll_due()
            seconds = time.perf_counter() - started
            rounds.append(
                {
                    "round": number,
                    "new_items": new,
                    "polls": polled,
                    "requests": api.requests - requests_before,
                    "seconds": round(seconds, 3),
                    "polls_per_s": round(polled / seconds, 1),
                    "rows_added_per_poll": round((_rows(db) - rows_before) / max(polled, 1), 1),
                }
            )
            now[0] += timedelta(minutes=1)
    finally:
        await clients.close()
        await store.close()
    with sqlite3.connect(db) as conn:
        duplicate_events = conn.execute(
            "select count(*) from (select dedupe_key from events "
            "group by consumer, app, trigger, dedupe_key having count(*) > 1)"
        ).fetchone()[0]
        duplicate_runs = conn.execute(
            "select count(*) from (select 1 from runs r join events e on r.event_id = e.id "
            "group by r.consumer, r.automation, e.payload having count(*) > 1)"
        ).fetchone()[0]
        runs = conn.execute("select count(*) from runs").fetchone()[0]
    return {
        "groups": groups,
        "rounds": rounds,
        "runs": runs,
        "expected_runs": sum(NEW_PER_ROUND) * CONSUMERS * TAGS * PER_GROUP,
        "duplicate_events": duplicate_events,
        "duplicate_runs": duplicate_runs,
    }


def run(workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    api = ListApi().start()
    try:
        project = write_project(workdir / "poll-project", api.url)
        db = workdir / "poll-state.db"
        for leftover in (db, db.with_suffix(".lock")):
            leftover.unlink(missing_ok=True)
        direct_rps = asyncio.run(_direct(api.url, 500))
        result = asyncio.run(_rounds(project, api, db))
    finally:
        api.stop()
    steady = result["rounds"][-1]
    first = result["rounds"][0]
    return {
        "store": "sqlite",
        "automations": CONSUMERS * TAGS * PER_GROUP,
        "poll_groups": result["groups"],
        "api_direct_requests_per_s": round(direct_rps, 1),
        "first_poll": {k: first[k] for k in SHOWN},
        "steady_nothing_new": {k: steady[k] for k in SHOWN},
        "rounds": result["rounds"],
        "runs": result["runs"],
        "expected_runs": result["expected_runs"],
        "duplicate_events": result["duplicate_events"],
        "duplicate_runs": result["duplicate_runs"],
        "goals": {
            "no duplicate emissions": result["duplicate_events"] == 0
            and result["duplicate_runs"] == 0,
            "one run per item per automation": result["runs"] == result["expected_runs"],
        },
    }
