"""`promote --check --database URL`: the target's automations created over the API (stored in
its database, which `gitops/` never opens) checked against the source's connectors and
blueprints; each one that would turn invalid is named as a breakage."""

from __future__ import annotations

import asyncio

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.loader import load_definitions, load_environment
from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.config.project import Layout
from rollout_yaml.expr.automation_check import check_automation, runtime_display
from rollout_yaml.expr.compiler import compile_environment
from rollout_yaml.gitops.promote import Breakage, Plan
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import StoredAutomation, StoredCredential


def runtime_breakages(layout: Layout, plan: Plan, database: str) -> tuple[int, list[Breakage]]:
    """How many stored automations were checked, and those that would turn invalid."""
    definitions = load_definitions(plan.source_root, layout)
    config, _ = load_environment(layout, plan.target, definitions=definitions)
    if config is None:
        return 0, []  # the target cannot load: the plan already says why
    compiled, _ = compile_environment(config)
    stored, credentials = asyncio.run(_read(database, layout, plan.target))
    broken = []
    for automation in stored:
        known: dict[str, Credential] = {
            c.key: Credential(app=c.app, stored=True)
            for c in credentials
            if c.consumer == automation.consumer
        }
        declared = compiled.consumers.get(automation.consumer)
        if declared is not None:
            known.update(declared.credentials)
        checked = check_automation(
            compiled,
            automation.consumer,
            automation.key,
            automation.definition,
            automation.enabled,
            known,
        )
        display = runtime_display(automation.consumer, automation.key)
        for problem in checked.problems:
            diagnostic = Diagnostic(
                problem.code, f"{problem.path}: {problem.message}", display, hint=problem.help
            )
            broken.append(
                Breakage(
                    diagnostic,
                    "would turn invalid",
                    consumer=automation.consumer,
                    automation=automation.key,
                )
            )
    return len(stored), broken


async def _read(
    database: str, layout: Layout, env: str
) -> tuple[list[StoredAutomation], list[StoredCredential]]:
    store = open_store(database, layout.env_dir(env))
    await store.open()
    try:
        return await store.list_automations(), await store.list_credentials()
    finally:
        await store.close()
