"""`rollout-yaml poll` as users run it, against a real paginated API on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import AppServer
from daemon_proc import Daemon
from list_server import ListServer
from poll_env import automation, trigger, write_automations, write_shop
from runner_env import SECRETS, copy_project

ARGS = ("poll", "--env", "test", "--consumer", "acme", "--automation", "items-to-sink")


@pytest.fixture
def shop() -> Iterator[ListServer]:
    server = ListServer(120).start()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path, shop: ListServer) -> Path:
    root = copy_project(tmp_path)
    write_shop(root, shop.url, {"items": trigger("link", initial="emit")})
    write_automations(root, {"items-to-sink": automation("items")})
    return root


def test_poll_shows_pages_items_ids_cursor_and_payloads_and_stores_nothing(
    project: Path, sink: AppServer, shop: ListServer
) -> None:
    runner = Daemon(project, sink.url)
    shown = runner.cli(*ARGS)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "page 1: GET " in out and "/link/items?limit=100 → 200, 100 items" in out
    assert "page 2: GET " in out and "page_info=" in out
    assert "cursor: null → 120" in out
    assert 'new  7  {"item_id": 7, "name": "item 7"}' in out
    assert "nothing stored" in out
    assert not (project / "environments/test/.rollout/state.db").exists()

    as_json = json.loads(runner.cli(*ARGS, "--format", "json").stdout)
    assert [p["items"] for p in as_json["pages"]] == [100, 20]
    assert as_json["cursor_after"] == 120 and as_json["stopped"] == "last page"
    assert as_json["items"][0] == {
        "id": "1",
        "new": True,
        "payload": {"item_id": 1, "name": "item 1"},
        "payload_problems": [],
    }
    assert shop.requests[0].headers["X-Api-Key"] == SECRETS["ACME_SINK_TOKEN"]
    assert SECRETS["ACME_SINK_TOKEN"] not in out


def test_poll_emit_stores_events_the_runner_then_executes_and_advances_the_cursor(
    project: Path, sink: AppServer, shop: ListServer
) -> None:
    runner = Daemon(project, sink.url)
    emitted = runner.cli(*ARGS, "--emit")
    assert emitted.returncode == 0, emitted.stderr
    assert "events stored: 120, runs queued: 120" in emitted.stdout
    assert sink.requests == []  # queued, not executed

    once = runner.cli("run", "--env", "test", "--once")
    assert once.returncode == 0, once.stderr
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in sink.requests) == list(range(1, 121))

    shop.add(3)
    look = json.loads(runner.cli(*ARGS, "--format", "json").stdout)
    assert look["cursor_before"] == 120 and look["cursor_after"] == 123
    assert [i["id"] for i in look["items"]] == ["121", "122", "123"]
    assert all(i["new"] for i in look["items"])
    again = runner.cli(*ARGS, "--emit")
    assert "events stored: 3, runs queued: 3" in again.stdout
    assert "events stored: 0" in runner.cli(*ARGS, "--emit").stdout


def test_poll_emit_refuses_while_the_daemon_runs_and_poll_still_shows(
    project: Path, sink: AppServer
) -> None:
    running = Daemon(project, sink.url).start()
    try:
        refused = running.cli(*ARGS, "--emit")
        assert refused.returncode == 2
        assert "the daemon runs this environment" in refused.stderr
        shown = running.cli(*ARGS)
        assert shown.returncode == 0, shown.stderr
        assert "the running daemon holds the database" in shown.stdout
    finally:
        running.stop()


def test_poll_of_an_automation_without_a_poll_trigger_is_a_usage_error(project: Path) -> None:
    result = Daemon(project, "http://127.0.0.1:9").cli(
        "poll", "--env", "test", "--consumer", "acme", "--automation", "orders-to-sink"
    )
    assert result.returncode == 2
    assert "`partner/order-created`, which is not a poll trigger" in result.stderr


def test_run_once_polls_due_groups_then_drains_the_queue(
    project: Path, sink: AppServer, shop: ListServer
) -> None:
    once = Daemon(project, sink.url).cli("run", "--env", "test", "--once")
    assert once.returncode == 0, once.stdout + once.stderr
    assert len(shop.requests) == 2
    assert sorted(int(r.path.rsplit("/", 1)[1]) for r in sink.requests) == list(range(1, 121))


def test_poll_shows_payloads_that_do_not_match_the_payload_schema(
    project: Path, shop: ListServer
) -> None:
    connector = project / "connectors" / "shop.yaml"
    connector.write_text(connector.read_text().replace("{item_id: id,", "{item_id: name,"))
    shown = Daemon(project, "http://127.0.0.1:9").cli(*ARGS)
    assert shown.returncode == 0, shown.stderr
    assert "payload does not match payload_schema at $.item_id: 'item 1' is not of type" in (
        shown.stdout
    )
