"""Partner notifications from the real daemon: a credential whose refresh is refused is told
once, and `kill -9` loses no notification of a run it had finished (the outbox is written with
the run's end, and sent after the restart). The receiver checks every delivery with the
`standardwebhooks` library."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from cryptography.fernet import Fernet
from daemon_proc import Daemon, free_port
from notify_receiver import Receiver, new_secret
from oauth_provider import CLIENT_SECRET, Provider
from runner_env import copy_project
from test_automations_daemon import ARCHIVE, CREATE, project_for
from test_oauth import connect, push, runs_of

OAUTH_FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"
NOTIFY = (
    "notify:\n"
    '  url: "${NOTIFY_URL}"\n'
    '  secret: "${NOTIFY_SECRET}"\n'
    "  retry: { first: 200ms, max: 1s, timeout: 2s }\n"
)


def with_notify(project: Path) -> Path:
    settings = project / "environments" / "test" / "environment.yaml"
    settings.write_text(settings.read_text() + NOTIFY)
    return project


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def sink() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"ok": True})
    yield server
    server.stop()


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider().start()
    yield running
    running.stop()


def test_a_refused_refresh_is_told_once_as_credential_needs_reauth(
    tmp_path: Path, provider: Provider, sink: AppServer, secret: str
) -> None:
    project = tmp_path / "project"
    shutil.copytree(OAUTH_FIXTURE, project)
    with_notify(project)
    for connector in (project / "connectors").glob("*.yaml"):
        connector.write_text(connector.read_text().replace("PROVIDER_URL", provider.url))
    receiver = Receiver(secret).start()
    port = free_port()
    extra = {
        "ROLLOUT_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PROVIDER_URL": provider.url,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "NOTIFY_URL": receiver.url,
        "NOTIFY_SECRET": secret,
    }
    daemon = Daemon(project, sink.url, port=port, extra_env=extra).start()
    try:
        connect(daemon, sink)
        provider.revoke_refresh_tokens()
        provider.revoke_access_tokens()
        push(daemon, "signup", ["ada@example.com"])
        (failed,) = runs_of(daemon, "signups-to-crm", 1)
        push(daemon, "signup", ["bob@example.com"])  # fails too: not told again
        runs = runs_of(daemon, "signups-to-crm", 2)
        run_ids = {r["id"] for r in runs}
        got = receiver.wait_for(count=3)  # two run.finished, one credential.needs_reauth
        time.sleep(1.0)  # a second needs_reauth would be sent by now
        got = receiver.deliveries()
        logs = daemon.logs()
    finally:
        daemon.stop()
        receiver.stop()
    assert receiver.rejected == []
    told = [d.payload for d in got if d.payload["type"] == "credential.needs_reauth"]
    assert len(told) == 1, told
    data = told[0]["data"]
    assert data["consumer"] == "acme"
    assert data["credential"]["key"] == "crm" and data["credential"]["app"] == "crm"
    assert data["credential"]["status"] == "needs_reauth"
    assert "invalid_grant" in data["credential"]["error"]
    finished = {
        d.payload["data"]["run"]["id"]: d.payload["data"]["run"]
        for d in got
        if d.payload["type"] == "run.finished"
    }
    assert set(finished) >= run_ids
    assert finished[failed["id"]]["status"] == "failed"
    assert finished[failed["id"]]["error_kind"] == "credential"
    assert secret.removeprefix("whsec_") not in logs


def test_kill_9_loses_no_notification_of_a_finished_run(
    tmp_path: Path, sink: AppServer, secret: str
) -> None:
    project = with_notify(copy_project(tmp_path))
    receiver = Receiver(secret)  # down: nothing listens on its port yet
    extra = {"NOTIFY_URL": receiver.url, "NOTIFY_SECRET": secret}
    first = Daemon(project, sink.url, extra_env=extra).start()
    second: Daemon | None = None
    try:
        with first.client("acme") as client:
            events = [
                {
                    "app": "partner",
                    "trigger": "order-created",
                    "id": f"k-{i}",
                    "payload": {"order_id": i, "total": 20},
                }
                for i in range(20)
            ]
            assert client.post("/v1/events", json={"events": events}).status_code == 202
        with first.admin() as admin:
            deadline = time.monotonic() + 30
            while True:
                runs = admin.get("/admin/v1/runs", params={"limit": 100}).json()["runs"]
                if len(runs) == 20 and all(r["status"] == "succeeded" for r in runs):
                    break
                assert time.monotonic() < deadline, runs
                time.sleep(0.1)
        first_logs = first.logs()
        first.kill()

        receiver.start()
        second = Daemon(project, sink.url, port=first.port, extra_env=extra).start()
        run_ids = {r["id"] for r in runs}
        deadline = time.monotonic() + 30
        while True:
            told = {
                d.payload["data"]["run"]["id"]
                for d in receiver.deliveries()
                if d.payload["type"] == "run.finished"
            }
            if run_ids <= told:
                break
            assert time.monotonic() < deadline, (len(told), len(run_ids))
            time.sleep(0.1)
        with second.admin() as admin:
            rows = admin.get("/admin/v1/notifications", params={"limit": 100}).json()
        second_logs = second.logs()
    finally:
        if second is not None:
            second.stop()
        receiver.stop()
    assert receiver.rejected == []
    assert told == run_ids  # every finished run told, and no other
    assert len(rows["notifications"]) == 20
    key = secret.removeprefix("whsec_")
    assert key not in first_logs and key not in second_logs


def test_automation_writes_and_an_automation_turning_invalid_are_told(
    tmp_path: Path, sink: AppServer, secret: str
) -> None:
    project = with_notify(project_for(tmp_path, "sqlite"))
    receiver = Receiver(secret).start()
    extra = {"NOTIFY_URL": receiver.url, "NOTIFY_SECRET": secret}
    daemon = Daemon(project, sink.url, extra_env=extra).start()
    inline = {
        "key": "archive-orders",
        "trigger": {"app": "partner", "trigger": "order-created"},
        "action": {
            "app": "sink",
            "action": "archive",
            "credential": "sink",
            "input": {"text": "Order {{ payload.order_id }}"},
        },
    }
    try:
        with daemon.client("acme") as acme, daemon.admin() as admin:
            assert acme.post("/v1/automations", json=CREATE).status_code == 201
            patched = acme.patch("/v1/automations/chat-orders", json={"enabled": False})
            assert patched.status_code == 200
            assert acme.delete("/v1/automations/chat-orders").status_code == 204
            made = admin.post("/admin/v1/automations", json={**inline, "consumer": "acme"})
            assert made.status_code == 201, made.text
            connector = project / "connectors" / "sink.yaml"
            connector.write_text(connector.read_text().replace(ARCHIVE, ""))  # removes `archive`
            got = receiver.wait_for(count=5)
    finally:
        daemon.stop()
        receiver.stop()
    assert receiver.rejected == []
    in_order = sorted(got, key=lambda d: (d.payload["timestamp"], d.id))  # recorded in order
    told = [(d.payload["type"], d.payload["data"]) for d in in_order]
    assert [(kind, data["key"]) for kind, data in told] == [
        ("automation.created", "chat-orders"),
        ("automation.updated", "chat-orders"),
        ("automation.deleted", "chat-orders"),
        ("automation.created", "archive-orders"),
        ("automation.invalid", "archive-orders"),
    ]
    assert all(data["consumer"] == "acme" for _, data in told)
    assert [data["version"] for _, data in told[:2]] == [1, 2]
    assert told[1][1]["enabled"] is False
    invalid = told[4][1]
    assert invalid["diagnostics"][0]["code"] == "RY203"
