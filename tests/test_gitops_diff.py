"""`rollout-yaml diff SRC DST`: each kind of change, as people read it (text) and as programs
do (`--format json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gitops_repo import cli, copy_fixture, edit


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """dev and prod run the same files: promoted once, nothing changed since."""
    project = copy_fixture(tmp_path)
    done = cli(project, "promote", "dev", "prod")
    assert done.returncode == 0, done.stdout + done.stderr
    return project


def diff(project: Path) -> tuple[str, dict[str, Any]]:
    text = cli(project, "diff", "dev", "prod")
    assert text.returncode == 0, text.stdout + text.stderr
    data = cli(project, "diff", "dev", "prod", "--format", "json")
    assert data.returncode == 0, data.stdout + data.stderr
    return text.stdout, json.loads(data.stdout)


def app(report: dict[str, Any], key: str) -> dict[str, Any]:
    return next(a for a in report["apps"] if a["app"] == key)


def item(entries: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(e for e in entries if e["key"] == key)


def test_nothing_changed(project: Path) -> None:
    text, report = diff(project)
    assert text.strip() == "dev → prod: no change (prod already runs what dev runs)"
    assert report["changed"] is False and report["apps"] == [] and report["blueprints"] == []


def test_every_kind_of_change_is_named_in_text_and_json(project: Path) -> None:
    sink = project / "connectors/sink.yaml"
    partner = project / "connectors/partner.yaml"
    blueprint = project / "automations/orders-to-sink.yaml"
    # 1. a version change
    edit(sink, "version: 1.0.0", "version: 2.0.0")
    # 2. an auth type change
    edit(sink, "auth: { type: bearer }", "auth: { type: basic }")
    # 3. a changed request
    edit(sink, "path: /orders/{{ input.order_id }}", "path: /v2/orders/{{ input.order_id }}")
    # 4. a new required input and a new optional one
    edit(sink, "required: [order_id, text]", "required: [order_id, text, channel]")
    edit(
        sink,
        "        text: { type: string }\n",
        "        text: { type: string }\n        channel: { type: string }\n"
        "        note: { type: string }\n",
    )
    # 5. a removed action and an added one
    text = sink.read_text()
    sink.write_text(
        text[: text.index("  post-message:")]
        + "  archive:\n    name: Archive\n    request: { method: DELETE, path: /archive }\n"
    )
    # 6. a payload field gone and a trigger added
    edit(
        partner, "        customer: { type: object, properties: { name: { type: string } } }\n", ""
    )
    partner.write_text(partner.read_text() + "  order-paid:\n    name: Order Paid\n    push: {}\n")
    # 7. a new App
    (project / "connectors/crm.yaml").write_text(
        "app: crm\nname: CRM\nversion: 0.3.0\nbase_url: https://crm.invalid\n"
        "actions:\n  upsert:\n    name: Upsert\n    request: { method: PUT, path: /contacts }\n"
    )
    # 8. a blueprint's mapping changed, and a new blueprint
    edit(
        blueprint, "{{ params.prefix | default('Order') }}", "{{ params.prefix | default('Sale') }}"
    )
    (project / "automations/paid-to-crm.yaml").write_text(
        "blueprint: paid-to-crm\nname: Paid orders to the CRM\n"
        "trigger: { app: partner, trigger: order-paid }\n"
        "action: { app: crm, action: upsert }\n"
    )

    text, report = diff(project)

    expected_lines = [
        "~ app sink: version 1.0.0 → 2.0.0",
        "    auth: type bearer → basic",
        "  + action archive",
        "  ~ action deliver (input_schema, request)",
        "      input_schema: new required input `channel`",
        "      input_schema: new optional input `note`",
        "      request.path: `/orders/{{ input.order_id }}` → `/v2/orders/{{ input.order_id }}`",
        "  - action post-message",
        "~ app partner: version 1.0.0 (unchanged)",
        "  + trigger order-paid",
        "  ~ trigger order-created (payload_schema)",
        "      payload_schema: field `customer` removed",
        "+ app crm 0.3.0 (new)",
        "  + action upsert",
        "~ blueprint orders-to-sink (mapping)",
        "+ blueprint paid-to-crm",
        "    partner/order-created → sink/deliver",
    ]
    lines = text.splitlines()
    for line in expected_lines[:-1]:
        assert line in lines, f"{line!r} not in:\n{text}"
    assert "    partner/order-paid → crm/upsert" in lines
    assert any(
        line.startswith("    action.input.text: `{{ params.prefix | default('Order') }}")
        for line in lines
    ), text
    assert lines[-1] == (
        "files: +connectors/crm.yaml, ~connectors/partner.yaml, ~connectors/sink.yaml, "
        "~automations/orders-to-sink.yaml, +automations/paid-to-crm.yaml"
    )

    assert report["changed"] is True
    sink_diff = app(report, "sink")
    assert sink_diff["change"] == "changed"
    assert sink_diff["version"] == {"from": "1.0.0", "to": "2.0.0"}
    assert sink_diff["aspects"] == ["auth"]
    assert sink_diff["details"] == ["auth: type bearer → basic"]
    deliver = item(sink_diff["actions"], "deliver")
    assert deliver["change"] == "changed"
    assert deliver["aspects"] == ["input_schema", "request"]
    assert "input_schema: new required input `channel`" in deliver["details"]
    assert item(sink_diff["actions"], "post-message")["change"] == "removed"
    assert item(sink_diff["actions"], "archive")["change"] == "added"
    partner_diff = app(report, "partner")
    assert partner_diff["version"] == {"from": "1.0.0", "to": "1.0.0"}
    created = item(partner_diff["triggers"], "order-created")
    assert created["aspects"] == ["payload_schema"]
    assert created["details"] == ["payload_schema: field `customer` removed"]
    assert item(partner_diff["triggers"], "order-paid")["change"] == "added"
    crm = app(report, "crm")
    assert crm["change"] == "added" and crm["version"] == {"from": None, "to": "0.3.0"}
    assert item(report["blueprints"], "orders-to-sink")["aspects"] == ["mapping"]
    assert item(report["blueprints"], "paid-to-crm")["change"] == "added"
    assert report["files"] == {
        "added": ["connectors/crm.yaml", "automations/paid-to-crm.yaml"],
        "changed": [
            "connectors/partner.yaml",
            "connectors/sink.yaml",
            "automations/orders-to-sink.yaml",
        ],
        "removed": [],
    }


def test_removed_app_and_blueprint(project: Path) -> None:
    (project / "connectors/partner.yaml").unlink()
    (project / "automations/orders-to-sink.yaml").unlink()

    text, report = diff(project)

    assert "- app partner 1.0.0 (removed)" in text.splitlines()
    assert "  - trigger order-created" in text.splitlines()
    assert "- blueprint orders-to-sink" in text.splitlines()
    partner = app(report, "partner")
    assert partner["change"] == "removed" and partner["version"] == {"from": "1.0.0", "to": None}
    assert item(report["blueprints"], "orders-to-sink")["change"] == "removed"
    assert report["files"]["removed"] == [
        "connectors/partner.yaml",
        "automations/orders-to-sink.yaml",
    ]


SHARED = """app: partner
name: Partner App
version: 1.0.0
base_url: http://partner.invalid
schemas:
  order:
    type: object
    required: [order_id, total]
    properties:
      order_id: { type: integer }
      total: { type: number }
      customer: { type: object, properties: { name: { type: string } } }
