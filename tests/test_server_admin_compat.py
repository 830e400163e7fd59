"""The admin API (across consumers, behind the admin token) and the Rollout-compatible
aliases (camelCase, Rollout's statuses), over the real app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_harness import LiveEnvironment

ORDER = {"app": "partner", "trigger": "order-created"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path) as environment:
        yield environment


def test_admin_reads_across_consumers(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 1, "total": 20})
    live.push("globex", {"order_id": 2, "total": 20})
    runs = live.wait_for_runs(2)
    assert {r["consumer"] for r in runs} == {"acme", "globex"}
    with live.client(admin=True) as client:
        only = client.get("/admin/v1/runs", params={"consumer": "globex"}).json()["runs"]
        one = client.get(f"/admin/v1/runs/{only[0]['id']}").json()
        automations = client.get("/admin/v1/automations").json()["automations"]
        paged = client.get("/admin/v1/automations", params={"limit": 1}).json()
        rest = client.get("/admin/v1/automations", params={"cursor": paged["next_cursor"]}).json()
        single = client.get("/admin/v1/automations/globex/orders-to-chat")
    assert [r["consumer"] for r in only] == ["globex"]
    assert one["attempts"][0]["response"]["status"] == 200
    assert [(a["consumer"], a["key"]) for a in automations] == [
        ("acme", "orders-to-sink"),
        ("globex", "orders-to-chat"),
    ]
    assert paged["next_cursor"] == "acme/orders-to-sink"
    assert [a["key"] for a in rest["automations"]] == ["orders-to-chat"]
    assert rest["next_cursor"] is None
    assert single.status_code == 200 and single.json()["last_run"]["status"] == "succeeded"


def test_admin_pushes_events_for_a_named_consumer(live: LiveEnvironment) -> None:
    with live.client(admin=True) as client:
        single = client.post(
            "/admin/v1/events",
            json={
                "consumer": "globex",
                **ORDER,
                "id": "g1",
                "payload": {"order_id": 5, "total": 1},
            },
        )
        batch = client.post(
            "/admin/v1/events",
            json={
                "consumer": "acme",
                "events": [{**ORDER, "payload": {"order_id": 6, "total": 30}}],
            },
        )
        unknown = client.post(
            "/admin/v1/events",
            json={"consumer": "initech", **ORDER, "payload": {"order_id": 1, "total": 1}},
        )
        anonymous = client.post("/admin/v1/events", json={**ORDER, "payload": {}})
    assert single.status_code == 202 and single.json()["runs_queued"] == 1
    assert batch.status_code == 202 and batch.json()["runs_queued"] == 1
    assert unknown.status_code == 404
    assert unknown.json()["error"]["details"][0]["path"] == "$.consumer"
    assert anonymous.status_code == 422
    assert anonymous.json()["error"]["details"][0]["path"] == "$.consumer"
    runs = live.wait_for_runs(2)
    assert {r["consumer"] for r in runs} == {"acme", "globex"}


def test_admin_replays_any_run(live: LiveEnvironment) -> None:
    live.push("globex", {"order_id": 2, "total": 20})
    [run] = live.wait_for_runs(1)
    with live.client(admin=True) as client:
        replayed = client.post(f"/admin/v1/runs/{run['id']}/replay")
        missing = client.post("/admin/v1/runs/run_nope/replay")
    assert replayed.status_code == 202 and replayed.json()["replay_of"] == run["id"]
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_trigger_push_event_alias(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        pushed = client.post(
            "/api/trigger-push-event",
            json={
                "appKey": "partner",
                "triggerKey": "order-created",
                "payload": {"order_id": 3, "total": 99},
                "somethingElse": True,
            },
        )
        invalid = client.post(
            "/api/trigger-push-event",
            json={"appKey": "partner", "triggerKey": "order-created", "payload": {"order_id": "x"}},
        )
        missing = client.post("/api/trigger-push-event", json={"appKey": "partner"})
    assert pushed.status_code == 202, pushed.text
    assert pushed.json()["runsQueued"] == 1 and len(pushed.json()["eventIds"]) == 1
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"][0]["path"].startswith("$.payload")
    assert missing.status_code == 422
    assert {d["path"] for d in missing.json()["error"]["details"]} == {"$.triggerKey", "$.payload"}


def rollout_runs(live: LiveEnvironment, **params: Any) -> list[dict[str, Any]]:
    with live.client("acme") as client:
        response = client.get("/api/automation-runs", params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_automation_runs_alias_maps_statuses(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 1, "total": 20})
    live.push("acme", {"order_id": 400, "total": 20})  # the sink refuses it with a 400
    live.push("acme", {"order_id": 3, "total": 1})  # filtered
    live.push("globex", {"order_id": 4, "total": 20})
    live.wait_for_runs(4)
    runs = rollout_runs(live)
    # filtered runs (which Rollout does not have) are listed only when asked for
    assert {r["status"] for r in runs} == {"SUCCESS", "USER_ERROR"}
    assert [r["status"] for r in rollout_runs(live, status="FILTERED")] == ["FILTERED"]
    assert all(r["consumerKey"] == "acme" for r in runs)
    first = next(r for r in runs if r["status"] == "SUCCESS")
    automation_id = first["automationId"]
    assert str(uuid.UUID(automation_id)) == automation_id and str(uuid.UUID(first["id"]))
    assert first["rolloutYaml"] == {
        "runId": first["rolloutYaml"]["runId"],
        "automationKey": "orders-to-sink",
    }
    assert first["inputParams"]["order_id"] == 1
    assert first["triggerEvent"]["appKey"] == "partner"
    assert first["triggerEvent"]["triggerKey"] == "order-created"
    assert first["triggerEvent"]["payload"] == {"order_id": 1, "total": 20}
    assert [r["status"] for r in rollout_runs(live, status="USER_ERROR")] == ["USER_ERROR"]
    assert rollout_runs(live, status="SERVER_ERROR") == []
    assert [r["status"] for r in rollout_runs(live, status="succeeded")] == ["SUCCESS"]
    assert len(rollout_runs(live, automationId=automation_id, limit=1)) == 1
    assert len(rollout_runs(live, automationId="orders-to-sink")) == 2  # its key works too


def test_automations_and_credentials_aliases(live: LiveEnvironment) -> None:
    with live.client("globex") as client:
        automations = client.get("/api/automations").json()
        credentials = client.get("/api/credentials").json()
    [automation] = automations
    assert str(uuid.UUID(automation["id"])) == automation["id"]
    assert automation == {
        "id": automation["id"],
        "createdAt": automation["createdAt"],
        "updatedAt": automation["updatedAt"],
        "status": "READY",
        "active": True,
        "live": True,
        "consumerKey": "globex",
        "blueprintKey": None,
        "name": automation["name"],
        "trigger": {
            "appKey": "partner",
            "triggerKey": "order-created",
            "credentialKey": "globex",
            "inputParams": {},
        },
        "action": {
            "appKey": "sink",
            "actionKey": "post-message",
            "credentialKey": "sink",
            "inputParams": {"text": "Globex order {{payload.order_id}}"},
        },
        "customData": None,
        "rolloutYaml": {
            "key": "orders-to-chat",
            "file": "environments/test/consumers/globex.yaml",
        },
    }
    assert credentials == [
        {
            "id": "sink",
            "credentialKey": "sink",
            "credentialType": "PRIMARY",
            "label": "sink",
            "appKey": "sink",
            "consumerKey": "globex",
            "stored": False,
            "status": "configured",
        }
    ]
