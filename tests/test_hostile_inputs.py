"""Hostile and combined inputs at every intake, each a defect found by driving the daemon as an
attacker, a careless App or schemathesis would: the answer is a 4xx naming what is wrong, or a
run recorded as a user would expect it, and every stored run stays readable."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from server_harness import JWT_SECRET, LiveEnvironment

from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.webhooks import parse_body
from rollout_yaml.expr.templates import MAX_RENDER_SECONDS, RenderError, TemplateCompiler
from rollout_yaml.json_codec import MAX_DEPTH
from rollout_yaml.server.auth import Unauthorized, verify_consumer_token
from rollout_yaml.store.factory import sqlite_path
from rollout_yaml.store.sqlite import SQLiteStore

ORDER = {"app": "partner", "trigger": "order-created"}
DELIVER = """
    action:
      app: sink
      action: deliver
      credential: sink
      input:
        order_id: "{{ payload.order_id }}"
        text: "Order {{ payload.order_id }}"
"""


def consumer_file(project: Path, automations: dict[str, str]) -> None:
    """acme's consumer file with these automations (key → `filter:` line or ""), in order."""
    text = "consumer: acme\ncredentials:\n  sink:\n    app: sink\n"
    text += '    values: { token: "${ACME_SINK_TOKEN}" }\nautomations:\n'
    for key, extra in automations.items():
        text += f"  {key}:\n    trigger: {{ app: partner, trigger: order-created }}\n"
        text += f"    {extra}\n" if extra else ""
        text += DELIVER
    (project / "environments" / "test" / "consumers" / "acme.yaml").write_text(text)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path) as environment:
        yield environment


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def by_automation(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {run["automation"]: run for run in runs}


# -- fan-out and filters ----------------------------------------------------------------------


@pytest.mark.parametrize("filtered_first", [True, False], ids=["filtered-first", "queued-first"])
def test_a_push_fanning_out_to_a_filtered_and_a_queued_run_records_both_finished(
    tmp_path: Path, database: str, filtered_first: bool
) -> None:
    picky = {"picky": 'filter: "payload.total >= `1000`"'}
    plain = {"plain": ""}
    environment = LiveEnvironment(tmp_path, database=database)
    consumer_file(environment.project, {**picky, **plain} if filtered_first else {**plain, **picky})
    with environment as live:
        answer = live.push("acme", {"order_id": 7, "total": 20})
        assert answer["runs_queued"] == 1
        runs = by_automation(live.wait_for_runs(2))
    assert runs["picky"]["status"] == "filtered"
    assert runs["plain"]["status"] == "succeeded"
    # retention prunes by finished_at: a terminal run without one would be kept forever
    assert runs["picky"]["finished_at"] is not None
    assert runs["plain"]["finished_at"] is not None


def test_a_filter_that_raises_fails_its_own_run_and_keeps_the_others(
    tmp_path: Path, database: str
) -> None:
    environment = LiveEnvironment(tmp_path, database=database)
    vip = {"vip": "filter: \"contains(payload.blob, 'vip')\""}
    consumer_file(environment.project, {**vip, "plain": ""})
    with environment as live:
        answer = live.push("acme", {"order_id": 8, "total": 20, "blob": 5})
        assert answer["runs_queued"] == 1
        runs = by_automation(live.wait_for_runs(2))
        with live.client() as client:
            shown = client.get(f"/v1/runs/{runs['vip']['id']}").json()
    assert runs["plain"]["status"] == "succeeded"
    assert runs["vip"]["status"] == "failed"
    assert runs["vip"]["finished_at"] is not None
    assert shown["error"].startswith("filter failed: ")
    assert "contains()" in shown["error"] and shown["error_kind"] == "filter"


# -- JSON the codec refuses at every intake ----------------------------------------------------

INTAKES = {
    "/v1/events": lambda payload: {**ORDER, "payload": payload},
    "/api/trigger-push-event": lambda payload: {
        "appKey": "partner",
        "triggerKey": "order-created",
        "payload": payload,
    },
    "/admin/v1/events": lambda payload: {**ORDER, "consumer": "acme", "payload": payload},
}


def post_raw(live: LiveEnvironment, path: str, raw: bytes) -> Any:
    with live.client(admin=path.startswith("/admin")) as client:
        return client.post(path, content=raw, headers={"Content-Type": "application/json"})


def body_with(path: str, payload_text: str) -> bytes:
    """The intake's body around a payload written as raw JSON text (what json.dumps refuses)."""
    marker = "__PAYLOAD__"
    return json.dumps(INTAKES[path](marker)).replace(f'"{marker}"', payload_text).encode()


@pytest.mark.parametrize("path", list(INTAKES))
def test_json_nested_beyond_the_limit_is_400_at_every_intake(
    live: LiveEnvironment, path: str
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    error = error_of(post_raw(live, path, body_with(path, f'{{"deep": {deep}}}')), 400)
    assert error["code"] == "invalid_json" and f"deeper than {MAX_DEPTH}" in error["message"]
    assert error["details"][0]["path"].startswith("$.payload.deep[0][0]")
    # one level above the limit is refused, the limit itself accepted (the body is level 1)
    fits = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    over = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    order = '{"order_id": 1, "total": 20, "deep": DEEP}'
    error_of(post_raw(live, path, body_with(path, order.replace("DEEP", over))), 400)
    assert post_raw(live, path, body_with(path, order.replace("DEEP", fits))).status_code == 202


@pytest.mark.parametrize("path", list(INTAKES))
def test_a_lone_surrogate_is_400_naming_its_path(live: LiveEnvironment, path: str) -> None:
    payload = '{"order_id": 1, "total": 20, "note": "a\\ud800b"}'
    error = error_of(post_raw(live, path, body_with(path, payload)), 400)
    assert error["details"] == [
        {"path": "$.payload.note", "message": error["details"][0]["message"]}
    ]
    assert "surrogate" in error["message"]
    assert live.wait_for_runs(0) == []


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_400_on_both_backends(
    tmp_path: Path, database: str, number: str
) -> None:
    with LiveEnvironment(tmp_path, database=database) as live:
        for path in INTAKES:
            payload = '{"order_id": 1, "total": NUMBER}'.replace("NUMBER", number)
            error = error_of(post_raw(live, path, body_with(path, payload)), 400)
            assert error["details"][0]["path"] == "$.payload.total", error
            assert "finite" in error["message"]
        assert live.wait_for_runs(0) == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"blob": NaN}', "$.blob"),
        (b'{"blob": 1e999}', "$.blob"),
        (b'{"items": [{"name": "a\\udc00"}]}', "$.items[0].name"),
        (b"[" * 5000 + b"]" * 5000, "$" + "[0]" * (MAX_DEPTH - 1)),
    ],
)
def test_webhook_bodies_get_the_same_refusals(body: bytes, path: str) -> None:
    with pytest.raises(EventRejected) as refused:
        parse_body({"Content-Type": "application/json"}, body)
    assert refused.value.status == 400
    assert refused.value.details[0]["path"] == path


