"""A definition written over the API is checked exactly as `validate` checks it in a consumer
file: `validate` itself is the oracle (the same definition written into the consumer's file),
and each API diagnostic carries the JSON path of what it is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from runner_env import SECRETS, compile_env, copy_project

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.automation_check import check_automation
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile

BLUEPRINT = {
    "blueprint": "order-to-chat",
    "name": "Orders to the chat",
    "params": {
        "type": "object",
        "required": ["prefix"],
        "properties": {"prefix": {"type": "string"}, "limit": {"type": "integer"}},
        "additionalProperties": False,
    },
    "trigger": {"app": "partner", "trigger": "order-created"},
    "action": {
        "app": "sink",
        "action": "post-message",
        "input": {"text": "{{ params.prefix }} {{ payload.order_id }}"},
    },
}
SINK = "http://127.0.0.1:9"

CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "unknown blueprint": ({"blueprint": "order-to-chta"}, {"$.blueprint"}),
    "param typo and missing": (
        {"blueprint": "order-to-chat", "params": {"prefx": "x"}, "credentials": {"action": "sink"}},
        {"$.params.prefx", "$.params"},
    ),
    "param of the wrong type": (
        {
            "blueprint": "order-to-chat",
            "params": {"prefix": "x", "limit": "ten"},
            "credentials": {"action": "sink"},
        },
        {"$.params.limit"},
    ),
    "unknown credential": (
        {"blueprint": "order-to-chat", "params": {"prefix": "x"}, "credentials": {"action": "snk"}},
        {"$.credentials.action"},
    ),
    "no credential": ({"blueprint": "order-to-chat", "params": {"prefix": "x"}}, {"$.credentials"}),
    "unknown field": ({"blueprint": "order-to-chat", "parms": {}}, {"$.parms"}),
    "inline: action typo, bad filter, unknown payload field": (
        {
            "trigger": {"app": "partner", "trigger": "order-created"},
            "filter": "payload.total >",
            "action": {
                "app": "sink",
                "action": "post-mesage",
                "credential": "sink",
                "input": {"text": "{{ payload.ordr_id }}"},
            },
        },
        {"$.action.action", "$.filter"},
    ),
    "inline: missing input": (
        {
            "trigger": {"app": "partner", "trigger": "order-created"},
            "action": {"app": "sink", "action": "deliver", "credential": "sink", "input": {}},
        },
        {"$.action.input"},
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_project(tmp_path_factory.mktemp("check"))
    (project / "automations").mkdir()
    (project / "automations" / "order-to-chat.yaml").write_text(yaml.safe_dump(BLUEPRINT))
    return project


@pytest.fixture(scope="module")
def env(project: Path) -> CompiledEnvironment:
    return compile_env(project, SINK)


def validate_says(project: Path, definition: dict[str, Any]) -> set[tuple[str, str]]:
    """What `validate` reports about automation `probe` written into acme's consumer file."""
    path = project / "environments/test/consumers/acme.yaml"
    original = path.read_text()
    data = yaml.safe_load(original)
    data["automations"] = {"probe": definition}
    path.write_text(yaml.safe_dump(data))
    try:
        _, diagnostics = load_and_compile(
            Layout(project),
            "test",
            missing_secret=Severity.ERROR,
            environ={**SECRETS, "SINK_URL": SINK},
        )
    finally:
        path.write_text(original)
    return {(d.code, d.message) for d in diagnostics if d.is_error}


@pytest.mark.parametrize("name", CASES)
def test_an_api_definition_gets_exactly_what_validate_says(
    name: str, project: Path, env: CompiledEnvironment
) -> None:
    definition, paths = CASES[name]
    checked = check_automation(
        env, "acme", "probe", definition, True, env.consumers["acme"].credentials
    )
    assert not checked.ok
    assert {(p.code, p.message) for p in checked.problems} == validate_says(project, definition)
    assert paths <= {p.path for p in checked.problems}


def test_a_valid_definition_compiles_with_the_consumers_params(env: CompiledEnvironment) -> None:
    definition = {
        "blueprint": "order-to-chat",
        "params": {"prefix": "New"},
        "credentials": {"action": "sink"},
    }
    checked = check_automation(
        env, "acme", "probe", definition, False, env.consumers["acme"].credentials
    )
    assert checked.ok and checked.automation is not None
    assert not checked.automation.enabled and checked.automation.action_key == "post-message"
    assert checked.automation.params.get("prefix") == "New"
