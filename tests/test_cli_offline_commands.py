"""`init`, `schema` and `render` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from rollout_yaml.config.source import parse_source

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_scaffolds_a_project_that_validates_and_tests(tmp_path: Path) -> None:
    target = tmp_path / "my-integrations"
    created = cli("init", str(target))
    assert created.returncode == 0, created.stderr
    for name in (
        "connectors/myapp.yaml",
        "automations/welcome-note.yaml",
        "environments/dev/environment.yaml",
        ".gitignore",
        ".schemas/connector.schema.json",
    ):
        assert (target / name).is_file(), name
    assert cli("validate", "--strict", cwd=target).returncode == 0
    tested = cli("test", cwd=target)
    assert tested.returncode == 0, tested.stdout
    assert "2 passed, 0 failed" in tested.stdout


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert cli("init", str(tmp_path)).returncode == 0
    again = cli("init", str(tmp_path))
    assert again.returncode == 2
    assert "nothing written" in again.stderr


def test_schemas_accept_every_shipped_file(tmp_path: Path) -> None:
    assert cli("schema", "--out", str(tmp_path)).returncode == 0
    schemas = {p.name.split(".")[0]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(schemas) == {"connector", "blueprint", "consumer", "environment", "release"}
    kinds = {
        "connector": REPO.glob("connectors/*.yaml"),
        "blueprint": REPO.glob("automations/*.yaml"),
        "consumer": REPO.glob("environments/*/consumers/*.yaml"),
        "environment": REPO.glob("environments/*/environment.yaml"),
        "release": REPO.glob("environments/*/release/release.yaml"),
    }
    checked = 0
    for kind, paths in kinds.items():
        validator = jsonschema.Draft202012Validator(schemas[kind])
        for path in paths:
            data = parse_source(path.read_text(), path, path.name).data  # dates stay strings
            errors = [e.message for e in validator.iter_errors(data)]
            assert not errors, f"{path}: {errors}"
            checked += 1
    assert checked >= 15


def test_schema_rejects_an_unknown_key_like_validate_does(tmp_path: Path) -> None:
    out = cli("schema")
    schema = json.loads(out.stdout)["connector"]
    document = yaml.safe_load((REPO / "connectors/slack.yaml").read_text())
    document["nmae"] = "typo"
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    assert any("nmae" in e.message for e in errors)


ISSUE = {
    "issue_number": 7,
    "title": "Crash on save",
    "body": "boom",
    "url": "https://github.com/globex/hammock-api/issues/7",
    "author": "octocat",
    "labels": ["bug"],
    "repository": "globex/hammock-api",
    "created_at": "2026-11-28T10:00:00Z",
}


def test_render_shows_the_request_with_the_secret_redacted(tmp_path: Path) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps(ISSUE))
    result = cli(
        "render",
        "--env",
        "dev",
        "--consumer",
        "globex",
        "--automation",
        "issues-to-slack",
        "--payload",
        str(payload),
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = json.loads(result.stdout)
    request = shown["request"]
    assert request["method"] == "POST"
    assert request["url"].endswith("/chat.postMessage")
    assert request["json"]["channel"] == "C0GLXENG"
    assert "Crash on save" in request["json"]["text"]
    assert request["headers"]["Authorization"] == "Bearer ***"
    assert "xoxb-dev-globex" not in result.stdout  # the dev default of GLOBEX_SLACK_TOKEN


def test_render_reports_a_payload_the_filter_refuses(tmp_path: Path) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps({**ISSUE, "labels": ["question"]}))
    result = cli(
        "render",
        "--env",
        "dev",
        "--consumer",
        "globex",
        "--automation",
        "issues-to-slack",
        "--payload",
        str(payload),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "filtered" in result.stdout
    assert "POST" not in result.stdout


def test_render_names_a_missing_automation(tmp_path: Path) -> None:
    payload = tmp_path / "issue.json"
    payload.write_text(json.dumps(ISSUE))
    result = cli(
        "render",
        "--env",
        "dev",
        "--consumer",
        "globex",
        "--automation",
        "isues-to-slack",
        "--payload",
        str(payload),
    )
    assert result.returncode == 2
    assert "no automation `isues-to-slack`" in result.stderr
    assert "did you mean `issues-to-slack`?" in result.stderr
