"""Cross-file checks: every name a file uses is defined, and secrets are never literals."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.loader import Definitions, EnvironmentConfig, Loaded
from rollout_yaml.config.models import Blueprint, Connector, Consumer
from rollout_yaml.config.models.consumer import BlueprintAutomation, InlineAutomation
from rollout_yaml.config.models.environment import SECRET_APP_SETTINGS, SECRET_SETTING_PATHS
from rollout_yaml.config.secrets import is_reference
from rollout_yaml.config.source import PathKey, SourceFile
from rollout_yaml.config.suggest import did_you_mean

Connectors = Mapping[str, Loaded[Connector]]


def check_definitions(definitions: Definitions) -> list[Diagnostic]:
    """Checks of connectors and blueprints alone (no environment needed)."""
    out: list[Diagnostic] = []
    for loaded in definitions.connectors.values():
        out.extend(_check_connector_tests(loaded))
    for loaded_bp in definitions.blueprints.values():
        out.extend(check_blueprint(loaded_bp, definitions.connectors))
    return out


def check_references(config: EnvironmentConfig) -> list[Diagnostic]:
    out = check_definitions(config.definitions)
    out.extend(_check_settings(config))
    for loaded_consumer in config.consumers.values():
        out.extend(_check_consumer(loaded_consumer, config))
    return out


def _check_settings(config: EnvironmentConfig) -> Iterator[Diagnostic]:
    source = config.settings.source
    assert source is not None
    raw = source.data
    for path in SECRET_SETTING_PATHS:
        yield from _literal_secret(source, raw, path)
    for app in config.settings.model.apps:
        if app not in config.connectors:
            yield source.diagnostic(
                "RY210",
                f"settings for unknown app `{app}`",
                ("apps", app),
                key=True,
                hint=did_you_mean(app, config.connectors, noun="apps"),
            )
            continue
        for path in SECRET_APP_SETTINGS:
            yield from _literal_secret(source, raw, ("apps", app, *path))


def _literal_secret(source: SourceFile, raw: object, path: PathKey) -> Iterator[Diagnostic]:
    value = _get(raw, path)
    if value is not None and not is_reference(value):
        yield source.diagnostic(
            "RY502",
            f"`{'.'.join(map(str, path))}` is a secret and may not be written literally",
            path,
            hint=f"write `${{{_var_name(path)}}}` and set that variable where it runs",
        )


def _var_name(path: PathKey) -> str:
    return "_".join(str(p) for p in path).upper().replace("-", "_")


def _get(data: object, path: PathKey) -> object:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def _check_connector_tests(loaded: Loaded[Connector]) -> Iterator[Diagnostic]:
    connector, source = loaded.model, loaded.source
    if source is None:
        return
    for index, test in enumerate(connector.tests):
        if test.trigger is not None and test.trigger not in connector.triggers:
            yield source.diagnostic(
                "RY202",
                f"test `{test.name}`: app `{connector.app}` has no trigger `{test.trigger}`",
                ("tests", index, "trigger"),
                hint=did_you_mean(test.trigger, connector.triggers, noun="triggers"),
            )
        if test.action is not None and test.action not in connector.actions:
            yield source.diagnostic(
                "RY203",
                f"test `{test.name}`: app `{connector.app}` has no action `{test.action}`",
                ("tests", index, "action"),
                hint=did_you_mean(test.action, connector.actions, noun="actions"),
            )


def _app_trigger(
    connectors: Connectors, source: SourceFile, app: str, trigger: str, path: PathKey
) -> Iterator[Diagnostic]:
    connector = connectors.get(app)
    if connector is None:
        yield source.diagnostic(
            "RY201",
            f"unknown app `{app}`",
            (*path, "app"),
            hint=did_you_mean(app, connectors, noun="apps"),
        )
    elif trigger not in connector.model.triggers:
        hint = did_you_mean(trigger, connector.model.triggers, noun="triggers")
        if trigger in connector.model.actions:
            hint = f"`{trigger}` is an action of `{app}`, not a trigger"
        yield source.diagnostic(
            "RY202", f"app `{app}` has no trigger `{trigger}`", (*path, "trigger"), hint=hint
        )


def _app_action(
    connectors: Connectors, source: SourceFile, app: str, action: str, path: PathKey
) -> Iterator[Diagnostic]:
    connector = connectors.get(app)
    if connector is None:
        yield source.diagnostic(
            "RY201",
            f"unknown app `{app}`",
            (*path, "app"),
            hint=did_you_mean(app, connectors, noun="apps"),
        )
    elif action not in connector.model.actions:
        hint = did_you_mean(action, connector.model.actions, noun="actions")
        if action in connector.model.triggers:
            hint = f"`{action}` is a trigger of `{app}`, not an action"
        yield source.diagnostic(
            "RY203", f"app `{app}` has no action `{action}`", (*path, "action"), hint=hint
        )


def check_blueprint(loaded: Loaded[Blueprint], connectors: Connectors) -> list[Diagnostic]:
    bp, source = loaded.model, loaded.source
    assert source is not None
    return [
        *_app_trigger(connectors, source, bp.trigger.app, bp.trigger.trigger, ("trigger",)),
        *_app_action(connectors, source, bp.action.app, bp.action.action, ("action",)),
    ]


def check_consumer(loaded: Loaded[Consumer], config: EnvironmentConfig) -> list[Diagnostic]:
    """The cross-file checks of one consumer file (a saved file is checked on its own)."""
    return list(_check_consumer(loaded, config))


def _check_consumer(loaded: Loaded[Consumer], config: EnvironmentConfig) -> Iterator[Diagnostic]:
    consumer, source = loaded.model, loaded.source
    assert source is not None
    raw = source.data
    for key, credential in consumer.credentials.items():
        path: PathKey = ("credentials", key)
        connector = config.connectors.get(credential.app)
        if connector is None:
            yield source.diagnostic(
                "RY201",
                f"credential `{key}`: unknown app `{credential.app}`",
                (*path, "app"),
                hint=did_you_mean(credential.app, config.connectors, noun="apps"),
            )
            continue
        if credential.values is None:
            continue
        fields = connector.model.credential_fields()
        secret = connector.model.secret_fields()
        for name in credential.values:
            if name not in fields:
                yield source.diagnostic(
                    "RY504",
                    f"credential `{key}`: `{credential.app}` credentials have no field `{name}`",
                    (*path, "values", name),
                    key=True,
                    hint=did_you_mean(name, fields, noun="fields"),
                )
            elif name in secret and not is_reference(_get(raw, (*path, "values", name))):
                yield source.diagnostic(
                    "RY502",
                    f"credential `{key}`: `{name}` is a secret and may not be written literally",
                    (*path, "values", name),
                    hint=f"write `${{{key.upper().replace('-', '_')}_{name.upper()}}}` and set "
                    "that variable where the environment runs",
                )
        required = required_fields(connector.model)
        for name in sorted(required - credential.values.keys()):
            yield source.diagnostic(
                "RY504",
                f"credential `{key}` is missing field `{name}` that `{credential.app}` needs",
                (*path, "values"),
                hint=f"add `{name}:` under values",
            )
    for key, automation in consumer.automations.items():
        yield from _check_automation(config, consumer, source, key, automation)


def check_consumer_automation(
    config: EnvironmentConfig,
    consumer: Consumer,
    source: SourceFile,
    key: str,
    automation: BlueprintAutomation | InlineAutomation,
) -> list[Diagnostic]:
    """The cross-file checks of one automation of `consumer` (`validate`'s, for an automation
    written over the API): its blueprint, apps, triggers, actions and credentials exist."""
    return list(_check_automation(config, consumer, source, key, automation))


def required_fields(connector: Connector) -> set[str]:
    """The credential fields a consumer must give (none for OAuth2: the connect flow does)."""
    fields = connector.credential_fields()
    if connector.auth.type == "oauth2":
        return set()  # filled by the connect flow
    implied = {"bearer": {"token"}, "basic": {"username", "password"}}.get(connector.auth.type)
    if implied is not None:
        return implied
    return {name for name, spec in fields.items() if not spec.get("optional")}


def _check_automation(
    config: EnvironmentConfig,
    consumer: Consumer,
    source: SourceFile,
    key: str,
    automation: BlueprintAutomation | InlineAutomation,
) -> Iterator[Diagnostic]:
    path: PathKey = ("automations", key)
    if isinstance(automation, BlueprintAutomation):
        blueprint = config.blueprints.get(automation.blueprint)
        if blueprint is None:
            yield source.diagnostic(
                "RY206",
                f"unknown blueprint `{automation.blueprint}`",
                (*path, "blueprint"),
                hint=did_you_mean(automation.blueprint, config.blueprints, noun="blueprints"),
            )
            return
        roles = (
            (
                "trigger",
                blueprint.model.trigger.app,
                automation.credentials.trigger,
                blueprint.model.trigger.trigger,
            ),
            ("action", blueprint.model.action.app, automation.credentials.action, None),
        )
        for role, app, credential, trigger in roles:
            yield from _credential_use(
                config,
                consumer,
                source,
                app,
                credential,
                (*path, "credentials", role),
                role,
                missing_at=(*path, "credentials"),
                trigger=trigger,
            )
        return
    yield from _app_trigger(
        config.connectors,
        source,
        automation.trigger.app,
        automation.trigger.trigger,
        (*path, "trigger"),
    )
    yield from _app_action(
        config.connectors,
        source,
        automation.action.app,
        automation.action.action,
        (*path, "action"),
    )
    yield from _credential_use(
        config,
        consumer,
        source,
        automation.trigger.app,
        automation.trigger.credential,
        (*path, "trigger", "credential"),
        "trigger",
        missing_at=(*path, "trigger"),
        trigger=automation.trigger.trigger,
    )
    yield from _credential_use(
        config,
        consumer,
        source,
        automation.action.app,
        automation.action.credential,
        (*path, "action", "credential"),
        "action",
        missing_at=(*path, "action"),
    )


def needs_credential(connector: Connector, trigger: str | None) -> bool:
    """Actions of an authenticated App need a credential; of triggers, those that call the App
    (polls, subscribed webhooks) or verify with a credential's secret. Push and schedule
    triggers never do: their events come from the partner or the clock."""
    if connector.auth.type in ("none", "jwt"):  # jwt: the consumer's token carries it
        return False
    if trigger is None:
        return True
    spec = connector.triggers.get(trigger)
    if spec is None or spec.push is not None or spec.schedule is not None:
        return False
    if spec.webhook is not None:
        verify = spec.webhook.verify
        return spec.webhook.subscribe is not None or (
            verify is not None and any("credential" in secret for secret in verify.secrets)
        )
    return True


def _credential_use(
    config: EnvironmentConfig,
    consumer: Consumer,
    source: SourceFile,
    app: str,
    credential: str | None,
    path: PathKey,
    role: str,
    missing_at: PathKey,
    trigger: str | None = None,
) -> Iterator[Diagnostic]:
    connector = config.connectors.get(app)
    if connector is None:
        return
    if credential is None:
        if needs_credential(connector.model, trigger):
            where = (
                "credentials: {" + role + ": …}" if "credentials" in missing_at else "credential: …"
            )
            yield source.diagnostic(
                "RY208",
                f"the {role} uses app `{app}`, which needs a credential",
                missing_at,
                hint=f"add `{where}` naming one of this consumer's `{app}` credentials",
            )
        return
    owned = consumer.credentials.get(credential)
    if owned is None:
        mine = [k for k, c in consumer.credentials.items() if c.app == app]
        yield source.diagnostic(
            "RY204",
            f"consumer `{consumer.consumer}` has no credential `{credential}`",
            path,
            hint=did_you_mean(credential, mine or consumer.credentials, noun="credentials"),
        )
    elif owned.app != app:
        mine = [k for k, c in consumer.credentials.items() if c.app == app]
        yield source.diagnostic(
            "RY205",
            f"credential `{credential}` is for app `{owned.app}`, but the {role} uses `{app}`",
            path,
            hint=(f"use `{mine[0]}`" if mine else f"add a `{app}` credential to this consumer"),
        )
