"""The runner test project, copied to a temp folder, with its secrets and the App's URL."""

from __future__ import annotations

import shutil
from pathlib import Path

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile

FIXTURE = Path(__file__).parent / "fixtures" / "runner_project"
SECRETS = {
    "ROLLOUT_JWT_SECRET": "jwt-secret-for-tests-0123456789abcdef0123456789abcdef-0123456789abcdef",
    "ROLLOUT_ADMIN_TOKEN": "admin-token-for-tests-7f3a9c",
    "ACME_SINK_TOKEN": "acme-sink-token-5d8e2b71",
    "GLOBEX_SINK_TOKEN": "globex-sink-token-a1c4f0e9",
}


def copy_project(tmp: Path) -> Path:
    target = tmp / "project"
    shutil.copytree(FIXTURE, target)
    return target


def environ(sink_url: str) -> dict[str, str]:
    return {**SECRETS, "SINK_URL": sink_url}


def compile_env(project: Path, sink_url: str) -> CompiledEnvironment:
    compiled, diagnostics = load_and_compile(
        Layout(project), "test", missing_secret=Severity.ERROR, environ=environ(sink_url)
    )
    assert compiled is not None and not [d for d in diagnostics if d.is_error], diagnostics
    return compiled
