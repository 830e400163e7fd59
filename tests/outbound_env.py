"""The runner test project with an `echo` App added (basic auth plus a secret `key` field, sent
in the path, the query and a form body) pointing at an EchoServer, and helpers to run acme's
automations on it through the real runtime on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from runner_env import copy_project, environ

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.intake import PushEvent
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import Run, RunQuery, RunStatus

ECHO_KEY = "Sx+7/Yq=&Zp é9"  # a secret with every character that URL and form encoding change
ECHO_PASSWORD = "pw+/=&ü:x"
ECHO_SECRETS = {"ECHO_KEY": ECHO_KEY, "ECHO_PASSWORD": ECHO_PASSWORD}

CONNECTOR: dict[str, Any] = {
    "app": "echo",
    "name": "Echo",
    "version": "1.0.0",
    "base_url": "http://echo.invalid",
    "auth": {"type": "basic", "fields": {"key": {"type": "string", "secret": True}}},
    "defaults": {
        "timeout": "5s",
        "retry": {
            "max_attempts": 3,
            "on_status": [429, 500, 502, 503, 504],
            "backoff": "constant",
            "base": "50ms",
            "max": "50ms",
        },
        "error": "error.message",
    },
    "triggers": {
        "listing": {
            "name": "New things (polled)",
            "payload_schema": {"type": "object"},
            "poll": {
                "every": "1m",
                "request": {"path": "/list", "query": {"after": "{{ cursor }}"}},
                "items": "items",
                "id": "to_string(id)",
                "initial": "emit",
            },
        },
        "hooked": {
            "name": "Things (REST hook)",
            "payload_schema": {"type": "object"},
            "webhook": {
                "subscribe": {
                    "request": {
                        "method": "POST",
                        "path": "/hooks",
                        "json": {"address": "{{ webhook.url }}"},
                    },
                    "id": "hook.id",
                },
            },
        },
    },
    "actions": {
        "send": {
            "name": "Send the key every way",
            "input_schema": {"type": "object"},
            "request": {
                "method": "POST",
                "path": "/send/{{ credential.key }}",
                "query": {"api_key": "{{ credential.key }}"},
                "form": {"key": "{{ credential.key }}", "pw": "{{ credential.password }}"},
            },
            "output": "echo",
            "error": "echo",
        },
        "read": {
            "name": "Read things",
            "input_schema": {"type": "object"},
            "request": {"method": "GET", "path": "/things"},
            "output": "{count: length(items), first: items[0]}",
        },
        "check": {
            "name": "Read with an expression that can raise",
            "input_schema": {"type": "object"},
            "request": {"method": "GET", "path": "/check"},
            "success": "contains(status, 'ok')",
        },
    },
}


def echo_project(
    tmp_path: Path, actions: dict[str, str], triggers: dict[str, str] | None = None
) -> Path:
    """acme has an `echo` credential and one automation per entry (key → action) on
    partner/order-created, plus one per `triggers` entry (key → echo trigger) running `read`,
    and nothing else."""
    project = copy_project(tmp_path)
    (project / "connectors" / "echo.yaml").write_text(json.dumps(CONNECTOR, indent=2))
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(
        env_file.read_text().replace("apps:\n", 'apps:\n  echo:\n    base_url: "${ECHO_URL}"\n', 1)
    )
    consumer = project / "environments/test/consumers/acme.yaml"
    text = (
        "consumer: acme\ncredentials:\n  echo:\n    app: echo\n"
        '    values: { username: ada, password: "${ECHO_PASSWORD}", key: "${ECHO_KEY}" }\n'
        "automations:\n"
    )
    if not actions and not triggers:
        text += "  {}\n"
    for key, action in actions.items():
        body = {
            "trigger": {"app": "partner", "trigger": "order-created"},
            "action": {"app": "echo", "action": action, "credential": "echo", "input": {}},
        }
        text += f"  {key}: {json.dumps(body)}\n"
    for key, trigger in (triggers or {}).items():
        body = {
            "trigger": {"app": "echo", "trigger": trigger, "credential": "echo"},
            "action": {"app": "echo", "action": "read", "credential": "echo", "input": {}},
        }
        text += f"  {key}: {json.dumps(body)}\n"
    consumer.write_text(text)
    return project


def compile_echo(
    project: Path, echo_url: str, sink_url: str = "http://127.0.0.1:9"
) -> CompiledEnvironment:
    compiled, diagnostics = load_and_compile(
        Layout(project),
        "test",
        missing_secret=Severity.ERROR,
        environ={**environ(sink_url), **ECHO_SECRETS, "ECHO_URL": echo_url},
    )
    assert compiled is not None and not [d for d in diagnostics if d.is_error], diagnostics
    return compiled


async def runtime_for(project: Path, echo_url: str, database: str | None = None) -> Runtime:
    store = open_store(database or f"sqlite:///{project / 'state.db'}", project)
    await store.open()
    runtime = Runtime(compile_echo(project, echo_url), store)
    await runtime.start()
    return runtime


DONE = (RunStatus.SUCCEEDED, RunStatus.FAILED)


async def finished_runs(runtime: Runtime, count: int, timeout: float = 15) -> list[Run]:
    """acme's runs once `count` of them are done, each with its attempts."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = await runtime.store.list_runs(RunQuery(consumer="acme", limit=100))
        done = [r for r in runs if r.status in DONE]
        if len(done) >= count:
            full = [await runtime.store.get_run(r.id) for r in done]
            return sorted((r for r in full if r is not None), key=lambda r: r.automation)
        await asyncio.sleep(0.03)
    raise AssertionError(f"acme's runs did not finish: {[(r.automation, r.status) for r in runs]}")


def order(order_id: int = 1) -> PushEvent:
    return PushEvent("partner", "order-created", None, {"order_id": order_id, "total": 5})


def run_actions(tmp_path: Path, echo_url: str, actions: dict[str, str]) -> list[Run]:
    """Push one order for acme and return its runs once each automation's is done."""
    project = echo_project(tmp_path, actions)

    async def scenario() -> list[Run]:
        runtime = await runtime_for(project, echo_url)
        try:
            await runtime.push("acme", [order()])
            return await finished_runs(runtime, len(actions))
        finally:
            await runtime.stop(grace=2)
            await runtime.store.close()

    return asyncio.run(scenario())
