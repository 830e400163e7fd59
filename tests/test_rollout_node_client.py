"""Rollout's own published client, unchanged, against the real daemon: `@rollout/api-client-react`
and its peers installed from npm into `tests/.node/rollout/` (git-ignored, installed once and
kept), its tRPC client taken from `RolloutAPIClientProvider` as connect-react takes it, driven by
`tests/node/rollout_client_scenario.cjs`, every answer checked against `@rollout/framework`'s
types transcribed into zod (`tests/node/rollout_types.cjs`).

Without node or npm, or with the npm registry unreachable, it skips with the reason, except
under CI=true, where that is a failure."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rollout_npm
from daemon_proc import Daemon, consumer_token
from rollout_client import CRM_TOKEN, SINK_ACCOUNT_TOKEN, Sink, copy_dropin_project, sample_token

NODE = Path(__file__).parent / "node"
PACKAGES = (
    "@rollout/api-client-react@2.2.169",
    "@tanstack/react-query@4",
    "react@18",
    "react-dom@18",
    "zod@3.22.4",
)


@pytest.fixture(scope="session")
def rollout_client() -> Path:
    return rollout_npm.require("rollout", PACKAGES)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, Sink]]:
    with Sink() as sink:
        running = Daemon(copy_dropin_project(tmp_path), sink.url).start()
        try:
            yield running, sink
        finally:
            running.stop()


def run_scenario(modules: Path, daemon: Daemon, *, mutations: bool) -> dict[str, Any]:
    config = {
        "apiBaseUrl": f"{daemon.url}/api",
        "tokens": {"acme": sample_token("acme", CRM_TOKEN), "globex": consumer_token("globex")},
        "mutations": mutations,
        "sinkToken": SINK_ACCOUNT_TOKEN,
    }
    done = subprocess.run(
        ["node", str(NODE / "rollout_client_scenario.cjs")],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        cwd=NODE,
        env={**os.environ, "NODE_PATH": str(modules)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert "failure" not in report, report["failure"] + "\n" + daemon.logs()[-3000:]
    return report


def test_rollouts_client_works_unchanged(rollout_client: Path, daemon: tuple[Daemon, Sink]) -> None:
    running, sink = daemon
    report = run_scenario(rollout_client, running, mutations=True)
    assert report["problems"] == [], json.dumps(report["problems"], indent=1)[:4000]
    answers = report["answers"]
    assert set(answers["triggers.list"]["partner"]["triggers"]) == {
        "order-created",
        "contact-created",
    }
    assert set(answers["actions.list"]) == {"sink", "crm"}
    assert answers["apps.authInfo crm"] == {"type": "JWT", "singleCredentialOnly": True}
    success = answers["run success"]
    assert success["status"] == "SUCCESS" and len(success["executions"]) == 1
    assert success["executions"][0]["output"]["status"] == "SUCCESS"
    assert success["triggerEvent"]["payload"] == {"order_id": 5, "total": 20}
    refused = answers["run user error"]
    assert refused["status"] == "USER_ERROR"
    assert refused["executions"][-1]["output"]["status"] == "USER_ERROR"
    assert answers["run jwt"]["status"] == "SUCCESS"
    [crm] = [r for r in sink.received if r["path"] == "/orders/77"]
    assert crm["headers"]["Authorization"] == f"Bearer {CRM_TOKEN}"
    assert CRM_TOKEN not in json.dumps(answers)
    assert report["errors"]["globex automations.get"]["data"]["code"] == "NOT_FOUND"
    assert answers["globex run by id"] == {"status": 200, "body": []}
    assert [r["id"] for r in answers["acme run by id"]["body"]] == [success["id"]]
    # writes, as AutomationsManager, BlueprintEnabler and CredentialInput make them
    assert answers["blueprint before"] is None
    enabled = answers["create from blueprint"]
    assert enabled["blueprintKey"] == "orders-to-sink"
    assert answers["blueprint after"]["id"] == enabled["id"]
    assert answers["toggle off"]["active"] is False and answers["toggle on"]["active"] is True
    written = answers["written-out run"]
    assert written["status"] == "SUCCESS" and written["triggerEvent"]["payload"]["order_id"] == 6
    assert answers["switched-off runs"] == []
    assert report["errors"]["globex delete"]["data"]["code"] == "NOT_FOUND"
    assert report["errors"]["get deleted"]["data"]["code"] == "NOT_FOUND"
    deleted = answers["create written out"]["id"]
    assert deleted not in [a["id"] for a in answers["list after"]]
    assert enabled["id"] in [a["id"] for a in answers["list after"]]
    assert answers["test bad token"] is False and answers["test good token"] is True
    key = answers["addApiToken"]["credentialKey"]
    labels = {c["credentialKey"]: c.get("label") for c in answers["credentials after"]}
    assert labels[key] == "Sink account"  # the auth.test's label
    assert report["errors"]["delete used credential"]["data"]["code"] == "CONFLICT"
    assert answers["delete credential"] is None
    assert SINK_ACCOUNT_TOKEN not in json.dumps(answers)
