"""`promote --check --database URL`: the target's automations created over the API, checked
against the source's release before it is promoted; each one that would turn invalid is named."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from gitops_repo import cli, commit_all, copy_fixture, edit, init_repo

ARCHIVE = """\
  archive:
    name: Archive an order
    input_schema: { type: object, required: [text], properties: { text: { type: string } } }
    request: { method: POST, path: /archive, json: { text: "{{ input.text }}" } }
"""
STORED = {
    "consumer": "acme",
    "automations": {
        "archive-orders": {
            "trigger": {"app": "partner", "trigger": "order-created"},
            "action": {
                "app": "sink",
                "action": "archive",
                "credential": "sink",
                "input": {"text": "Order {{ payload.order_id }}"},
            },
        }
    },
}


def test_a_release_removing_an_action_names_the_api_automations_using_it(
    tmp_path: Path,
) -> None:
    repo = copy_fixture(tmp_path)
    sink = repo / "connectors" / "sink.yaml"
    sink.write_text(sink.read_text() + ARCHIVE)
    init_repo(repo)
    commit_all(repo, "project with an archive action")
    assert cli(repo, "promote", "dev", "prod").returncode == 0
    commit_all(repo, "promote")
    stored = tmp_path / "stored.yaml"
    stored.write_text(yaml.safe_dump(STORED))
    imported = cli(repo, "automations", "import", "--env", "prod", str(stored))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    database = f"sqlite:///{repo / 'environments/prod/.rollout/state.db'}"

    fine = cli(repo, "promote", "dev", "prod", "--check", "--database", database)
    assert fine.returncode == 0, fine.stdout + fine.stderr

    edit(sink, ARCHIVE, "")
    check = cli(
        repo, "promote", "dev", "prod", "--check", "--database", database, "--format", "json"
    )
    assert check.returncode == 1, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert [(b["consumer"], b["automation"], b["code"]) for b in report["broken"]] == [
        ("acme", "archive-orders", "RY203")
    ]
    assert report["broken"][0]["reason"] == "would turn invalid"
    without = cli(repo, "promote", "dev", "prod", "--check")
    assert without.returncode == 0  # the files alone break nothing