def test_runs_stored_by_older_versions_with_non_json_values_stay_readable(
    tmp_path: Path,
) -> None:
    """Before the strict codec, SQLite rows could hold NaN and lone surrogates: such a run must
    still be listed and shown, never a 500."""
    environment = LiveEnvironment(tmp_path)
    path = sqlite_path(environment.project / "environments" / "test")
    store = SQLiteStore(path)

    async def migrate() -> None:
        await store.open()
        await store.close()

    asyncio.run(migrate())
    now = time.time()  # recent: retention would prune older rows at start
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events VALUES ('evt_old', 'acme', 'partner', 'order-created', 'k', "
            '\'{"total": NaN, "big": Infinity, "note": "a\\ud800b"}\', ?, \'push\')',
            (now,),
        )
        db.execute(
            "INSERT INTO runs (id, consumer, automation, event_id, event_key, status, attempts, "
            "input, output, created_at, updated_at, finished_at) VALUES ('run_old', 'acme', "
            "'orders-to-sink', 'evt_old', 'k', 'succeeded', 1, '{\"total\": NaN}', "
            '\'{"text": "\\udc00"}\', ?, ?, ?)',
            (now, now, now),
        )
    with environment as live, live.client() as client:
        listed = client.get("/v1/runs")
        shown = client.get("/v1/runs/run_old")
        rollout = client.get("/api/automation-runs")
    assert listed.status_code == 200 and listed.json()["runs"][0]["id"] == "run_old"
    assert shown.status_code == 200, shown.text
    run = shown.json()
    assert run["event"]["payload"] == {"total": None, "big": None, "note": "a\ufffdb"}
    assert run["input"] == {"total": None} and run["output"] == {"text": "\ufffd"}
    assert rollout.status_code == 200


# -- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "times",
    [
        {"iat": math.nan, "exp": math.nan},
        {"iat": 0, "exp": math.nan},
        {"iat": math.nan, "exp": 4_000_000_000},
        {"iat": 1_700_000_000, "exp": math.inf},
        {"iat": 1_700_000_000.5, "exp": 1_700_000_100},
        {"iat": 1_700_000_000, "exp": 10**400},
    ],
    ids=["both-nan", "exp-nan", "iat-nan", "exp-inf", "fractional", "huge"],
)
def test_tokens_with_times_that_are_not_whole_finite_seconds_are_401(
    times: dict[str, Any],
) -> None:
    token = jwt.encode({"sub": "acme", **times}, JWT_SECRET, algorithm="HS512")
    with pytest.raises(Unauthorized, match="whole number of seconds"):
        verify_consumer_token(token, AuthSettings(jwt_secret=JWT_SECRET), now=1_700_000_050)


