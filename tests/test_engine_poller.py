"""Poll triggers through the real engine on a SQLite file and a PostgreSQL database (each test
runs on both), against a real paginated HTTP API on 127.0.0.1, with the clock injected (no
sleeping for intervals)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_server import AppServer
from list_server import ListServer
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import SECRETS, compile_env, copy_project
from store_env import close_stores, replica_stores

from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.polls import PollFetch, poll_groups
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunQuery


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def shop() -> Iterator[ListServer]:
    server = ListServer(250).start()
    yield server
    server.stop()


def project_with(
    tmp_path: Path,
    shop: ListServer,
    triggers: dict[str, dict[str, Any]],
    automations: dict[str, dict[str, Any]],
) -> Path:
    project = copy_project(tmp_path)
    write_shop(project, shop.url, triggers)
    write_automations(project, automations)
    return project


async def started(project: Path, sink: AppServer, store: Store, clock: Clock) -> Runtime:
    runtime = Runtime(compile_env(project, sink.url), store, clock=clock)
    await runtime.start(claim=False)
    return runtime


async def delivered(sink: AppServer, count: int) -> Counter[str]:
    """Wait for `count` action requests, then a little more to catch any extra one."""
    if count:
        await asyncio.to_thread(sink.wait_for, count)
    await asyncio.sleep(0.3)
    return Counter(r.path for r in sink.requests)


def paths(first: int, last: int) -> Counter[str]:
    return Counter(f"/orders/{n}" for n in range(first, last + 1))


# -- every pagination style against the real server -----------------------------------------


# Pagination is between the poller and the App: every style leaves the store the same cursor and
# seen ids, so PostgreSQL runs one style (its trigger and store work are covered below as well).
STYLES = [
    *(("sqlite", s) for s in ("link", "cursor", "next", "page", "offset")),
    ("postgresql", "cursor"),
]


@pytest.mark.parametrize(("database", "style"), STYLES, indirect=["database"])
def test_each_pagination_style_emits_every_item_once_then_only_new_ones(
    style: str, tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path, shop, {"items": trigger(style)}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            assert await runtime.poller.poll_due() == 1
            assert await delivered(sink, 250) == paths(1, 250)
            assert len(shop.requests) == 3  # 100 + 100 + 50
            assert shop.requests[0].headers["X-Api-Key"] == SECRETS["ACME_SINK_TOKEN"]

            assert await runtime.poller.poll_due() == 0  # not due before `every`
            clock.advance(1)
            shop.add(10)
            assert await runtime.poller.poll_due() == 1
            assert await delivered(sink, 260) == paths(1, 260)
            # the cursor went into the request: only the new items were asked for
            assert shop.requests[3].query.get("since_id") == "250"
            assert len(shop.requests) == 4
            runs = await store.list_runs(RunQuery(automation="items-to-sink", limit=500))
            assert len(runs) == 260 and {r.event.source for r in runs} == {"poll"}
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_without_a_cursor_every_poll_reads_everything_and_seen_ids_drop_the_old(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path,
        shop,
        {"items": trigger("cursor", cursor=False)},
        {"items-to-sink": automation("items")},
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            await runtime.poller.poll_due()
            assert await delivered(sink, 250) == paths(1, 250)
            clock.advance(1)
            shop.add(10)
            await runtime.poller.poll_due()
            assert await delivered(sink, 260) == paths(1, 260)
            assert len(shop.requests) == 3 + 3  # everything again, 260 items on 3 pages
            assert "since_id" not in shop.requests[3].query
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_max_pages_stops_the_poll_and_the_cursor_continues_from_there(
    tmp_path: Path,
    database: str,
    sink: AppServer,
    shop: ListServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop.add(750)  # 1,000 items, 10 pages of 100
    project = project_with(
        tmp_path,
        shop,
        {"items": trigger("link", max_pages=3)},
        {"items-to-sink": automation("items")},
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            with caplog.at_level(logging.WARNING, logger="rollout_yaml.engine"):
                await runtime.poller.poll_due()
            assert len(shop.requests) == 3
            assert await delivered(sink, 300) == paths(1, 300)
            assert "max_pages reached" in caplog.text
            clock.advance(1)
            await runtime.poller.poll_due()
            assert shop.requests[3].query["since_id"] == "300"
            assert await delivered(sink, 600) == paths(1, 600)
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


# -- initial: skip | emit -------------------------------------------------------------------


def test_initial_skip_records_what_exists_and_emits_only_what_comes_later(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path,
        shop,
        {"items": trigger("cursor", initial="skip", cursor=False)},
        {"items-to-sink": automation("items")},
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            assert await runtime.poller.poll_due() == 1
            assert len(shop.requests) == 3  # the first poll did read everything
            assert await delivered(sink, 0) == Counter()
            assert await store.list_runs(RunQuery()) == []
            clock.advance(1)
            shop.add(5)
            await runtime.poller.poll_due()
            assert await delivered(sink, 5) == paths(251, 255)
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_initial_emit_emits_what_exists_on_the_first_poll(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path,
        shop,
        {"items": trigger("offset", initial="emit")},
        {"items-to-sink": automation("items")},
    )

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, Clock())
        try:
            await runtime.poller.poll_due()
            assert await delivered(sink, 250) == paths(1, 250)
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


# -- poll groups ----------------------------------------------------------------------------


def test_identical_trigger_credential_and_input_share_one_poll(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path,
        shop,
        {"items": trigger("link")},
        {
            "first": automation("items", text="first {{ payload.item_id }}"),
            "second": automation("items", text="second {{ payload.item_id }}"),
            "tagged": automation("items", text="tagged {{ payload.item_id }}", tag="vip"),
        },
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            groups = runtime.poller.groups()
            assert sorted(len(g.automations) for g in groups.values()) == [1, 2]
            await runtime.poller.poll_due()
            await delivered(sink, 750)
            # two groups (the tagged one has other inputParams), three pages each
            assert len(shop.requests) == 6
            texts = Counter(r.json()["text"].split()[0] for r in sink.requests)
            assert texts == {"first": 250, "second": 250, "tagged": 250}
            per_item = Counter((r.path, r.json()["text"].split()[0]) for r in sink.requests)
            assert set(per_item.values()) == {1}
            # one event per item per group, fanned out to the group's runs
            runs = await store.list_runs(RunQuery(limit=500, automation="first"))
            others = await store.list_runs(RunQuery(limit=500, automation="second"))
            assert {r.event.id for r in runs} == {r.event.id for r in others}
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_two_replicas_sharing_a_database_poll_a_group_once_per_interval(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    shop.delay = 0.05  # polls overlap in time
    project = project_with(
        tmp_path, shop, {"items": trigger("link")}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        clock = Clock()
        stores = await replica_stores(database, tmp_path)
        one, two = [await started(project, sink, store, clock) for store in stores]
        assert one.owner != two.owner
        try:
            polled = await asyncio.gather(one.poller.poll_due(), two.poller.poll_due())
            assert sorted(polled) == [0, 1]
            assert len(shop.requests) == 3
            # the one that lost the lease looks again later, sees the state and does not poll
            assert await two.poller.poll_due() + await one.poller.poll_due() == 0
            clock.advance(1)
            shop.add(10)
            polled = await asyncio.gather(one.poller.poll_due(), two.poller.poll_due())
            assert sum(polled) == 1
            clock.advance(0.5)
            assert await two.poller.poll_due() + await one.poller.poll_due() == 0
            assert len(shop.requests) == 4
            assert await delivered(sink, 260) == paths(1, 260)
        finally:
            await one.stop(grace=5)
            await two.stop(grace=5)
            await close_stores(stores)

    asyncio.run(scenario())


# -- failures -------------------------------------------------------------------------------


def test_a_failing_page_is_logged_redacted_shown_and_retried_next_interval(
    tmp_path: Path,
    database: str,
    sink: AppServer,
    shop: ListServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop.fail_on = {2: 503}
    project = project_with(
        tmp_path, shop, {"items": trigger("cursor")}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        clock = Clock()
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, clock)
        try:
            with caplog.at_level(logging.WARNING, logger="rollout_yaml.engine"):
                assert await runtime.poller.poll_due() == 1
            assert "failed" in caplog.text and "HTTP 503" in caplog.text
            # the first page's items went out; the cursor did not move
            assert await delivered(sink, 100) == paths(1, 100)
            status = runtime.poller.status()[0]
            assert status["failures"] == 1 and status["last_error"] == "app_error (HTTP 503)"
            assert runtime.metrics.polls.labels("shop", "items", "failed")._value.get() == 1
            assert await runtime.poller.poll_due() == 0  # retried at the next interval
            clock.advance(1)
            assert await runtime.poller.poll_due() == 1
            assert "since_id" not in shop.requests[2].query  # from the old (empty) cursor
            assert await delivered(sink, 250) == paths(1, 250)
            assert runtime.poller.status()[0]["failures"] == 0
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_a_failing_poll_never_writes_the_credential_to_logs(
    tmp_path: Path,
    database: str,
    sink: AppServer,
    shop: ListServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop.fail_on = {1: 401}  # the App's error message repeats the key it refused
    project = project_with(
        tmp_path, shop, {"items": trigger("link")}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, Clock())
        try:
            with caplog.at_level(logging.INFO, logger="rollout_yaml.engine"):
                await runtime.poller.poll_due()
            assert runtime.poller.status()[0]["last_error"] == "app_error (HTTP 401)"
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())
    assert "key *** refused" in caplog.text
    assert SECRETS["ACME_SINK_TOKEN"] not in caplog.text


def test_a_page_token_seen_twice_stops_the_poll_with_a_warning(
    tmp_path: Path,
    database: str,
    sink: AppServer,
    shop: ListServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shop.loop_cursor = True
    project = project_with(
        tmp_path, shop, {"items": trigger("cursor")}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, Clock())
        try:
            with caplog.at_level(logging.WARNING, logger="rollout_yaml.engine"):
                await runtime.poller.poll_due()
            assert len(shop.requests) == 2  # the first page, then the token again: stop
            assert "came back twice" in caplog.text
            assert await delivered(sink, 100) == paths(1, 100)
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


def test_a_next_url_on_another_host_fails_the_poll(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    shop.foreign_next = True
    project = project_with(
        tmp_path, shop, {"items": trigger("next")}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, Clock())
        try:
            await runtime.poller.poll_due()
            assert len(shop.requests) == 1
            assert runtime.poller.status()[0]["last_error"] == "pagination"
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


# -- the seen ids ---------------------------------------------------------------------------


def test_seen_ids_are_pruned_to_the_newest_per_group(tmp_path: Path, database: str) -> None:
    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        try:
            for batch in range(5):
                ids = [f"{batch}-{n}" for n in range(100)]
                await store.record_polled([], "g", ids, float(batch))
            await store.record_polled([], "other", ["0-0"], 0.0)
            assert await store.save_poll_state("poll:g", {"cursor": 1}, "g", 250) == 200
            kept = await store.seen_ids("g", [f"{b}-{n}" for b in range(5) for n in range(100)])
            assert kept == {f"{b}-{n}" for b in (2, 3, 4) for n in range(100)}
            assert await store.seen_ids("other", ["0-0"]) == {"0-0"}
            assert (await store.load_states("poll:g"))["poll:g"] == {"cursor": 1}
        finally:
            await store.close()

    asyncio.run(scenario())


def test_poll_pages_draw_from_the_credentials_rate_limit(
    tmp_path: Path, database: str, sink: AppServer, shop: ListServer
) -> None:
    project = project_with(
        tmp_path, shop, {"items": trigger("cursor")}, {"items-to-sink": automation("items")}
    )
    connector = project / "connectors" / "shop.yaml"
    connector.write_text(
        connector.read_text().replace(
            '"triggers": {', '"rate_limit": {"requests": 1, "per": "1s"},\n  "triggers": {'
        )
    )

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = await started(project, sink, store, Clock())
        try:
            await runtime.poller.poll_due()
            assert len(shop.requests) == 3
            # one page a second: the third page waits two slots (less the first's connect time)
            assert shop.requests[2].at - shop.requests[0].at >= 1.5
        finally:
            await runtime.stop(grace=5)
            await store.close()

    asyncio.run(scenario())


# -- compressed answers and several Link headers (a real App's habits) ----------------------

ENCODED_STYLES = [
    ("link", "gzip", False),
    ("link", "br", True),
    ("cursor", "deflate", False),
    ("next", "br", False),
    ("page", "gzip", False),
    ("offset", "deflate", False),
]


@pytest.mark.parametrize(("style", "encoding", "several_links"), ENCODED_STYLES)
def test_every_pagination_style_reads_compressed_pages(
    style: str,
    encoding: str,
    several_links: bool,
    tmp_path: Path,
    sink: AppServer,
    shop: ListServer,
) -> None:
    """Pages come gzip-, deflate- or br-encoded (decoded as they stream in); `link_header`
    also follows a `rel="next"` sent in one of several `Link` headers."""
    shop.encoding, shop.several_links = encoding, several_links
    project = project_with(
        tmp_path, shop, {"items": trigger(style)}, {"items-to-sink": automation("items")}
    )

    async def scenario() -> None:
        env = compile_env(project, sink.url)
        (group,) = poll_groups(env).values()
        clients = AppClients()
        try:
            fetch = PollFetch(env, group, Outbound(clients), None)
            pages = [page async for page in fetch.pages()]
        finally:
            await clients.close()
        assert [len(page.items) for page in pages] == [100, 100, 50]
        assert [item.id for page in pages for item in page.items] == [str(n) for n in range(1, 251)]
        assert fetch.stopped == "last page"
        assert "gzip" in shop.requests[0].headers["Accept-Encoding"]

    asyncio.run(scenario())
