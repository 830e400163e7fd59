"""What a partner copies for CI works on the example project: the pre-commit hooks this repo
publishes (through pre-commit itself: `pre-commit try-repo` clones this repository, installs it
in a hook environment and runs every hook), and the GitHub Actions workflow in docs/ci/
(actionlint, the pinned install, each of its rollout-yaml commands)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import precommit_run
import pytest
import yaml
from packaging.requirements import Requirement
from pre_commit.clientlib import load_manifest

from rollout_yaml.config.diagnostics import Diagnostic, format_github

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / "docs/ci/github-actions.yml"
BIN = Path(sys.executable).parent


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
    assert hooks["rollout-yaml-promote-check"]["args"] == ["dev", "prod"]
    for key, hook in hooks.items():
        assert hook["language"] == "python" and hook["pass_filenames"] is False
        done = run([*shlex.split(hook["entry"]), *hook["args"]])
        assert done.returncode == 0, f"{key}: {done.stdout}{done.stderr}"
    manifest = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert re.search(r"rev: \"[0-9a-f]{40}\"", manifest), "the comment says which rev to use"


def test_the_workflow_passes_actionlint() -> None:
    done = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # and actionlint does find what is wrong in a workflow (it is not a stub that passes all)
    broken = WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest")
    failing = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", "-"],
        input=broken,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failing.returncode == 1 and "ubuntu-lastest" in failing.stdout, failing.stdout


def test_the_workflow_installs_rollout_yaml_from_a_pinned_commit() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = workflow["env"]
    assert re.fullmatch(r"[0-9a-f]{40}", env["ROLLOUT_YAML_COMMIT"]), "a whole commit sha"
    (install,) = [
        step["run"]
        for step in workflow["jobs"]["check"]["steps"]
        if "pip install" in step.get("run", "")
    ]
    spec = shlex.split(install)[-1]
    for name, value in env.items():
        spec = spec.replace("${" + name + "}", value)
    requirement = Requirement(spec)
    assert requirement.name == "rollout-yaml" and not requirement.specifier  # no `==0.1.0`
    assert requirement.url == f"git+{env['ROLLOUT_YAML_REPOSITORY']}@{env['ROLLOUT_YAML_COMMIT']}"


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


def test_pre_commit_try_repo_installs_this_repository_and_every_hook_passes(
    request: pytest.FixtureRequest,
) -> None:
    started = request.config.stash.get(precommit_run.KEY, None)  # started at collection
    if started is None:
        started = request.config.stash[precommit_run.KEY] = precommit_run.start()
    code, output = started.result()
    assert code == 0, output
    for name in ("rollout-yaml validate", "rollout-yaml test", "rollout-yaml promote --check"):
        assert re.search(rf"^{re.escape(name)}\.+Passed$", output, re.M), output
