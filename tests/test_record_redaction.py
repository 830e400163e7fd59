"""What the executor writes to the database holds no secret, checked in the store itself
(not through the API, whose answers are redacted once more on the way out): an App that echoes
the credential it was sent, for a credential from the consumer file and one stored at run time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app_server import Answer, AppServer
from cryptography.fernet import Fernet
from server_harness import ACME_TOKEN, LiveEnvironment

from rollout_yaml import json_codec

STORED_TOKEN = "stored-sink-token-9c1e77ab"


def stored_records(live: LiveEnvironment, run_id: str) -> str:
    run = live.call(lambda: live.runtime.store.get_run(run_id))
    assert run is not None
    attempts = [[a.request, a.response, a.error] for a in run.attempt_log]
    return json_codec.dumps([run.input, run.output, run.error, attempts]).decode()


def finished(live: LiveEnvironment, automation: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for run in live.wait_for_runs(0):
            if run["automation"] == automation and run["status"] in ("succeeded", "failed"):
                return run
        time.sleep(0.05)
    raise AssertionError(f"no finished run of {automation}")


def test_a_response_echoing_the_credential_is_stored_redacted(tmp_path: Path) -> None:
    app = AppServer().start()
    app.default = Answer(200, {"received": f"you sent Bearer {ACME_TOKEN}"})
    environment = LiveEnvironment(tmp_path)
    environment.environ["SINK_URL"] = app.url
    try:
        with environment as live:
            live.push("acme", {"order_id": 1, "total": 20})
            run = finished(live, "orders-to-sink")
            text = stored_records(live, run["id"])
    finally:
        app.stop()
    assert app.requests[0].headers["authorization"] == f"Bearer {ACME_TOKEN}"
    assert "you sent Bearer ***" in text
    assert ACME_TOKEN not in text


def test_a_stored_credentials_secret_is_redacted_from_every_record(tmp_path: Path) -> None:
    app = AppServer().start()
    app.default = Answer(500, {"error": {"message": f"token {STORED_TOKEN} is over quota"}})
    environment = LiveEnvironment(tmp_path)
    environment.environ["SINK_URL"] = app.url
    env_dir = environment.project / "environments" / "test"
    settings = env_dir / "environment.yaml"
    key = Fernet.generate_key().decode()
    settings.write_text(settings.read_text() + f'encryption_key: "{key}"\n')
    acme = env_dir / "consumers" / "acme.yaml"
    acme.write_text(
        acme.read_text().replace('    values: { token: "${ACME_SINK_TOKEN}" }', "    stored: true")
    )
    try:
        with environment as live:
            with live.client() as client:
                put = client.post(
                    "/v1/credentials", json={"key": "sink", "values": {"token": STORED_TOKEN}}
                )
                assert put.status_code == 201, put.text
            live.push("acme", {"order_id": 2, "total": 20})
            run = finished(live, "orders-to-sink")
            text = stored_records(live, run["id"])
    finally:
        app.stop()
    assert app.requests[0].headers["authorization"] == f"Bearer {STORED_TOKEN}"
    assert run["status"] == "failed" and run["attempt_count"] == 4
    assert "token *** is over quota" in text
    assert STORED_TOKEN not in text
