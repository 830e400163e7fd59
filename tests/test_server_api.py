"""The HTTP API over a real Runtime, served by uvicorn: events in, runs out, errors in one
shape, one consumer never seeing another's records, and no secret in any answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_harness import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN, JWT_SECRET, LiveEnvironment

ORDER = {"app": "partner", "trigger": "order-created"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path) as environment:
        yield environment


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    return dict(body["error"])


def wait_run(live: LiveEnvironment, run_id: str, consumer: str = "acme") -> dict[str, Any]:
    deadline = time.monotonic() + 10
    with live.client(consumer) as client:
        while True:
            run = client.get(f"/v1/runs/{run_id}").json()
            if run["status"] in ("succeeded", "failed", "filtered") or time.monotonic() > deadline:
                return dict(run)
            time.sleep(0.05)


# -- events ----------------------------------------------------------------------------------


def test_push_one_event_runs_the_automation(live: LiveEnvironment) -> None:
    answer = live.push("acme", {"order_id": 7, "total": 12.5, "customer": {"name": "Ada"}}, "o-7")
    assert answer["runs_queued"] == 1 and len(answer["event_ids"]) == 1
    [summary] = live.wait_for_runs(1)
    run = wait_run(live, summary["id"])
    assert run["status"] == "succeeded"
    assert run["consumer"] == "acme" and run["automation"] == "orders-to-sink"
    assert run["event"] == {
        "id": answer["event_ids"][0],
        "key": "o-7",
        "app": "partner",
        "trigger": "order-created",
        "received_at": run["event"]["received_at"],
        "payload": {"order_id": 7, "total": 12.5, "customer": {"name": "Ada"}},
    }
    assert run["input"]["text"] == "Order 7 by Ada: 12.5"
    assert run["output"] == {"received": True}
    assert run["created_at"].endswith("Z") and run["finished_at"].endswith("Z")
    [attempt] = run["attempts"]
    assert attempt["number"] == 1 and attempt["response"]["status"] == 200
    assert live.sink_received[0]["path"] == "/orders/7"


def test_the_same_event_id_makes_one_run(live: LiveEnvironment) -> None:
    first = live.push("acme", {"order_id": 1, "total": 50}, "dup")
    second = live.push("acme", {"order_id": 1, "total": 50}, "dup")
    assert first["event_ids"] == second["event_ids"]
    assert second["runs_queued"] == 0
    assert len(live.wait_for_runs(1)) == 1


def test_integer_event_ids_are_accepted(live: LiveEnvironment) -> None:
    with live.client() as client:
        answer = client.post(
            "/v1/events", json={**ORDER, "id": 99, "payload": {"order_id": 9, "total": 10}}
        )
    assert answer.status_code == 202, answer.text


def test_batch_of_events(live: LiveEnvironment) -> None:
    events = [{**ORDER, "payload": {"order_id": i, "total": 10 * i}} for i in range(1, 4)]
    with live.client() as client:
        answer = client.post("/v1/events", json={"events": events})
    assert answer.status_code == 202, answer.text
    assert len(answer.json()["event_ids"]) == 3
    assert answer.json()["runs_queued"] == 3


def test_filtered_events_make_a_filtered_run(live: LiveEnvironment) -> None:
    answer = live.push("acme", {"order_id": 2, "total": 3})
    assert answer["runs_queued"] == 0
    [run] = live.wait_for_runs(1)
    assert run["status"] == "filtered"


def test_schema_failures_are_422_with_json_paths(live: LiveEnvironment) -> None:
    with live.client() as client:
        single = client.post("/v1/events", json={**ORDER, "payload": {"order_id": "x"}})
        batch = client.post(
            "/v1/events",
            json={
                "events": [
                    {**ORDER, "payload": {"order_id": 1, "total": 1}},
                    {**ORDER, "payload": {"order_id": "x", "total": 1}},
                ]
            },
        )
        missing = client.post("/v1/events", json={"app": "partner", "payload": {}})
        extra = client.post("/v1/events", json={**ORDER, "payload": {}, "paylaod": {}})
        too_many = client.post("/v1/events", json={"events": [{**ORDER, "payload": {}}] * 501})
        empty = client.post("/v1/events", json={"events": []})
        not_object = client.post("/v1/events", json=[1, 2])
    details = error_of(single, 422, "invalid_request")["details"]
    assert {"path": "$.payload.order_id", "message": "'x' is not of type 'integer'"} in details
    assert any(d["path"] == "$.payload" and "total" in d["message"] for d in details)
    details = error_of(batch, 422, "invalid_request")["details"]
    assert [d["path"] for d in details] == ["$.events[1].payload.order_id"]
    assert {d["path"] for d in error_of(missing, 422, "invalid_request")["details"]} == {
        "$.trigger"
    }
    assert error_of(extra, 422, "invalid_request")["details"][0]["path"] == "$.paylaod"
    assert error_of(too_many, 422, "invalid_request")["details"][0]["path"] == "$.events"
    assert error_of(empty, 422, "invalid_request")["details"][0]["path"] == "$.events"
    assert error_of(not_object, 422, "invalid_request")["details"][0]["path"] == "$"
    assert live.wait_for_runs(0) == []  # nothing of a refused request was stored


def test_unknown_app_or_trigger_is_404(live: LiveEnvironment) -> None:
    with live.client() as client:
        app = client.post("/v1/events", json={"app": "nope", "trigger": "x", "payload": {}})
        trigger = client.post("/v1/events", json={"app": "partner", "trigger": "x", "payload": {}})
    assert error_of(app, 404, "not_found")["details"][0]["path"] == "$.app"
    assert error_of(trigger, 404, "not_found")["details"][0]["path"] == "$.trigger"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"   ",
        b'{"app": "partner"',
        b"NaN",
        b'{"a": Infinity}',
        '{"app": "caf\u00e9"}'.encode("latin-1"),
        b"\xff\xfe{}",
    ],
)
def test_bodies_that_are_not_json_are_400(live: LiveEnvironment, body: bytes) -> None:
    with live.client() as client:
        response = client.post(
            "/v1/events", content=body, headers={"Content-Type": "application/json"}
        )
    error_of(response, 400, "invalid_json")


def test_oversized_bodies_are_413_by_header_and_by_bytes(live: LiveEnvironment) -> None:
    big = json.dumps({**ORDER, "payload": {"note": "x" * 1_100_000}}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: only the bytes read can tell
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    with live.client() as client:
        error_of(client.post("/v1/events", content=big), 413, "payload_too_large")
        error_of(client.post("/v1/events", content=chunks()), 413, "payload_too_large")
    with live.client(admin=True) as client:
        error_of(client.post("/admin/v1/events", content=big), 413, "payload_too_large")


# -- runs -------------------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_a_keyset_cursor(live: LiveEnvironment) -> None:
    for order in range(1, 6):
        live.push("acme", {"order_id": order, "total": 20})
    live.wait_for_runs(5)
    seen: list[str] = []
    cursor: str | None = None
    with live.client() as client:
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/runs", params=params).json()
            assert len(page["runs"]) <= 2
            for run in page["runs"]:
                assert "attempts" not in run and "payload" not in run["event"]
            seen += [r["id"] for r in page["runs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    with live.client() as client:
        assert len(client.get("/v1/runs", params={"status": "succeeded"}).json()["runs"]) == 5
        assert client.get("/v1/runs", params={"status": "failed"}).json()["runs"] == []
        assert client.get("/v1/runs", params={"automation": "other"}).json()["runs"] == []
        recent = client.get("/v1/runs", params={"since": "2000-01-01T00:00:00Z"}).json()
        assert len(recent["runs"]) == 5
        later = client.get("/v1/runs", params={"since": time.time() + 60}).json()
        assert later["runs"] == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"limit": "many"}, {"status": "done"}, {"since": "yesterday"}],
)
def test_bad_query_parameters_are_422(live: LiveEnvironment, params: dict[str, Any]) -> None:
    with live.client() as client:
        error = error_of(client.get("/v1/runs", params=params), 422, "invalid_request")
    assert error["details"][0]["path"] == next(iter(params))


def test_another_consumers_run_is_404(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 1, "total": 20})
    live.push("globex", {"order_id": 2, "total": 20})
    runs = live.wait_for_runs(2)
    acme = next(r for r in runs if r["consumer"] == "acme")
    with live.client("globex") as client:
        error_of(client.get(f"/v1/runs/{acme['id']}"), 404, "not_found")
        error_of(client.post(f"/v1/runs/{acme['id']}/replay"), 404, "not_found")
        error_of(client.get("/v1/runs/run_doesnotexist"), 404, "not_found")
        listed = client.get("/v1/runs").json()["runs"]
        assert [r["consumer"] for r in listed] == ["globex"]
        assert client.get("/v1/automations/orders-to-sink").status_code == 404
        assert [c["key"] for c in client.get("/v1/credentials").json()["credentials"]] == ["sink"]
    with live.client("acme") as client:
        assert client.get(f"/v1/runs/{acme['id']}").status_code == 200


def test_replay_makes_a_new_linked_run(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 400, "total": 20})
    [original] = live.wait_for_runs(1)
    assert original["status"] == "failed" and original["error_kind"] == "app_refused"
    with live.client() as client:
        replayed = client.post(f"/v1/runs/{original['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    run = replayed.json()
    assert run["replay_of"] == original["id"] and run["id"] != original["id"]
    assert wait_run(live, run["id"])["status"] == "failed"
    assert len(live.sink_received) == 2


# -- configuration reads ---------------------------------------------------------------------


def test_automations_with_status_and_last_run(live: LiveEnvironment) -> None:
    with live.client() as client:
        before = client.get("/v1/automations").json()
        live.push("acme", {"order_id": 1, "total": 20})
        [run] = live.wait_for_runs(1)
        one = client.get("/v1/automations/orders-to-sink").json()
        missing = client.get("/v1/automations/nope")
    assert before["next_cursor"] is None
    [automation] = before["automations"]
    assert (
        automation["key"] == "orders-to-sink"
        and automation["enabled"] is True
        and automation["source"] == "file"
    )
    assert automation["last_run"] is None and automation["webhook_url"] is None
    assert automation["trigger"]["app"] == "partner"
    assert one["last_run"]["id"] == run["id"] and one["last_run"]["status"] == "succeeded"
    error_of(missing, 404, "not_found")


def test_apps_with_their_schemas(live: LiveEnvironment) -> None:
    with live.client() as client:
        apps = {a["key"]: a for a in client.get("/v1/apps").json()["apps"]}
    assert {"partner", "sink"} <= set(apps)
    [trigger] = apps["partner"]["triggers"]
    assert trigger["key"] == "order-created" and trigger["kind"] == "push"
    assert trigger["payload_schema"]["required"] == ["order_id", "total"]
    assert {a["key"] for a in apps["sink"]["actions"]} == {"deliver", "post-message"}


def test_credentials_never_show_values(live: LiveEnvironment) -> None:
    with live.client() as client:
        response = client.get("/v1/credentials")
    assert response.json() == {
        "credentials": [
            {
                "key": "sink",
                "app": "sink",
                "source": "file",
                "stored": False,
                "declared": True,
                "status": "configured",
                "label": None,
                "tested_at": None,
                "expires_at": None,
                "updated_at": None,
                "error": None,
            }
        ],
        "next_cursor": None,
    }
    assert ACME_TOKEN not in response.text


# -- secrets ---------------------------------------------------------------------------------


def test_no_secret_leaves_in_any_answer(live: LiveEnvironment) -> None:
    """A payload carrying secrets is stored and served, but the secrets never come back."""
    payload = {"order_id": 1, "total": 20, "note": f"{ACME_TOKEN} {ADMIN_TOKEN} {JWT_SECRET}"}
    live.push("acme", payload)
    [run] = live.wait_for_runs(1)
    texts = []
    with live.client() as client:
        for path in (
            "/v1/runs",
            f"/v1/runs/{run['id']}",
            "/v1/automations",
            "/v1/apps",
            "/api/automation-runs",
            "/status",
            "/metrics",
        ):
            response = client.get(path)
            assert response.status_code == 200, path
            texts.append(response.text)
    with live.client(admin=True) as client:
        texts.append(client.get(f"/admin/v1/runs/{run['id']}").text)
        texts.append(client.get("/admin/v1/runs").text)
    for text in texts:
        for secret in (ACME_TOKEN, GLOBEX_TOKEN, ADMIN_TOKEN, JWT_SECRET):
            assert secret not in text
    assert "***" in texts[1]


# -- the rest of the surface -----------------------------------------------------------------


def test_unknown_paths_and_methods_answer_in_the_error_shape(live: LiveEnvironment) -> None:
    with live.client() as client:
        error_of(client.get("/v1/nothing-here"), 404, "not_found")
        error_of(client.delete("/v1/events"), 405, "method_not_allowed")
        error_of(client.put("/healthz"), 405, "method_not_allowed")


def test_health_status_metrics_openapi(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 1, "total": 20})
    live.wait_for_runs(1)
    with live.client(None) as client:
        health = client.get("/healthz").json()
        ready = client.get("/readyz")
        status = client.get("/status").json()
        metrics = client.get("/metrics")
        openapi = client.get("/openapi.json").json()
    assert health == {"status": "ok", "environment": "test", "instance": live.runtime.instance}
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert status["generation"] == 1 and status["last_reload_error"] is None
    assert status["webhooks"] == {"hooks": {}, "pending": []}  # no webhook trigger here
    assert "environments/test/environment.yaml" in status["files"]
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'rollout_events_received_total{app="partner",trigger="order-created"} 1.0' in (
        metrics.text
    )
    paths = openapi["paths"]
    for path in (
        "/v1/events",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/replay",
        "/v1/automations",
        "/v1/automations/{key}",
        "/v1/apps",
        "/v1/credentials",
        "/api/trigger-push-event",
        "/api/automation-runs",
        "/admin/v1/events",
        "/admin/v1/runs",
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
        "/webhooks/{app}/{trigger}/{hook_id}",
    ):
        assert path in paths, path
    body = paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for ref in body["oneOf"]:
        assert ref["$ref"].rsplit("/", 1)[1] in openapi["components"]["schemas"]
    assert "consumerJWT" in openapi["components"]["securitySchemes"]


def test_readyz_is_503_before_the_runtime_starts(tmp_path: Path) -> None:
    import asyncio

    import httpx
    from server_harness import copy_project, secrets_environ

    from rollout_yaml.config.project import Layout
    from rollout_yaml.engine.runtime import Runtime
    from rollout_yaml.expr.compiler import load_and_compile
    from rollout_yaml.server.app import create_app
    from rollout_yaml.store.sqlite import SQLiteStore

    async def check() -> httpx.Response:
        env, _ = load_and_compile(
            Layout(copy_project(tmp_path)), "test", environ=secrets_environ("http://127.0.0.1:9")
        )
        assert env is not None
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        try:
            transport = httpx.ASGITransport(app=create_app(Runtime(env, store)))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get("/readyz")
        finally:
            await store.close()

    response = asyncio.run(check())
    error = error_of(response, 503, "not_ready")
    assert {"path": "runtime", "message": "failing"} in error["details"]
