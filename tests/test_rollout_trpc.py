"""`/api/trpc`: tRPC v10 over HTTP as `@rollout/api-client-react` calls it, with the shapes of
`@rollout/framework`, over the real app (the node test drives it with the real client)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from rollout_client import batch_mutation, batch_query, copy_dropin_project, data, mutate, query
from server_harness import JWT_SECRET, LiveEnvironment


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path, project=copy_dropin_project(tmp_path)) as environment:
        yield environment


def rollout_token(consumer: str, auth_data: object | None = None, ttl: int = 600) -> str:
    """A token as Rollout's samples mint one: `{iss, sub, iat, exp, "rollout.com"}`, HS512."""
    now = int(time.time())
    claims: dict[str, object] = {"iss": "partner", "sub": consumer, "iat": now, "exp": now + ttl}
    if auth_data is not None:
        claims["rollout.com"] = {"authData": auth_data}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS512")


def test_a_batch_answers_each_call_in_order(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        answer = batch_query(
            client,
            ("triggers.list", None),
            ("actions.list", None),
            ("apps.authInfo", {"appKey": "sink"}),
            ("apps.authInfo", {"appKey": "crm"}),
        )
    triggers, actions, sink, crm = data(answer)
    assert triggers["partner"]["name"] == "Partner App"
    order = triggers["partner"]["triggers"]["order-created"]
    assert order["name"] == "Order Created"
    assert order["payloadConfiguration"]["type"] == "static"
    # keys are the templates' expressions: connect-react writes a variable as {{<key>}}
    assert order["payloadConfiguration"]["staticSchema"] == [
        {"key": "payload.order_id", "label": "Order number"},
        {"key": "payload.total", "label": "Total"},
        {"key": "payload.customer", "label": "Customer"},
        {"key": "payload.customer.name", "label": "Customer name"},
        {"key": "payload.customer.email", "label": "customer.email"},
        {"key": "payload.note", "label": "note"},
    ]
    assert actions["sink"] == {
        "name": "Sink",
        "actions": {
            "deliver": {"name": "Deliver an order"},
            "post-message": {"name": "Post a message (Slack-style)"},
        },
    }
    assert "sink" not in triggers and "partner" not in actions
    assert sink == {
        "type": "apiKey",
        "customParams": [
            {"type": "textfield", "key": "token", "label": "token"},
            # connect-react renders infoHTML as HTML: a description is text
            {
                "type": "textfield",
                "key": "workspace",
                "label": "Workspace",
                "infoHTML": "Your &lt;b&gt;workspace&lt;/b&gt;",
            },
        ],
    }
    assert crm == {"type": "JWT", "singleCredentialOnly": True}


def test_errors_have_trpc_codes_and_shapes(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        mixed = batch_query(
            client,
            ("automations.get", {"automationId": str(uuid.uuid4())}),
            ("apps.authInfo", {"appKey": "sink"}),
            ("nothing.here", None),
            ("apps.authInfo", {"app": "sink"}),
        )
        wrong_method = batch_mutation(client, ("triggers.list", None))
        single = client.get("/api/trpc/apps.authInfo", params={"input": '{"appKey":"nope"}'})
    with live.client(None) as anonymous:
        unauthorized = batch_query(anonymous, ("triggers.list", None), ("actions.list", None))
    assert mixed.status_code == 207
    missing, ok, unknown, invalid = mixed.json()
    assert missing["error"]["code"] == -32004
    assert missing["error"]["data"] == {
        "code": "NOT_FOUND",
        "httpStatus": 404,
        "path": "automations.get",
    }
    assert ok["result"]["data"]["type"] == "apiKey"
    assert unknown["error"]["data"]["code"] == "NOT_FOUND"
    assert unknown["error"]["message"] == 'No "query"-procedure on path "nothing.here"'
    assert invalid["error"]["data"]["code"] == "BAD_REQUEST"
    assert invalid["error"]["data"]["details"][0]["path"] == "$.appKey"
    assert wrong_method.status_code == 405
    assert wrong_method.json()[0]["error"]["data"]["code"] == "METHOD_NOT_SUPPORTED"
    assert single.status_code == 404 and single.json()["error"]["data"]["code"] == "NOT_FOUND"
    assert unauthorized.status_code == 401
    assert [e["error"]["data"]["code"] for e in unauthorized.json()] == ["UNAUTHORIZED"] * 2


def test_automations_in_rollouts_shape_with_stable_uuids(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        listed = query(client, "automations.list")
        again = query(client, "automations.list")
        one = query(client, "automations.get", {"automationId": listed[0]["id"]})
        rest = client.get(f"/api/automations/{listed[0]['id']}").json()
        none = query(client, "blueprints.getAutomation", {"blueprintKey": "orders-to-sink"})
    with live.client("globex") as client:
        (theirs,) = query(client, "automations.list")
        from_blueprint = query(
            client, "blueprints.getAutomation", {"blueprintKey": "orders-to-sink"}
        )
        foreign = batch_query(client, ("automations.get", {"automationId": listed[0]["id"]}))
        foreign_rest = client.get(f"/api/automations/{listed[0]['id']}")
    assert [a["id"] for a in listed] == [a["id"] for a in again]
    assert all(uuid.UUID(a["id"]) for a in listed)
    by_name = {a["name"]: a for a in listed}
    sink = by_name["Orders to the sink"]
    assert sink["consumerKey"] == "acme" and sink["blueprintKey"] is None
    assert sink["status"] == "READY" and sink["active"] is True and sink["live"] is True
    assert sink["trigger"] == {
        "appKey": "partner",
        "triggerKey": "order-created",
        "credentialKey": "acme",
        "inputParams": {},
    }
    assert sink["action"]["credentialKey"] == "sink"
    # a template reading a payload field, as connect-react writes that variable
    assert sink["action"]["inputParams"] == {
        "order_id": "{{payload.order_id}}",
        "text": "Order {{payload.order_id}}: {{payload.total}}",
    }
    assert sink["customData"] is None and sink["createdAt"].endswith("Z")
    assert by_name["Contacts to the CRM"]["action"]["credentialKey"] == "acme"
    assert one == listed[0] and rest["id"] == listed[0]["id"]
    assert none is None
    assert from_blueprint == theirs and theirs["blueprintKey"] == "orders-to-sink"
    assert theirs["action"]["inputParams"] == {"note": "globex"}
    assert foreign.json()[0]["error"]["data"]["code"] == "NOT_FOUND"
    assert foreign_rest.status_code == 404


def test_credentials_and_payload_schema(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        sink, crm, partner, schema = data(
            batch_query(
                client,
                ("apps.credentials", {"appKey": "sink"}),
                ("apps.credentials", {"appKey": "crm"}),
                ("apps.credentials", {"appKey": "partner"}),
                (
                    "triggers.getPayloadSchema",
                    {
                        "appKey": "partner",
                        "triggerKey": "contact-created",
                        "credentialKey": "acme",
                        "inputParams": {},
                    },
                ),
            )
        )
        rest = client.get("/api/credentials").json()
    assert sink == [{"credentialKey": "sink", "credentialType": "PRIMARY", "label": "sink"}]
    assert (
        crm
        == partner
        == [{"credentialKey": "acme", "credentialType": "PRIMARY", "label": "Acme Inc."}]
    )
    assert schema == [{"key": "payload.contact_id", "label": "Contact"}]
    assert [(c["credentialKey"], c["appKey"], c["credentialType"]) for c in rest] == [
        ("sink", "sink", "PRIMARY")
    ]


def test_runs_in_rollouts_shape(live: LiveEnvironment) -> None:
    live.push("acme", {"order_id": 1, "total": 20})
    live.push("acme", {"order_id": 400, "total": 20})  # the sink refuses it with a 400
    live.push("acme", {"order_id": 3, "total": 1})  # filtered
    live.push("globex", {"order_id": 4, "total": 20})
    ours = live.wait_for_runs(4)
    with live.client("acme") as client:
        runs = client.get("/api/automation-runs").json()
        filtered = client.get("/api/automation-runs", params={"status": "FILTERED"}).json()
        (automation,) = [
            a for a in query(client, "automations.list") if a["name"] == "Orders to the sink"
        ]
        of_it = client.get("/api/automation-runs", params={"automationId": automation["id"]})
        user_errors = client.get("/api/automation-runs", params={"status": "USER_ERROR"}).json()
    with live.client("globex") as client:
        (globex_run,) = client.get("/api/automation-runs").json()
        foreign = client.get("/api/automation-runs", params={"automationRunId": runs[0]["id"]})
    with live.client("acme") as client:
        by_id = client.get("/api/automation-runs", params={"automationRunId": runs[0]["id"]})
        not_mine = client.get("/api/automation-runs", params={"automationRunId": globex_run["id"]})
    assert sorted(r["status"] for r in runs) == ["SUCCESS", "USER_ERROR"]
    assert [r["status"] for r in filtered] == ["FILTERED"]
    assert len(of_it.json()) == 2
    success = next(r for r in runs if r["status"] == "SUCCESS")
    assert success["automationId"] == automation["id"]
    assert success["triggerEvent"]["payload"] == {"order_id": 1, "total": 20}
    [execution] = success["executions"]
    assert execution["output"] == {"status": "SUCCESS", "data": {"received": True}}
    assert execution["startedAt"] <= execution["endedAt"]
    [refused] = user_errors
    assert refused["executions"][-1]["output"]["status"] == "USER_ERROR"
    assert refused["executions"][-1]["output"]["error"]
    ids = {r["id"] for r in ours}
    assert {r["rolloutYaml"]["runId"] for r in runs} <= ids
    assert [r["id"] for r in by_id.json()] == [runs[0]["id"]]
    assert foreign.json() == [] and not_mine.json() == []


def test_a_token_minted_like_rollouts_samples_is_accepted(live: LiveEnvironment) -> None:
    token = rollout_token("acme", {"apiToken": "crm-token-s3cr3t"})
    with live.client(None) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        answer = batch_query(client, ("automations.list", None))
        hs256 = jwt.encode({"sub": "acme", "iat": 1, "exp": 2}, JWT_SECRET, algorithm="HS256")
        client.headers["Authorization"] = f"Bearer {hs256}"
        refused = batch_query(client, ("automations.list", None))
    assert len(data(answer)[0]) == 2
    assert refused.json()[0]["error"]["data"]["code"] == "UNAUTHORIZED"


def test_a_jwt_action_sends_the_tokens_auth_data_and_never_shows_it(
    live: LiveEnvironment,
) -> None:
    secret = "crm-consumer-token-9f8e7d"
    token = rollout_token("acme", secret)
    with live.client(None) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        pushed = client.post(
            "/api/trigger-push-event",
            json={
                "appKey": "partner",
                "triggerKey": "contact-created",
                "payload": {"contact_id": 7},
            },
        )
        assert pushed.status_code == 202, pushed.text
        [run] = live.wait_for_runs(1)
        shown = client.get(f"/v1/runs/{run['id']}").text
        rollout = client.get("/api/automation-runs").text
    [sent] = [r for r in live.sink_received if r["path"] == "/orders/7"]
    assert sent["headers"]["authorization"] == f"Bearer {secret}"
    assert json.loads(shown)["status"] == "succeeded"
    assert secret not in shown and secret not in rollout
    stored = live.project / "environments" / "test" / ".rollout"
    database = b"".join(p.read_bytes() for p in stored.iterdir() if p.is_file())
    assert database and secret.encode() not in database  # never stored, not even redacted away


def test_a_jwt_action_without_a_token_fails_with_the_reason(live: LiveEnvironment) -> None:
    with live.client("acme") as client:  # a token without "rollout.com"
        pushed = client.post(
            "/api/trigger-push-event",
            json={
                "appKey": "partner",
                "triggerKey": "contact-created",
                "payload": {"contact_id": 8},
            },
        )
    assert pushed.status_code == 202
    [run] = live.wait_for_runs(1)
    assert run["status"] == "failed" and "authData" in run["error"]


def test_analytics_events_are_counted(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        answers = batch_mutation(
            client,
            ("analytics.logEvent", {"eventType": "automation-creator viewed"}),
            ("analytics.logEvent", {"eventType": "automation-creator viewed"}),
        )
        metrics = client.get("/metrics").text
    assert data(answers) == [None, None]
    assert 'rollout_connect_events_total{event="automation-creator viewed"} 2.0' in metrics


# -- what connect-react loads by URL -------------------------------------------------------------

MODULE_CHECK = """
const url = process.argv[1];
const calls = [];
const React = {
  Fragment: "Fragment",
  createElement: (type, props, ...children) => ({ type, props, children }),
};
const ui = { RichTextInput: "RichTextInput", BooleanInput: "BooleanInput",
             DropdownInput: "DropdownInput" };
globalThis.window = { ROLLOUT_CONNECT_DEPS: { react: React, "@rollout/framework/ui": ui } };
const b = new Proxy({}, { get: (_, key) => ({ path: [key] }) });
const mod = await import(url);
const tree = mod.Component({ b, credentialKey: "sink", inputParams: {}, setInputParams() {},
                             variables: [] });
const fields = tree.children.map((c) => ({ type: c.type, bind: c.props.bind.path[0],
  label: c.props.label, required: c.props.isRequired }));
process.stdout.write(JSON.stringify({ schema: mod.inputParamsSchema, fields }));
"""


def import_module(url: str) -> dict[str, Any]:
    """The module as a browser's `import()` loads it (node fetches it the same way), with a
    stand-in for the React and inputs connect-react hands it."""
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is needed to import the UI modules")
        pytest.skip("node is not installed")
    done = subprocess.run(
        ["node", "--experimental-network-imports", "--input-type=module", "-e", MODULE_CHECK, url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_ui_modules_export_the_connectors_input_schemas(live: LiveEnvironment) -> None:
    action = import_module(f"{live.url}/api/connect-react/crm/actions/note.js")
    trigger = import_module(f"{live.url}/api/connect-react/partner/triggers/order-created.js?v=3")
    crm = live.runtime.config.current.apps["crm"].actions["note"].input_schema.schema
    assert action["schema"] == crm
    assert action["fields"] == [
        {"type": "RichTextInput", "bind": "order_id", "label": "Record", "required": True},
        {"type": "RichTextInput", "bind": "text", "label": "Note text", "required": False},
    ]
    # connect-react reads `properties` of every schema: one without gets an empty set
    assert trigger == {"schema": {"type": "object", "properties": {}}, "fields": []}
    with live.client(None) as client:
        module = client.get("/api/connect-react/crm/actions/note.js")
        missing = client.get("/api/connect-react/crm/actions/nope.js")
    assert module.headers["content-type"].startswith("text/javascript")
    assert module.headers["access-control-allow-origin"] == "*"
    assert missing.status_code == 404


def test_icons_are_the_connectors_file_or_a_monogram(live: LiveEnvironment) -> None:
    with live.client(None) as client:
        partner = client.get("/api/connect-react/partner/icon")
        crm = client.get("/api/connect-react/crm/icon")
        unknown = client.get("/api/connect-react/nope/icon")
    given = live.project / "connectors" / "partner.svg"
    assert partner.headers["content-type"] == "image/svg+xml"
    assert partner.content == given.read_bytes()
    assert crm.headers["content-type"].startswith("image/svg+xml")
    assert ">PC</text>" in crm.text  # Partner CRM
    assert unknown.status_code == 404


def test_an_icon_given_inline_travels_with_the_connector(tmp_path: Path) -> None:
    project = copy_dropin_project(tmp_path)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="4" height="4"/></svg>'
    crm = project / "connectors" / "crm.yaml"
    inline = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
    crm.write_text(
        crm.read_text().replace("auth: { type: jwt }", f'icon: "{inline}"\nauth: {{ type: jwt }}')
    )
    with LiveEnvironment(tmp_path, project=project) as live, live.client(None) as client:
        answer = client.get("/api/connect-react/crm/icon")
    assert answer.headers["content-type"] == "image/svg+xml" and answer.content == svg
    assert "sandbox" in answer.headers["content-security-policy"]


def test_the_oauth_popup_ends_by_telling_its_opener(live: LiveEnvironment) -> None:
    with live.client(None) as client:
        done = client.get(
            "/api/connect-react/oauth-done",
            params={"requestId": "r-1", "credential": "sink", "app": "sink", "status": "connected"},
        )
        failed = client.get(
            "/api/connect-react/oauth-done",
            params={"requestId": "r-2", "credential": "sink", "error": "access_denied</script>"},
        )
    message = json.loads(done.text.split("const message = ", 1)[1].split(";\n", 1)[0])
    assert message == {
        "_rollout": {
            "type": "credential-added",
            "requestId": "r-1",
            "ok": True,
            "appKey": "sink",
            "credential": {"credentialKey": "sink"},
        }
    }
    assert '</script>"' not in failed.text and '"ok": false' in failed.text


def test_the_partners_pages_may_call_from_the_browser(live: LiveEnvironment) -> None:
    partner = {"Origin": "https://partner.example"}
    ask = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    with live.client("acme") as client:
        preflight = client.options("/api/trpc/triggers.list", headers={**partner, **ask})
        stranger = client.options(
            "/api/trpc/triggers.list", headers={"Origin": "https://evil.example", **ask}
        )
        answer = batch_query(client, ("actions.list", None))
        client.headers.update(partner)
        allowed = batch_query(client, ("actions.list", None))
        pushed = client.post(
            "/v1/events", json={"app": "partner", "trigger": "contact-created", "payload": {}}
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://partner.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in preflight.headers
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-origin" not in answer.headers
    assert allowed.headers["access-control-allow-origin"] == "https://partner.example"
    assert pushed.headers["access-control-allow-origin"] == "https://partner.example"


# -- writes: automations -------------------------------------------------------------------------

WRITTEN_OUT = {
    "name": "Big orders to the sink",
    "trigger": {
        "appKey": "partner",
        "triggerKey": "order-created",
        "credentialKey": "acme",
        "inputParams": {},
    },
    "action": {
        "appKey": "sink",
        "actionKey": "deliver",
        "credentialKey": "sink",
        "inputParams": {"order_id": "{{ payload.order_id }}", "text": "big {{ payload.total }}"},
    },
}


def test_automations_created_toggled_updated_and_deleted_over_trpc(
    live: LiveEnvironment,
) -> None:
    from_blueprint = {
        "name": "Orders via the blueprint",
        "blueprintKey": "orders-to-sink",
        "trigger": {**WRITTEN_OUT["trigger"]},
        "action": {**WRITTEN_OUT["action"], "inputParams": {"note": "from the blueprint"}},
        "customData": {"plan": "pro"},
    }
    with live.client("acme") as client:
        created, enabled = data(
            batch_mutation(
                client, ("automations.create", WRITTEN_OUT), ("automations.create", from_blueprint)
            )
        )
        by_blueprint = query(client, "blueprints.getAutomation", {"blueprintKey": "orders-to-sink"})
        off = mutate(client, "automations.toggleActive", {"id": created["id"], "active": False})
        live.push("acme", {"order_id": 11, "total": 50})
        runs = live.wait_for_runs(2)
        changed = {**WRITTEN_OUT, "name": "Renamed"}
        listed = query(client, "automations.list")
        [file_automation] = [a for a in listed if a["name"] == "Orders to the sink"]
        updated = mutate(
            client, "automations.update", {"id": created["id"], "automationData": changed}
        )
        file_owned = batch_mutation(
            client,
            (
                "automations.toggleActive",
                {"id": file_automation["id"], "active": False},
            ),
        )
        invalid = batch_mutation(
            client,
            (
                "automations.create",
                {**WRITTEN_OUT, "action": {**WRITTEN_OUT["action"], "actionKey": "delivr"}},
            ),
        )
        gone = mutate(client, "automations.delete", {"id": created["id"]})
        after = batch_query(client, ("automations.get", {"automationId": created["id"]}))
    with live.client("globex") as client:
        foreign = batch_mutation(client, ("automations.delete", {"id": enabled["id"]}))
    assert created["name"] == "Big orders to the sink" and created["active"] is True
    assert created["blueprintKey"] is None and created["status"] == "READY"
    assert created["action"]["inputParams"] == {
        "order_id": "{{payload.order_id}}",
        "text": "big {{payload.total}}",
    }
    assert created["trigger"]["credentialKey"] == "acme"
    assert created["rolloutYaml"]["key"].startswith("big-orders-to-the-sink-")
    assert enabled["blueprintKey"] == "orders-to-sink" and enabled["customData"] == {"plan": "pro"}
    assert enabled["action"]["inputParams"] == {"note": "from the blueprint"}
    assert by_blueprint["id"] == enabled["id"]
    assert off["active"] is False and off["live"] is False
    # the file automation and the blueprint's ran; the switched-off one did not
    assert sorted(r["automation"] for r in runs) == sorted(
        ["orders-to-sink", enabled["rolloutYaml"]["key"]]
    )
    assert updated["name"] == "Renamed" and updated["active"] is False
    assert file_owned.json()[0]["error"]["data"]["code"] == "CONFLICT"
    error = invalid.json()[0]["error"]
    assert error["data"]["code"] == "BAD_REQUEST"
    assert "delivr" in error["message"] and error["message"].startswith("$.action.actionKey")
    assert error["data"]["details"][0]["path"] == "$.action.actionKey"
    assert error["data"]["details"][0]["code"].startswith("RY")
    assert gone["id"] == created["id"]
    assert after.json()[0]["error"]["data"]["code"] == "NOT_FOUND"
    assert foreign.json()[0]["error"]["data"]["code"] == "NOT_FOUND"


def test_automations_rest_aliases_write_in_rollouts_shape(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        created = client.post("/api/automations", json=WRITTEN_OUT)
        automation_id = created.json()["id"]
        patched = client.patch(f"/api/automations/{automation_id}", json={"active": False})
        wrong = client.patch(f"/api/automations/{automation_id}", json={"name": "x"})
        replaced = client.put(
            f"/api/automations/{automation_id}",
            json={"automationData": {**WRITTEN_OUT, "name": "Replaced"}},
        )
        listed = client.get("/api/automations").json()
        deleted = client.delete(f"/api/automations/{automation_id}")
        again = client.get(f"/api/automations/{automation_id}")
        invalid = client.post("/api/automations", json={"name": "no trigger"})
    assert created.status_code == 201, created.text
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert wrong.status_code == 422
    assert replaced.status_code == 200 and replaced.json()["name"] == "Replaced"
    assert automation_id in [a["id"] for a in listed]
    assert deleted.status_code == 204
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    assert invalid.status_code == 422
    assert {d["path"] for d in invalid.json()["error"]["details"]} >= {"$.trigger", "$.action"}


# -- writes: credentials -------------------------------------------------------------------------


def test_api_token_credentials_added_used_and_deleted(live: LiveEnvironment) -> None:
    with live.client("acme") as client:
        # the in-process sink has no /me: its auth.test fails
        tested = mutate(
            client, "credentials.testConnection", {"appKey": "sink", "apiToken": {"token": "t"}}
        )
        not_api_token = batch_mutation(
            client, ("credentials.testConnection", {"appKey": "crm", "apiToken": {}})
        )
        added = mutate(
            client,
            "credentials.addApiToken",
            {"appKey": "sink", "credential": {"token": "new-sink-token-77"}},
        )
        listed = query(client, "apps.credentials", {"appKey": "sink"})
        bad_field = batch_mutation(
            client, ("credentials.addApiToken", {"appKey": "sink", "credential": {"tokn": "x"}})
        )
        uses_it = {
            **WRITTEN_OUT,
            "action": {**WRITTEN_OUT["action"], "credentialKey": added["credentialKey"]},
        }
        automation = mutate(client, "automations.create", uses_it)
        in_use = batch_mutation(
            client,
            ("credentials.delete", {"credentialKey": added["credentialKey"], "appKey": "sink"}),
        )
        mutate(client, "automations.delete", {"id": automation["id"]})
        deleted = mutate(
            client,
            "credentials.delete",
            {"credentialKey": added["credentialKey"], "appKey": "sink"},
        )
        after = query(client, "apps.credentials", {"appKey": "sink"})
        rest = client.post(
            "/api/credentials", json={"appKey": "sink", "credential": {"token": "r"}}
        )
        rest_key = rest.json()["credentialKey"]
        rest_deleted = client.delete(f"/api/credentials/{rest_key}")
    with live.client("globex") as client:
        foreign = batch_mutation(
            client, ("credentials.delete", {"credentialKey": "sink", "appKey": "sink"})
        )
    assert tested is False
    assert not_api_token.json()[0]["error"]["data"]["code"] == "BAD_REQUEST"
    key = added["credentialKey"]
    assert [c["credentialKey"] for c in listed] == ["sink", key] or key in {
        c["credentialKey"] for c in listed
    }
    assert bad_field.json()[0]["error"]["data"]["code"] == "BAD_REQUEST"
    assert automation["action"]["credentialKey"] == key
    assert in_use.json()[0]["error"]["data"]["code"] == "CONFLICT"
    assert deleted is None and key not in {c["credentialKey"] for c in after}
    assert rest.status_code == 201 and rest.json()["credentialType"] == "PRIMARY"
    assert rest_deleted.status_code == 204
    # globex's `sink` is given by its consumer file: nothing stored to delete
    assert foreign.json()[0]["error"]["data"]["code"] == "NOT_FOUND"
    assert "new-sink-token-77" not in json.dumps([listed, added, after])


def test_an_automation_of_a_jwt_app_names_the_consumer_as_its_credential(
    live: LiveEnvironment,
) -> None:
    crm = {
        "name": "Orders to the CRM",
        "trigger": {**WRITTEN_OUT["trigger"]},
        "action": {
            "appKey": "crm",
            "actionKey": "note",
            "credentialKey": "acme",  # what apps.credentials offers for a jwt App
            "inputParams": {"order_id": "{{payload.order_id}}", "text": "from the token"},
        },
    }
    with live.client("acme") as client:
        created = mutate(client, "automations.create", crm)
    stored = live.call(
        lambda: live.runtime.store.get_automation("acme", created["rolloutYaml"]["key"])
    )
    assert created["status"] == "READY" and created["action"]["credentialKey"] == "acme"
    assert stored is not None and "credential" not in stored.definition["action"]


def test_inputs_that_are_not_json_or_too_large_are_refused_per_trpc(live: LiveEnvironment) -> None:
    limit = live.runtime.config.current.settings.runtime.limits.max_payload_bytes
    with live.client("acme") as client:
        not_json = client.get(
            "/api/trpc/apps.authInfo,actions.list", params={"batch": "1", "input": "{nope"}
        )
        nan = client.get("/api/trpc/apps.authInfo", params={"batch": "1", "input": '{"0": NaN}'})
        huge = client.post(
            "/api/trpc/analytics.logEvent",
            params={"batch": "1"},
            content=b'{"0": {"eventType": "' + b"x" * limit + b'"}}',
            headers={"content-type": "application/json"},
        )
        not_batch_object = client.get(
            "/api/trpc/apps.authInfo", params={"batch": "1", "input": "[1]"}
        )
    assert not_json.status_code == 400
    assert [e["error"]["data"]["code"] for e in not_json.json()] == ["PARSE_ERROR"] * 2
    assert nan.json()[0]["error"]["data"]["code"] == "PARSE_ERROR"
    assert huge.status_code == 413
    assert huge.json()[0]["error"]["data"]["code"] == "PAYLOAD_TOO_LARGE"
    assert not_batch_object.json()[0]["error"]["data"]["code"] == "BAD_REQUEST"
