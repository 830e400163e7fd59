"""The shipped example project is also the quick start: it must validate and its tests pass,
through the real command line a user types."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_validate_all_passes_on_the_examples_without_a_warning() -> None:
    result = cli("validate", "--all", "--format", "json", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    # prod's secrets are set only on its hosts: prod says `validate: { ignore: [RY501] }`
    assert report == {"diagnostics": [], "errors": 0, "warnings": 0}


def test_validate_env_prod_fails_on_its_unset_secrets_as_run_would() -> None:
    result = cli("validate", "--env", "prod", "--format", "json", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert {d["code"] for d in report["diagnostics"]} == {"RY501"}
    assert report["errors"] == len(report["diagnostics"]) >= 10
    assert report["warnings"] == 0


def test_dev_environment_needs_no_variable_at_all() -> None:
    result = cli("validate", "--env", "dev", "--strict", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def test_offline_tests_pass_on_the_examples() -> None:
    result = cli("test", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == 0
    files = {t["file"] for t in report["tests"]}
    for app in ("slack", "shopify", "github", "hubspot", "stripe", "formflow"):
        assert f"connectors/{app}.yaml" in files, f"{app} has no offline test"
    assert sum(1 for f in files if f.startswith("automations/")) >= 3


def test_test_command_selects_with_k_and_reports_counts() -> None:
    result = cli("test", "-k", "slack")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    passed = int(last.split()[0])
    assert passed >= 1
    assert "shopify.yaml" not in result.stdout.replace("new-order-to-slack", "")


def test_prod_runs_a_frozen_release_identical_to_the_promoted_files() -> None:
    release = REPO / "environments" / "prod" / "release"
    manifest = (release / "release.yaml").read_text()
    assert "promoted_from: dev" in manifest
    for folder in ("connectors", "automations"):
        for path in (REPO / folder).glob("*.yaml"):
            copy = release / folder / path.name
            assert copy.read_bytes() == path.read_bytes(), f"{copy} differs from {path}"
