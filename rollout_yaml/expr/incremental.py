"""A new `CompiledEnvironment` from the running one with one consumer's part changed.

Everything else (apps, blueprints, the other consumers' automations) is shared with the running
environment, so a change costs one consumer, not the whole environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from types import MappingProxyType

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.loader import Loaded
from rollout_yaml.config.models import Consumer
from rollout_yaml.config.references import check_consumer
from rollout_yaml.expr.automation_check import is_runtime
from rollout_yaml.expr.compile_automations import AutomationCompiler
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.compiler import consumer_secrets
from rollout_yaml.expr.context import CompileContext

Change = tuple[tuple[CompiledAutomation, ...], tuple[CompiledAutomation, ...]]
"""(removed, added): what the match index needs to update itself."""


def with_automations(
    env: CompiledEnvironment,
    put: Iterable[CompiledAutomation] = (),
    drop: Iterable[tuple[str, str]] = (),
) -> tuple[CompiledEnvironment, Change]:
    """`env` with automations added or replaced (`put`) and removed (`drop`)."""
    automations = env.automations.copy()  # type: ignore[attr-defined]
    removed: list[CompiledAutomation] = []
    added: list[CompiledAutomation] = []
    for ref in drop:
        gone = automations.pop(ref, None)
        if gone is not None:
            removed.append(gone)
    for automation in put:
        ref = (automation.consumer, automation.key)
        previous = automations.get(ref)
        if previous is not None:
            removed.append(previous)
        automations[ref] = automation
        added.append(automation)
    changed = dataclasses.replace(env, automations=MappingProxyType(automations))
    return changed, (tuple(removed), tuple(added))


def compile_consumer_file(
    env: CompiledEnvironment, loaded: Loaded[Consumer], ctx: CompileContext | None = None
) -> tuple[CompiledEnvironment | None, Change, list[Diagnostic]]:
    """`env` with the consumer file `loaded` compiled in place of that consumer's file as it was
    (its runtime automations stay), with the diagnostics `validate` gives the file; None when
    one of them is an error (the running consumer stays as it is)."""
    key = loaded.model.consumer
    config = env.source
    consumers = config.consumers.copy()  # type: ignore[attr-defined]
    consumers[key] = loaded
    files = config.files
    display = loaded.source.display if loaded.source else None
    if display is not None and display not in files:
        files = (*files, display)
    source = dataclasses.replace(config, consumers=MappingProxyType(consumers), files=files)
    diagnostics = check_consumer(loaded, source)
    ctx = ctx or CompileContext()
    start = len(ctx.diagnostics)
    compiler = AutomationCompiler(ctx, env.name, env.apps)
    compiled_consumer, owned = compiler.consumer(loaded, env.blueprints)
    diagnostics.extend(ctx.diagnostics[start:])
    if any(d.is_error for d in diagnostics):
        return None, ((), ()), diagnostics
    previous = config.consumers.get(key)
    written = previous.model.automations if previous is not None else {}
    old = [
        (key, name)
        for name in written
        if (key, name) in env.automations and not is_runtime(env.automations[(key, name)])
    ]
    changed, change = with_automations(env, owned, drop=old)
    all_consumers = env.consumers.copy()  # type: ignore[attr-defined]
    all_consumers[key] = compiled_consumer
    changed = dataclasses.replace(
        changed,
        source=source,
        consumers=MappingProxyType(all_consumers),
        secret_values=env.secret_values | consumer_secrets(source, loaded),
    )
    return changed, change, diagnostics
