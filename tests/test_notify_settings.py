"""`notify:` in environment.yaml: each mistake reported with its code, file, line and column,
the secret never shown, and a valid block compiled into the settings."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from rollout_yaml.cli.validate import validate_project
from rollout_yaml.config.diagnostics import Diagnostic, Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiler import load_and_compile

BASE = Path(__file__).resolve().parent / "fixtures" / "base_project"
DEV = "environments/dev/environment.yaml"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
ANCHOR = "runtime:\n"  # the block goes before `runtime:` (line 18 of the base project)


def project_with(tmp_path: Path, block: str) -> Path:
    project = tmp_path / "project"
    shutil.copytree(BASE, project)
    settings = project / DEV
    text = settings.read_text()
    assert text.count(ANCHOR) == 1
    settings.write_text(text.replace(ANCHOR, block + ANCHOR))
    return project


def errors(project: Path, environ: dict[str, str]) -> list[Diagnostic]:
    diagnostics, _ = validate_project(Layout(project), envs=("dev",), environ=environ)
    return [d for d in diagnostics if d.severity is Severity.ERROR]


GOOD = 'notify:\n  url: "${NOTIFY_URL}"\n  secret: "${NOTIFY_SECRET}"\n'


def test_a_valid_block_compiles_with_its_defaults(tmp_path: Path) -> None:
    project = project_with(tmp_path, GOOD)
    environ = {"NOTIFY_URL": "https://partner.example/hooks", "NOTIFY_SECRET": SECRET}
    assert errors(project, environ) == []
    env, diagnostics = load_and_compile(Layout(project), "dev", environ=environ)
    assert env is not None, diagnostics
    notify = env.settings.notify
    assert notify.url == "https://partner.example/hooks"
    assert notify.wants("run.finished") and notify.wants("credential.needs_reauth")
    assert (notify.retry.first, notify.retry.max) == (5.0, 3600.0)
    # the secret (and its key without the prefix) is redacted wherever rollout-yaml prints
    assert SECRET in env.secret_values
    assert SECRET.removeprefix("whsec_") in env.secret_values


def test_several_secrets_while_rotating_are_each_redacted(tmp_path: Path) -> None:
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    environ = {"NOTIFY_URL": "https://partner.example/hooks", "NOTIFY_SECRET": f"{SECRET},{other}"}
    project = project_with(tmp_path, GOOD)
    assert errors(project, environ) == []
    env, diagnostics = load_and_compile(Layout(project), "dev", environ=environ)
    assert env is not None, diagnostics
    for secret in (SECRET, other):
        assert {secret, secret.removeprefix("whsec_")} <= env.secret_values


def test_without_url_nothing_is_wanted(tmp_path: Path) -> None:
    env, diagnostics = load_and_compile(Layout(project_with(tmp_path, "")), "dev", environ={})
    assert env is not None, diagnostics
    assert not env.settings.notify.wants("run.finished")


def test_events_choose_what_is_recorded(tmp_path: Path) -> None:
    block = GOOD + "  events: [automation.created]\n"
    environ = {"NOTIFY_URL": "https://partner.example/hooks", "NOTIFY_SECRET": SECRET}
    env, diagnostics = load_and_compile(
        Layout(project_with(tmp_path, block)), "dev", environ=environ
    )
    assert env is not None, diagnostics
    assert env.settings.notify.wants("automation.created")
    assert not env.settings.notify.wants("run.finished")


CASES = [
    pytest.param(
        GOOD + "  events: [run.finishd]\n",
        {"NOTIFY_SECRET": SECRET},
        "RY104",
        (21, 12),
        "run.finished",
        id="unknown-event",
    ),
    pytest.param(
        f'notify:\n  url: "${{NOTIFY_URL}}"\n  secret: {SECRET}\n',
        {},
        "RY502",
        (20, 11),
        "`notify.secret` is a secret",
        id="literal-secret",
    ),
    pytest.param(
        GOOD,
        {"NOTIFY_SECRET": "not-a-standard-webhooks-secret"},
        "RY104",
        (20, 11),
        "must start with `whsec_`",
        id="secret-without-prefix",
    ),
    pytest.param(
        GOOD,
        {"NOTIFY_SECRET": f"{SECRET},whsec_c2hvcnQ="},
        "RY104",
        (20, 11),
        "secret 2 of 2: the key must be 24 to 64 bytes",
        id="second-secret-while-rotating",
    ),
    pytest.param(
        GOOD,
        {"NOTIFY_SECRET": "whsec_c2hvcnQ="},
        "RY104",
        (20, 11),
        "24 to 64 bytes",
        id="secret-too-short",
    ),
    pytest.param(
        GOOD,
        {"NOTIFY_URL": "ftp://partner.example/hooks", "NOTIFY_SECRET": SECRET},
        "RY104",
        (19, 8),
        "not an http(s) URL",
        id="not-http",
    ),
    pytest.param(
        'notify:\n  url: "${NOTIFY_URL}"\n',
        {},
        "RY103",
        (19, 3),
        "`notify`: `url` needs `secret`",
        id="url-without-secret",
    ),
    pytest.param(
        GOOD + "  retry: { first: 5 }\n",
        {"NOTIFY_SECRET": SECRET},
        "RY105",
        (21, 19),
        "invalid duration",
        id="retry-without-unit",
    ),
    pytest.param(
        GOOD + "  evnets: [run.finished]\n",
        {"NOTIFY_SECRET": SECRET},
        "RY101",
        (21, 3),
        "did you mean `events`?",
        id="unknown-key",
    ),
]


@pytest.mark.parametrize(("block", "environ", "code", "place", "text"), CASES)
def test_mistakes_are_reported_where_they_are(
    tmp_path: Path,
    block: str,
    environ: dict[str, str],
    code: str,
    place: tuple[int, int],
    text: str,
) -> None:
    environ = {"NOTIFY_URL": "https://partner.example/hooks", **environ}
    found = errors(project_with(tmp_path, block), environ)
    shown = "\n".join(f"{d.code} {d.file}:{d.line}:{d.col} {d.message} {d.hint}" for d in found)
    assert [(d.code, d.file, (d.line, d.col)) for d in found] == [(code, DEV, place)], shown
    assert text in shown
    for value in environ.values():
        for part in value.split(","):
            if "whsec" in part or "standard" in part:
                assert part not in shown  # a secret is never echoed, even a malformed one
