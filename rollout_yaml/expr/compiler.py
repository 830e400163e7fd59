"""Turns a loaded environment into a `CompiledEnvironment`, with every static check's findings.

`load_and_compile` is what `validate`, `test`, `render` and the runner call.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

from rollout_yaml.config.diagnostics import Diagnostic, Severity
from rollout_yaml.config.loader import (
    Definitions,
    EnvironmentConfig,
    FileCache,
    Loaded,
    load_consumer_file,
    load_environment,
)
from rollout_yaml.config.models import Consumer
from rollout_yaml.config.models.notify import secret_parts
from rollout_yaml.config.progress import Progress
from rollout_yaml.config.project import Layout
from rollout_yaml.config.references import check_consumer, check_definitions, check_references
from rollout_yaml.expr.compile_apps import AppCompiler
from rollout_yaml.expr.compile_automations import AutomationCompiler
from rollout_yaml.expr.compiled import (
    CompiledApp,
    CompiledAutomation,
    CompiledBlueprint,
    CompiledEnvironment,
)
from rollout_yaml.expr.context import CompileContext
from rollout_yaml.expr.parallel import map_forked


def compile_environment(
    config: EnvironmentConfig, ctx: CompileContext | None = None
) -> tuple[CompiledEnvironment, list[Diagnostic]]:
    ctx = ctx or CompileContext()
    start = len(ctx.diagnostics)
    settings = config.settings.model
    apps, automations_compiler, blueprints = _compile_definitions(config, ctx)
    consumers = {}
    automations: dict[tuple[str, str], CompiledAutomation] = {}
    for key, loaded in config.consumers.items():
        consumer, owned = automations_compiler.consumer(loaded, blueprints)
        consumers[key] = consumer
        for automation in owned:
            automations[(automation.consumer, automation.key)] = automation
        ctx.progress.advance()
    compiled = CompiledEnvironment(
        name=config.name,
        settings=settings,
        source=config,
        apps=MappingProxyType(apps),
        blueprints=MappingProxyType(blueprints),
        consumers=MappingProxyType(consumers),
        automations=MappingProxyType(automations),
        secret_values=frozenset(secret_values(config)),
    )
    return compiled, ctx.diagnostics[start:]


def _compile_definitions(
    config: EnvironmentConfig, ctx: CompileContext
) -> tuple[dict[str, CompiledApp], AutomationCompiler, dict[str, CompiledBlueprint]]:
    """The cross-file checks, the environment's Apps and blueprints: what every consumer is
    compiled against."""
    ctx.diagnostics.extend(check_references(config))
    settings = config.settings.model
    apps = {
        key: AppCompiler(ctx, loaded).compile(settings.apps.get(key))
        for key, loaded in config.connectors.items()
    }
    compiler = AutomationCompiler(ctx, config.name, apps)
    blueprints = {key: compiler.blueprint(loaded) for key, loaded in config.blueprints.items()}
    return apps, compiler, blueprints


def check_environment(
    config: EnvironmentConfig,
    ctx: CompileContext,
    processes: int,
    keep: list[object] | None = None,
) -> tuple[list[Diagnostic], int]:
    """What `compile_environment` finds (the same diagnostics, in the same order) and how many
    automations compile, with the consumers compiled in `processes` forked processes (one:
    here). No `CompiledEnvironment` comes of it: this is `validate`'s check, not a runtime's;
    what this process compiled goes to `keep` (so that a one-shot command can exit without
    freeing it)."""
    start = len(ctx.diagnostics)
    _, compiler, blueprints = _compile_definitions(config, ctx)
    consumers = list(config.consumers.values())

    def compile_share(
        share: Sequence[Loaded[Consumer]], progress: Progress
    ) -> tuple[list[Diagnostic], int]:
        mark = len(ctx.diagnostics)
        automations = 0
        for loaded in share:
            compiled = compiler.consumer(loaded, blueprints)
            automations += len(compiled[1])
            if keep is not None:
                keep.append(compiled)
            progress.advance()
        found = ctx.diagnostics[mark:]
        del ctx.diagnostics[mark:]
        return found, automations

    shares = map_forked(compile_share, consumers, processes, ctx.progress)
    for found, _ in shares:
        ctx.diagnostics.extend(found)
    return ctx.diagnostics[start:], sum(count for _, count in shares)


def check_consumer_files(
    config: EnvironmentConfig,
    paths: Sequence[Path],
    ctx: CompileContext,
    processes: int,
    *,
    missing_secret: Severity = Severity.WARNING,
    keep: list[object] | None = None,
) -> tuple[list[Diagnostic], int, int]:
    """`check_environment` for an environment loaded without its consumers
    (`load_environment(..., read_consumers=False)`): the consumer files at `paths` are read,
    checked and compiled in `processes` forked processes, each its own contiguous share, so
    that no file's text or model crosses a process boundary; only the diagnostics come back
    (and two counts). The diagnostics, the consumers that loaded and the automations that
    compiled: the same as loading the consumers with `load_environment` and checking them
    with `check_environment`, up to order (`validate` sorts them), whatever `processes`."""
    start = len(ctx.diagnostics)
    _, compiler, blueprints = _compile_definitions(config, ctx)  # settings, definitions

    def check_share(share: Sequence[Path], progress: Progress) -> tuple[list[Diagnostic], int, int]:
        found: list[Diagnostic] = []
        consumers = automations = 0
        for path in share:
            loaded, diagnostics = load_consumer_file(
                config.layout, config.name, path, config.variables, missing_secret=missing_secret
            )
            found.extend(diagnostics)
            progress.advance()
            if loaded is not None:
                consumers += 1
                found.extend(check_consumer(loaded, config))
                mark = len(ctx.diagnostics)
                compiled = compiler.consumer(loaded, blueprints)
                found.extend(ctx.diagnostics[mark:])
                del ctx.diagnostics[mark:]
                automations += len(compiled[1])
                if keep is not None:
                    keep.append(compiled)
            progress.advance()
        return found, consumers, automations

    shares = map_forked(check_share, paths, processes, ctx.progress, advance=2)
    for found, _, _ in shares:
        ctx.diagnostics.extend(found)
    return (
        ctx.diagnostics[start:],
        sum(consumers for _, consumers, _ in shares),
        sum(automations for _, _, automations in shares),
    )


def compile_definitions(
    definitions: Definitions, ctx: CompileContext | None = None
) -> tuple[dict[str, CompiledApp], dict[str, CompiledBlueprint], list[Diagnostic]]:
    """Connectors and blueprints alone, with default App settings (for `test`, `validate`)."""
    ctx = ctx or CompileContext()
    start = len(ctx.diagnostics)
    ctx.diagnostics.extend(check_definitions(definitions))
    apps = {
        key: AppCompiler(ctx, loaded).compile(None)
        for key, loaded in definitions.connectors.items()
    }
    compiler = AutomationCompiler(ctx, "test", apps)
    blueprints = {key: compiler.blueprint(loaded) for key, loaded in definitions.blueprints.items()}
    return apps, blueprints, ctx.diagnostics[start:]


def secret_values(config: EnvironmentConfig) -> set[str]:
    """Every secret value this environment resolved, so that logs and records can redact them."""
    found: set[str] = set()
    s = config.settings.model
    for value in (s.auth.jwt_secret, s.auth.admin_token, s.encryption_key):
        if value:
            found.add(value)
    if s.notify.secret:
        found.add(s.notify.secret)
        for part in secret_parts(s.notify.secret):
            found.update((part, part.removeprefix("whsec_")))  # the key itself, however quoted
    database_password = _url_password(s.database)
    if database_password:
        found.add(database_password)
    for app in s.apps.values():
        for value in (app.webhook_secret, app.oauth.client_secret if app.oauth else None):
            if value:
                found.add(value)
    for loaded in config.consumers.values():
        found |= consumer_secrets(config, loaded)
    return found


def consumer_secrets(config: EnvironmentConfig, loaded: Loaded[Consumer]) -> set[str]:
    """The secret values one consumer file's credentials resolved."""
    found: set[str] = set()
    for credential in loaded.model.credentials.values():
        connector = config.connectors.get(credential.app)
        if connector is None or credential.values is None:
            continue
        for name in connector.model.secret_fields():
            value = credential.values.get(name)
            if isinstance(value, str) and value:
                found.add(value)
    return found


def _url_password(database: str) -> str | None:
    """The password in a `database:` URL (`postgresql://user:password@host/db`), if any."""
    try:
        password = urlsplit(database).password
    except ValueError:
        return None
    return unquote(password) if password else None


@contextmanager
def collector_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of small dicts and lists and no reference cycles
    worth collecting; pausing the cyclic GC meanwhile makes a large project load ~35 % faster."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_and_compile(
    layout: Layout,
    env: str,
    *,
    missing_secret: Severity = Severity.WARNING,
    environ: Mapping[str, str] | None = None,
    cache: FileCache | None = None,
    ctx: CompileContext | None = None,
) -> tuple[CompiledEnvironment | None, list[Diagnostic]]:
    with collector_paused():
        config, diagnostics = load_environment(
            layout, env, missing_secret=missing_secret, environ=environ, cache=cache
        )
        if config is None:
            return None, diagnostics
        compiled, more = compile_environment(config, ctx)
    return compiled, diagnostics + more
