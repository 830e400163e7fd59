"""Polls of a stock fake REST API (json-server from npm) through the outbound path: its
br-compressed pages are decoded, its Link header of `first`, `next` and `last` is followed, and
its `_page` and `_start` parameters page by number and by offset."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_rest import FakeRest
from poll_env import write_automations, write_shop
from runner_env import compile_env, copy_project

from rollout_yaml.engine.outbound import Outbound
from rollout_yaml.engine.polls import PollFetch, poll_groups
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.decoding import ACCEPT_ENCODING

ORDERS = [{"id": n, "name": f"order {n}", "note": "gift wrap " * 10} for n in range(1, 121)]

PAGINATION: dict[str, dict[str, Any]] = {
    "link": {"query": {"_page": 1, "_limit": 50}, "paginate": {"type": "link_header"}},
    "page": {
        "query": {},
        "paginate": {
            "type": "page",
            "param": "_page",
            "start": 1,
            "size_param": "_limit",
            "size": 50,
        },
    },
    "offset": {
        "query": {},
        "paginate": {"type": "offset", "param": "_start", "size_param": "_limit", "size": 50},
    },
}


@pytest.fixture(scope="module")
def fake_rest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeRest]:
    server = FakeRest(tmp_path_factory.mktemp("json-server"), {"orders": ORDERS})
    yield server
    server.stop()


@pytest.mark.parametrize("style", list(PAGINATION))
def test_a_poll_reads_every_page_of_json_server(
    style: str, tmp_path: Path, fake_rest: FakeRest
) -> None:
    spec = PAGINATION[style]
    trigger = {
        "name": "Orders",
        "payload_schema": {"type": "object"},
        "poll": {
            "every": "1m",
            "request": {"path": "/orders", "query": spec["query"]},
            "paginate": spec["paginate"],
            "items": "@",
            "id": "to_string(id)",
            "payload": "{order_id: id, name: name}",
            "initial": "emit",
        },
    }
    project = copy_project(tmp_path)
    write_shop(project, fake_rest.url, {"orders": trigger})
    body = {
        "trigger": {"app": "shop", "trigger": "orders", "credential": "shop"},
        "action": {
            "app": "sink",
            "action": "deliver",
            "credential": "sink",
            "input": {"order_id": "{{ payload.order_id }}", "text": "{{ payload.name }}"},
        },
    }
    write_automations(project, {"rest-orders": body})

    async def scenario() -> list[Any]:
        env = compile_env(project, "http://127.0.0.1:9")
        (group,) = poll_groups(env).values()
        clients = AppClients()
        try:
            fetch = PollFetch(env, group, Outbound(clients), None)
            return [page async for page in fetch.pages()]
        finally:
            await clients.close()

    # what the App sends for the header the client sends: compressed pages
    asked = httpx.get(
        f"{fake_rest.url}/orders?_page=1&_limit=50", headers={"Accept-Encoding": ACCEPT_ENCODING}
    )
    assert asked.headers["content-encoding"] in ("br", "gzip")
    pages = asyncio.run(scenario())
    assert [len(page.items) for page in pages][:3] == [50, 50, 20]
    assert [item.id for page in pages for item in page.items] == [str(n) for n in range(1, 121)]
    assert pages[0].items[0].payload == {"order_id": 1, "name": "order 1"}