triggers:
  order-created:
    name: Order Created
    payload_schema: { $ref: "#/schemas/order" }
    push: {}
"""


def test_a_shared_schema_change_shows_on_the_trigger_that_uses_it(project: Path) -> None:
    partner = project / "connectors/partner.yaml"
    partner.write_text(SHARED)
    text, report = diff(project)
    assert "partner" not in {a["app"] for a in report["apps"] if a["triggers"]}, text

    partner.write_text(
        SHARED.replace("      total:", "      email: { type: string }\n      total:")
    )
    text, report = diff(project)

    created = item(app(report, "partner")["triggers"], "order-created")
    assert created["details"] == ["payload_schema: new optional field `email`"], text
    assert app(report, "partner")["details"] == ["schemas.order: added"]


def test_comments_and_formatting_change_files_not_meaning(project: Path) -> None:
    sink = project / "connectors/sink.yaml"
    sink.write_text("# The sink App, used by tests.\n" + sink.read_text())

    text, report = diff(project)

    assert "no change in meaning (comments, formatting or order only)" in text
    assert text.splitlines()[-1] == "files: ~connectors/sink.yaml"
    assert report["apps"] == [] and report["changed"] is True
    assert report["files"]["changed"] == ["connectors/sink.yaml"]


def test_a_broken_source_file_is_reported_and_fails(project: Path) -> None:
    (project / "connectors/sink.yaml").write_text("app: sink\nname: [Sink\n")
    done = cli(project, "diff", "dev", "prod")
    assert done.returncode == 1
    assert "connectors/sink.yaml:3:1: error[RY001]" in done.stderr


def test_a_trigger_that_changes_kind_says_so_once(project: Path) -> None:
    edit(project / "connectors/partner.yaml", "    push: {}\n", "    webhook: { id: order_id }\n")

    text, report = diff(project)

    created = item(app(report, "partner")["triggers"], "order-created")
    assert created["aspects"] == ["kind"]
    assert created["details"] == ["kind: `push` → `webhook`"]
    assert "  ~ trigger order-created (kind)\n      kind: `push` → `webhook`" in text