def test_a_token_with_nan_times_is_refused_by_the_api(live: LiveEnvironment) -> None:
    token = jwt.encode(
        {"sub": "acme", "iat": math.nan, "exp": math.nan}, JWT_SECRET, algorithm="HS512"
    )
    with live.client(None) as client:
        answer = client.get("/v1/runs", headers={"Authorization": f"Bearer {token}"})
    assert error_of(answer, 401)["code"] == "unauthorized"


# -- event ids: one limit, at the edge ---------------------------------------------------------


def test_event_ids_have_one_length_limit_with_a_422_on_both_backends(
    tmp_path: Path, database: str
) -> None:
    with LiveEnvironment(tmp_path, database=database) as live, live.client() as client:
        payload = {"order_id": 1, "total": 20}
        for bad in ["", "x" * 501, "x" * 5000]:
            v1 = client.post("/v1/events", json={**ORDER, "id": bad, "payload": payload})
            assert error_of(v1, 422)["details"][0]["path"] == "$.id"
            rollout = client.post(
                "/api/trigger-push-event",
                json={
                    "appKey": "partner",
                    "triggerKey": "order-created",
                    "id": bad,
                    "payload": payload,
                },
            )
            assert error_of(rollout, 422)["details"][0]["path"] == "$.id"
        for good in ["y" * 500, "z" * 499]:
            answer = client.post("/v1/events", json={**ORDER, "id": good, "payload": payload})
            assert answer.status_code == 202, answer.text
            again = client.post(
                "/api/trigger-push-event",
                json={
                    "appKey": "partner",
                    "triggerKey": "order-created",
                    "id": good,
                    "payload": payload,
                },
            )
            assert again.status_code == 202 and again.json()["runsQueued"] == 0
        runs = live.wait_for_runs(2)
    assert sorted(len(r["event"]["key"]) for r in runs) == [499, 500]


# -- smaller ----------------------------------------------------------------------------------


def test_an_input_failing_the_action_schema_is_the_consumers_error(tmp_path: Path) -> None:
    environment = LiveEnvironment(tmp_path)
    consumer_file(environment.project, {"wrong-input": ""})
    acme = environment.project / "environments" / "test" / "consumers" / "acme.yaml"
    # order_id must be an integer: mapping it from a text field makes the consumer's input wrong
    acme.write_text(acme.read_text().replace("payload.order_id }}", "payload.note }}", 1))
    with environment as live:
        live.push("acme", {"order_id": 9, "total": 20, "note": "not a number"})
        (run,) = live.wait_for_runs(1)
        with live.client() as client:
            (rollout,) = client.get("/api/automation-runs").json()
            user_errors = client.get("/api/automation-runs", params={"status": "USER_ERROR"})
    assert run["status"] == "failed" and run["error_kind"] == "input"
    assert rollout["status"] == "USER_ERROR"
    assert [r["rolloutYaml"]["runId"] for r in user_errors.json()] == [run["id"]]


def test_an_empty_status_filter_is_no_filter(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 3, "total": 20})
    live.wait_for_runs(1)
    with live.client() as client, live.client(admin=True) as admin:
        for answer in (
            client.get("/v1/runs", params={"status": "", "automation": ""}),
            admin.get("/admin/v1/runs", params={"status": "", "consumer": ""}),
        ):
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["runs"]) == 1
        rollout = client.get("/api/automation-runs", params={"status": ""})
    assert rollout.status_code == 200 and len(rollout.json()) == 1


# -- templates: render time and output caps ------------------------------------------------------


def test_a_template_over_the_render_time_cap_fails_its_run_and_the_daemon_keeps_answering(
    tmp_path: Path,
) -> None:
    environment = LiveEnvironment(tmp_path)
    consumer_file(environment.project, {"quadratic": ""})
    acme = environment.project / "environments" / "test" / "consumers" / "acme.yaml"
    loops = "{% for a in payload.items %}{% for b in payload.items %}{% endfor %}{% endfor %}"
    acme.write_text(acme.read_text().replace('"Order {{ payload.order_id }}"', f'"{loops}"'))
    with environment as live:
        items = list(range(20_000))
        live.push("acme", {"order_id": 5, "total": 20, "items": items})
        started = time.monotonic()
        (run,) = live.wait_for_runs(1, timeout=30)
        failed_after = time.monotonic() - started
        with live.client() as client:
            assert client.get("/healthz").status_code == 200
    assert run["status"] == "failed" and run["error_kind"] == "mapping"
    assert f"longer than {MAX_RENDER_SECONDS} s" in run["error"]
    assert failed_after < 5  # without the cap this render alone takes minutes


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 1000000000 }}",
        "{{ [0] * 100000000 }}",
        "{{ 7 ** n }}",
        "{% for a in p %}{% for b in p %}{{ a }}{{ b }}{% endfor %}{% endfor %}",
    ],
)
def test_templates_cannot_build_output_past_the_cap(source: str) -> None:
    template = TemplateCompiler().compile(source)
    with pytest.raises(RenderError, match=r"over|more than|too large|longer than"):
        template.render({"n": 10_000_000, "p": ["y" * 100] * 2000})
