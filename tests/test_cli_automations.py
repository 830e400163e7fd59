"""`rollout-yaml automations import|list|export` on an environment's SQLite database, no daemon
running: consumer-file YAML in, checked as every API write is, and out again the same."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from runner_env import copy_project, environ

from rollout_yaml.cli.automations import automations

IMPORTED = {
    "consumer": "acme",
    "automations": {
        "big-orders": {
            "trigger": {"app": "partner", "trigger": "order-created"},
            "filter": "payload.total >= `100`",
            "action": {
                "app": "sink",
                "action": "post-message",
                "credential": "sink",
                "input": {"text": "Big order {{ payload.order_id }}"},
            },
            "enabled": False,
        }
    },
}


def run(project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner(env=environ("http://127.0.0.1:9")).invoke(
        automations, [*args, "--env", "test", "--project", str(project)]
    )
    return result.exit_code, result.output


def test_imported_yaml_is_listed_with_the_files_and_exported_the_same(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    source = tmp_path / "in.yaml"
    source.write_text(yaml.safe_dump(IMPORTED))
    code, out = run(project, "import", str(source))
    assert code == 0 and "acme/big-orders: created" in out, out
    code, out = run(project, "import", str(source))
    assert code == 0 and "acme/big-orders: updated" in out, out

    code, out = run(project, "list", "--consumer", "acme", "--format", "json")
    assert code == 0, out
    listed = {a["key"]: a for a in json.loads(out)["automations"]}
    assert listed["big-orders"]["source"] == "api" and listed["big-orders"]["version"] == 2
    assert listed["big-orders"]["enabled"] is False
    assert listed["orders-to-sink"]["source"] == "file"

    code, out = run(project, "export", "--consumer", "acme")
    assert code == 0 and yaml.safe_load(out) == IMPORTED, out


def test_an_import_that_fails_the_checks_names_the_code_and_path(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    broken = json.loads(json.dumps(IMPORTED))
    broken["automations"]["big-orders"]["action"]["action"] = "post-mesage"
    source = tmp_path / "in.yaml"
    source.write_text(yaml.safe_dump(broken))
    code, out = run(project, "import", str(source))
    assert code == 1
    assert "$.action.action: [RY203] app `sink` has no action `post-mesage`" in out
    code, out = run(project, "export")
    assert code == 0 and out == ""  # nothing stored
