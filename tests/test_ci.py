"""What a partner copies for CI works on the example project: the pre-commit hooks this repo
publishes, and the GitHub Actions workflow in docs/ci/ (each of its rollout-yaml commands)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from pre_commit.clientlib import load_manifest

from rollout_yaml.config.diagnostics import Diagnostic, format_github

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """A `rollout-yaml …` command line, run as the module in the example project."""
    assert command[0] == "rollout-yaml", command
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", *command[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_pre_commit_hooks_are_a_valid_manifest_and_pass_on_the_examples() -> None:
    hooks = {hook["id"]: hook for hook in load_manifest(str(REPO / ".pre-commit-hooks.yaml"))}
    assert set(hooks) == {
        "rollout-yaml-validate",
        "rollout-yaml-test",
        "rollout-yaml-promote-check",
    }
    args = {"rollout-yaml-promote-check": ["dev", "prod"]}
    for key, hook in hooks.items():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        done = run([*shlex.split(hook["entry"]), *args.get(key, [])])
        assert done.returncode == 0, f"{key}: {done.stdout}{done.stderr}"


def test_the_example_workflow_checks_validate_test_and_promotion_and_passes() -> None:
    workflow = yaml.safe_load((REPO / "docs/ci/github-actions.yml").read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the `on:` key as true
    steps = workflow["jobs"]["check"]["steps"]
    commands = [
        shlex.split(line.split(">>")[0])
        for step in steps
        for line in step.get("run", "").splitlines()
        if line.strip().startswith("rollout-yaml")
    ]
    as_text = [" ".join(c) for c in commands]
    assert "rollout-yaml validate --all --format github" in as_text
    assert "rollout-yaml test" in as_text
    assert "rollout-yaml promote dev prod --check" in as_text
    for command in commands:
        done = run(command)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        assert "::error" not in done.stdout


def test_github_annotations_escape_what_would_end_a_property() -> None:
    # consumer keys may hold `:` (e.g. `org:acme`); `,` would end the `file=` property
    line = format_github(
        [Diagnostic("RY101", "50% off\nnext", "environments/dev/consumers/org:acme,x.yaml", 3, 7)]
    )
    assert line == (
        "::error file=environments/dev/consumers/org%3Aacme%2Cx.yaml,line=3,col=7::"
        "[RY101] 50%25 off%0Anext"
    )
