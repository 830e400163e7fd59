"""The GitOps loop end to end: a developer edits a connector in dev, promotes dev to prod and
commits; the prod host, already running `rollout-yaml run --env prod` from its own clone, pulls
and runs the new release without a restart. Real git, the real daemon, a real App server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_server import Answer, AppServer
from daemon_proc import Daemon
from gitops_repo import cli, commit_all, edit, git, released_repo

ORDER = {"order_id": 7, "total": 25.5, "customer": {"name": "Ada"}}


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"ok": True})
    yield server
    server.stop()


def _generation(client: httpx.Client) -> int:
    return int(client.get("/status").json()["generation"])


def _push(client: httpx.Client, order_id: int) -> None:
    body = {
        "app": "partner",
        "trigger": "order-created",
        "payload": {**ORDER, "order_id": order_id},
    }
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["runs_queued"] == 2  # the blueprint automation and the inline one


def _paths(app: AppServer, count: int) -> set[str]:
    return {r.path for r in app.wait_for(count)}


def test_a_promotion_pulled_on_the_prod_host_is_running_without_a_restart(
    tmp_path: Path, app: AppServer
) -> None:
    origin = released_repo(tmp_path)
    host = tmp_path / "prod-host"
    git(tmp_path, "clone", "-q", str(origin), str(host))
    daemon = Daemon(host, app.url, env_name="prod").start()
    try:
        with daemon.client("acme") as client:
            _push(client, 7)
            assert _paths(app, 2) == {"/orders/7", "/messages"}
            first = _generation(client)

            # A dev-only change (not promoted) reaches the host: prod does not run it.
            sink = origin / "connectors/sink.yaml"
            edit(sink, "version: 1.0.0", "version: 1.1.0")
            edit(
                sink, "path: /orders/{{ input.order_id }}", "path: /v2/orders/{{ input.order_id }}"
            )
            sink.write_text(
                sink.read_text()
                + "  archive:\n"
                + "    name: Archive an order\n"
                + "    request: { method: DELETE, path: /archive }\n"
            )
            commit_all(origin, "sink 1.1: orders move to /v2")
            git(host, "pull", "-q")
            time.sleep(1.0)
            assert _generation(client) == first, "a frozen environment reloaded for dev's edit"
            _push(client, 8)
            assert _paths(app, 4) >= {"/orders/8"}

            # Promoted and committed in the dev checkout, pulled on the prod host.
            promoted = cli(origin, "promote", "dev", "prod")
            assert promoted.returncode == 0, promoted.stdout + promoted.stderr
            assert "request.path: `/orders/{{ input.order_id }}` → `/v2/orders/" in promoted.stdout
            commit_all(origin, "promote dev to prod: sink 1.1")
            pid = daemon.process.pid if daemon.process else None
            git(host, "pull", "-q")
            deadline = time.time() + 10
            while _generation(client) == first:
                assert time.time() < deadline, f"the pulled release was not loaded\n{daemon.logs()}"
                time.sleep(0.05)
            status = client.get("/status").json()
            assert status["last_reload_error"] is None
            apps = {a["key"]: a for a in client.get("/v1/apps").json()["apps"]}
            assert {a["key"] for a in apps["sink"]["actions"]} == {
                "archive",
                "deliver",
                "post-message",
            }
            _push(client, 9)
            assert "/v2/orders/9" in _paths(app, 6)
            assert "/orders/9" not in {r.path for r in app.requests}
            assert daemon.process is not None and daemon.process.pid == pid
            assert daemon.process.poll() is None  # the same process all along
    finally:
        assert daemon.stop() == 0


def test_a_hand_edit_on_the_prod_host_is_refused_and_the_release_keeps_running(
    tmp_path: Path, app: AppServer
) -> None:
    origin = released_repo(tmp_path)
    daemon = Daemon(origin, app.url, env_name="prod").start()
    try:
        with daemon.client("acme") as client:
            first = _generation(client)
            copy = origin / "environments/prod/release/connectors/sink.yaml"
            edit(copy, "path: /messages", "path: /hotfix")
            deadline = time.time() + 10
            while client.get("/status").json()["last_reload_error"] is None:
                assert time.time() < deadline, "the hand edit was not reported"
                time.sleep(0.05)
            problem = client.get("/status").json()["last_reload_error"]["diagnostics"][0]
            assert problem["code"] == "RY602"
            assert problem["file"] == "environments/prod/release/connectors/sink.yaml"
            assert _generation(client) == first
            _push(client, 7)
            assert _paths(app, 2) == {"/orders/7", "/messages"}  # the release as promoted
    finally:
        daemon.stop()


def test_switching_an_environment_to_live_makes_it_follow_the_working_tree(
    tmp_path: Path, app: AppServer
) -> None:
    origin = released_repo(tmp_path)
    daemon = Daemon(origin, app.url, env_name="prod").start()
    try:
        with daemon.client("acme") as client:
            first = _generation(client)
            settings = origin / "environments/prod/environment.yaml"
            edit(settings, "release: frozen", "release: live")
            deadline = time.time() + 10
            while _generation(client) == first:
                assert time.time() < deadline, f"the switch was not loaded\n{daemon.logs()}"
                time.sleep(0.05)
            switched = _generation(client)
            edit(origin / "connectors/sink.yaml", "path: /messages", "path: /live-messages")
            deadline = time.time() + 10
            while _generation(client) == switched:
                assert time.time() < deadline, "a live environment ignored a connector edit"
                time.sleep(0.05)
            _push(client, 7)
            assert _paths(app, 2) == {"/orders/7", "/live-messages"}
    finally:
        daemon.stop()
