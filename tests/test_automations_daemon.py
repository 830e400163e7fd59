"""Automations created over the API, against the real daemon (`rollout-yaml run`) and a real App
on 127.0.0.1, on SQLite and PostgreSQL: the issue's "must show" list."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_server import Answer, AppServer
from daemon_proc import Daemon
from runner_env import copy_project

BLUEPRINT = """\
blueprint: order-to-chat
name: Orders to the chat
params:
  type: object
  required: [prefix]
  properties: { prefix: { type: string } }
  additionalProperties: false
trigger: { app: partner, trigger: order-created }
action:
  app: sink
  action: post-message
  input: { text: "{{ params.prefix }} {{ payload.order_id }}" }
"""
ARCHIVE = """\
  archive:
    name: Archive an order
    input_schema: { type: object, required: [text], properties: { text: { type: string } } }
    request: { method: POST, path: /archive, json: { text: "{{ input.text }}" } }
"""


def project_for(tmp_path: Path, database: str) -> Path:
    project = copy_project(tmp_path)
    (project / "automations").mkdir()
    (project / "automations" / "order-to-chat.yaml").write_text(BLUEPRINT)
    settings = project / "environments/test/environment.yaml"
    settings.write_text(
        settings.read_text().replace("database: sqlite", f'database: "{database}"')
        + "self_service: { max_automations: 2 }\n"
    )
    sink = project / "connectors" / "sink.yaml"
    sink.write_text(sink.read_text() + ARCHIVE)
    return project


@pytest.fixture
def running(tmp_path: Path, database: str, sink: AppServer) -> Iterator[Daemon]:
    daemon = Daemon(project_for(tmp_path, database), sink.url).start()
    yield daemon
    daemon.stop()


def push(client: httpx.Client, order_id: int) -> dict[str, Any]:
    event = {"app": "partner", "trigger": "order-created", "id": f"o-{order_id}"}
    answer = client.post(
        "/v1/events", json={**event, "payload": {"order_id": order_id, "total": 5}}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def chat_texts(sink: AppServer) -> list[str]:
    return [r.json()["text"] for r in sink.requests if r.path == "/chat.postMessage"]


def wait_until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


CREATE = {
    "key": "chat-orders",
    "blueprint": "order-to-chat",
    "params": {"prefix": "New order"},
    "credentials": {"action": "sink"},
    "custom_data": {"plan": "pro"},
}


def test_created_from_a_blueprint_it_runs_pauses_and_keeps_its_checks(
    running: Daemon, sink: AppServer
) -> None:
    with running.client("acme") as acme, running.client("globex") as globex:
        created = acme.post("/v1/automations", json=CREATE)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["source"] == "api" and body["version"] == 1 and body["status"] == "ready"
        assert body["custom_data"] == {"plan": "pro"} and created.headers["etag"] == '"1"'
        assert push(acme, 1)["runs_queued"] == 1  # file's orders-to-sink filters total < 10
        assert wait_until(lambda: "New order 1" in chat_texts(sink))

        paused = acme.patch("/v1/automations/chat-orders", json={"enabled": False})
        assert paused.status_code == 200 and paused.json()["version"] == 2
        assert push(acme, 2)["runs_queued"] == 0

        stale = acme.put("/v1/automations/chat-orders", json=CREATE, headers={"If-Match": "1"})
        assert stale.status_code == 412

        bad = acme.post("/v1/automations", json={**CREATE, "key": "bad", "params": {"prefx": "x"}})
        assert bad.status_code == 422
        details = bad.json()["error"]["details"]
        typo = [d for d in details if d["path"] == "$.params.prefx"]
        assert [(d["code"], d["help"]) for d in typo] == [("RY402", "did you mean `prefix`?")]
        assert any(d["code"] == "RY403" and d["path"] == "$.params" for d in details)
        assert acme.get("/v1/automations/bad").status_code == 404  # nothing stored

        assert globex.get("/v1/automations/chat-orders").status_code == 404
        assert globex.delete("/v1/automations/chat-orders").status_code == 404

        file_owned = acme.put("/v1/automations/orders-to-sink", json=CREATE)
        assert file_owned.status_code == 409
        assert re.search(r"consumers/acme\.yaml line \d+", file_owned.json()["error"]["message"])
        taken = acme.post("/v1/automations", json={**CREATE, "key": "orders-to-sink"})
        assert taken.status_code == 409

        listed = acme.get("/v1/automations").json()["automations"]
        kinds = {a["key"]: (a["source"], a["line"]) for a in listed}
        assert kinds["chat-orders"] == ("api", None)
        assert kinds["orders-to-sink"][0] == "file" and kinds["orders-to-sink"][1] > 1

        second = acme.post("/v1/automations", json={**CREATE, "key": "second"})
        assert second.status_code == 201
        over = acme.post("/v1/automations", json={**CREATE, "key": "third"})
        assert over.status_code == 422
        assert over.json()["error"]["details"][0]["code"] == "max_automations"
        with running.admin() as admin:  # the admin is not limited by self_service
            by_admin = admin.post(
                "/admin/v1/automations", json={**CREATE, "key": "third", "consumer": "acme"}
            )
            assert by_admin.status_code == 201, by_admin.text

        assert acme.delete("/v1/automations/second").status_code == 204
        assert acme.get("/v1/automations/second").status_code == 404
        runs = acme.get("/v1/runs", params={"automation": "chat-orders"}).json()["runs"]
        assert runs  # runs stay readable


def test_killed_right_after_a_201_the_automation_exists_and_runs_after_restart(
    running: Daemon, sink: AppServer
) -> None:
    with running.client("acme") as acme:
        assert acme.post("/v1/automations", json=CREATE).status_code == 201
    running.kill()
    running.start()
    with running.client("acme") as acme:
        assert acme.get("/v1/automations/chat-orders").json()["version"] == 1
        push(acme, 7)
        assert wait_until(lambda: "New order 7" in chat_texts(sink))
    listed = running.cli("automations", "list", "--env", "test", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    kinds = {
        (a["consumer"], a["key"]): a["source"] for a in json.loads(listed.stdout)["automations"]
    }
    assert kinds[("acme", "chat-orders")] == "api" and kinds[("globex", "orders-to-chat")] == "file"


def test_an_action_removed_under_it_turns_it_invalid_and_restored_ready(
    running: Daemon, sink: AppServer
) -> None:
    inline = {
        "key": "archive-orders",
        "consumer": "acme",
        "trigger": {"app": "partner", "trigger": "order-created"},
        "action": {
            "app": "sink",
            "action": "archive",
            "credential": "sink",
            "input": {"text": "Order {{ payload.order_id }}"},
        },
    }
    with running.admin() as admin, running.client("acme") as acme:
        assert admin.post("/admin/v1/automations", json=inline).status_code == 201
        assert acme.post("/v1/automations", json=CREATE).status_code == 201
        connector = running.project / "connectors" / "sink.yaml"
        original = connector.read_text()
        connector.write_text(original.replace(ARCHIVE, ""))

        def status() -> str:
            return str(acme.get("/v1/automations/archive-orders").json()["status"])

        wait_until(lambda: status() == "invalid")
        shown = acme.get("/v1/automations/archive-orders").json()
        assert shown["diagnostics"][0]["code"] == "RY203"
        assert shown["diagnostics"][0]["path"] == "$.action.action"
        invalid = running.client().get("/status").json()["runtime_automations"]["invalid"]
        assert [(i["consumer"], i["key"]) for i in invalid] == [("acme", "archive-orders")]
        assert "rollout_automations_invalid 1.0" in running.client().get("/metrics").text
        push(acme, 11)  # the others keep running
        assert wait_until(lambda: "New order 11" in chat_texts(sink))
        assert not [r for r in sink.requests if r.path == "/archive"]

        connector.write_text(original)
        wait_until(lambda: status() == "ready")
        push(acme, 12)
        assert wait_until(lambda: [r for r in sink.requests if r.path == "/archive"])


def test_a_saved_consumer_file_recompiles_that_consumer_and_keeps_its_api_automations(
    running: Daemon, sink: AppServer
) -> None:
    with running.client("acme") as acme:
        assert acme.post("/v1/automations", json=CREATE).status_code == 201
        consumer = running.project / "environments/test/consumers/acme.yaml"
        consumer.write_text(
            consumer.read_text().replace("payload.total >= `10`", "payload.total >= `1`")
        )

        def delivered() -> bool:
            push(acme, 20 + len(sink.requests))
            time.sleep(0.3)
            return any(r.path.startswith("/orders/") for r in sink.requests)

        assert wait_until(delivered)
        assert acme.get("/v1/automations/chat-orders").json()["status"] == "ready"
        assert "consumer acme reloaded" in running.logs()

        # the file takes the key of an API automation: the file's runs, the other is invalid
        consumer.write_text(
            consumer.read_text()
            + "  chat-orders:\n"
            + "    trigger: { app: partner, trigger: order-created }\n"
            + "    action: { app: sink, action: post-message, credential: sink,"
            + ' input: { text: "From the file {{ payload.order_id }}" } }\n'
        )
        wait_until(lambda: acme.get("/v1/automations/chat-orders").json()["source"] == "file")
        invalid = running.client().get("/status").json()["runtime_automations"]["invalid"]
        assert [(i["key"], i["diagnostics"][0]["code"]) for i in invalid] == [
            ("chat-orders", "conflict")
        ]


def test_a_webhook_automation_has_its_url_in_the_201_and_deleting_it_unsubscribes(
    tmp_path: Path, sink: AppServer
) -> None:
    from webhook_project import SECRETS as HOOK_SECRETS
    from webhook_project import add_webhooks, consumer_file

    hooks_app = AppServer().start()
    hooks_app.default = Answer(201, {"webhook": {"id": 4242}})
    project = copy_project(tmp_path)
    add_webhooks(project).write_text(consumer_file(orders=None))
    env = {**HOOK_SECRETS, "HOOKS_URL": hooks_app.url}
    daemon = Daemon(project, sink.url, extra_env=env).start()
    created = {
        "key": "paid-orders",
        "consumer": "hooky",
        "trigger": {
            "app": "hooks",
            "trigger": "orders",
            "credential": "hooks",
            "input": {"topic": "orders/paid"},
        },
        "action": {
            "app": "sink",
            "action": "post-message",
            "credential": "sink",
            "input": {"text": "Paid {{ payload.order_id }}"},
        },
    }
    try:
        with daemon.admin() as admin:
            answer = admin.post("/admin/v1/automations", json=created)
            assert answer.status_code == 201, answer.text
            url = answer.json()["webhook_url"]
            assert url and "/webhooks/hooks/orders/" in url
            [subscribe] = hooks_app.wait_for(1)
            assert subscribe.method == "POST" and subscribe.json()["address"] == url
            assert admin.delete("/admin/v1/automations/hooky/paid-orders").status_code == 204
            unsubscribe = hooks_app.wait_for(2)[1]
            assert (unsubscribe.method, unsubscribe.path) == ("DELETE", "/webhooks/4242")
    finally:
        daemon.stop()
        hooks_app.stop()
