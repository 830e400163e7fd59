"""Compiles blueprints and consumers' automations, checking every mapping against the schemas
of the trigger it reads and the action it feeds."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rollout_yaml.config.loader import Loaded
from rollout_yaml.config.models import Blueprint, Consumer
from rollout_yaml.config.models.consumer import BlueprintAutomation, InlineAutomation
from rollout_yaml.config.source import PathKey, SourceFile
from rollout_yaml.config.suggest import did_you_mean
from rollout_yaml.expr.compiled import (
    CompiledAction,
    CompiledApp,
    CompiledAutomation,
    CompiledBlueprint,
    CompiledConsumer,
    CompiledTrigger,
)
from rollout_yaml.expr.context import AUTOMATION_NAMES, STATIC_NAMES, CompileContext
from rollout_yaml.expr.schemas import Schema, Violation
from rollout_yaml.expr.templates import Params, RenderError, Template
from rollout_yaml.expr.values import Tree, render_tree, templates_in


class AutomationCompiler:
    def __init__(
        self,
        ctx: CompileContext,
        env_name: str,
        apps: Mapping[str, CompiledApp],
    ) -> None:
        self.ctx = ctx
        self.env_name = env_name
        self.apps = apps

    def _trigger(self, app: str, key: str) -> CompiledTrigger | None:
        compiled = self.apps.get(app)
        return compiled.triggers.get(key) if compiled else None

    def _action(self, app: str, key: str) -> CompiledAction | None:
        compiled = self.apps.get(app)
        return compiled.actions.get(key) if compiled else None

    # -- blueprints ----------------------------------------------------------------------

    def blueprint(self, loaded: Loaded[Blueprint]) -> CompiledBlueprint:
        bp, src = loaded.model, loaded.source
        assert src is not None
        params_schema = self.ctx.schema(src, bp.params, ("params",))
        trigger = self._trigger(bp.trigger.app, bp.trigger.trigger)
        action = self._action(bp.action.app, bp.action.action)
        trigger_input = self.ctx.tree(src, bp.trigger.input, ("trigger", "input"), STATIC_NAMES)
        action_input = self.ctx.tree(src, bp.action.input, ("action", "input"), AUTOMATION_NAMES)
        filter_query = self.ctx.query(src, bp.filter, ("filter",))
        self._check_mapping(src, trigger, action, action_input, filter_query, (), bp.params)
        if trigger is not None:
            self._unknown_keys(
                src,
                bp.trigger.input,
                trigger.input_schema,
                ("trigger", "input"),
                f"trigger `{trigger.app}/{trigger.key}` has no input",
                "inputs",
            )
        for at, template in templates_in(trigger_input, ("trigger", "input")):
            self.ctx.check_fields(
                src, bp.params, template.paths("params"), at, "params", "the blueprint's params"
            )
        if action is not None:
            self._check_literal_input(src, action, action_input, ("action", "input"), static={})
        return CompiledBlueprint(
            bp.blueprint, bp, src.display, trigger_input, action_input, filter_query, params_schema
        )

    def _check_mapping(
        self,
        src: SourceFile,
        trigger: CompiledTrigger | None,
        action: CompiledAction | None,
        action_input: Tree,
        filter_query: Any,
        base: PathKey,
        params_schema: Mapping[str, Any] | None,
    ) -> None:
        if trigger is None:
            return
        payload_schema = trigger.payload_schema.schema
        what = f"trigger `{trigger.app}/{trigger.key}`'s payload_schema"
        for at, template in templates_in(action_input, (*base, "action", "input")):
            self.ctx.check_fields(
                src, payload_schema, template.paths("payload"), at, "payload", what
            )
            if params_schema is not None:
                self.ctx.check_fields(
                    src,
                    params_schema,
                    template.paths("params"),
                    at,
                    "params",
                    "the blueprint's params",
                )
        if filter_query is not None:
            self.ctx.check_fields(
                src,
                payload_schema,
                filter_query.field_paths("payload"),
                (*base, "filter"),
                "payload",
                what,
            )

    def _check_literal_input(
        self,
        src: SourceFile,
        action: CompiledAction,
        action_input: Tree,
        at: PathKey,
        static: Mapping[str, Any] | None,
        report_at: PathKey | None = None,
    ) -> None:
        """Required inputs are given; values known before any event satisfy the input_schema.

        With `static` (params, consumer, env), templates that read only those are rendered now.
        """
        given: dict[str, Any] = {}
        dynamic: set[str] = set()
        known = action.input_schema.properties
        for key in action_input or {}:
            if known is not None and key not in known:
                self.ctx.report(
                    src,
                    "RY402",
                    f"action `{action.app}/{action.key}` has no input `{key}`",
                    report_at or (*at, key),
                    key=report_at is None,
                    hint=did_you_mean(key, known, noun="inputs"),
                )
        for key, value in (action_input or {}).items():
            if not isinstance(value, Template):
                if not _has_template(value):
                    given[key] = value
                else:
                    dynamic.add(key)
            elif static is not None and value.names <= STATIC_NAMES and static:
                try:
                    rendered = value.render(static)
                except RenderError:
                    dynamic.add(key)
                    continue
                if rendered is not None:
                    given[key] = rendered
            else:
                dynamic.add(key)
        if action.input_schema.certainly_valid(given, dynamic):
            return  # nothing wrong but inputs that templates fill in at run time
        for violation in self.ctx.violations(action.input_schema, given):
            if violation.validator == "required":
                missing = violation.missing_property
                if missing in dynamic:
                    continue
                self.ctx.report(
                    src,
                    "RY403",
                    f"action `{action.app}/{action.key}` requires input `{missing}`",
                    report_at or at,
                    hint=f"add `{missing}:` under input",
                )
                continue
            if violation.path and violation.path[0] in dynamic:
                continue
            if violation.validator == "additionalProperties" and known is not None:
                continue  # reported above, one key at a time, with a suggestion
            owner = f"`{action.app}/{action.key}`"
            self._refused(
                src, violation, f"input {{}} of {owner}", f"input of {owner}", report_at or at
            )

    # -- consumers -----------------------------------------------------------------------

    def consumer(
        self, loaded: Loaded[Consumer], blueprints: Mapping[str, CompiledBlueprint]
    ) -> tuple[CompiledConsumer, list[CompiledAutomation]]:
        consumer, src = loaded.model, loaded.source
        assert src is not None
        automations = []
        for key, entry in consumer.automations.items():
            if isinstance(entry, BlueprintAutomation):
                compiled = self._from_blueprint(src, consumer, key, entry, blueprints)
            else:
                compiled = self._inline(src, consumer, key, entry)
            if compiled is not None:
                automations.append(compiled)
        return (
            CompiledConsumer(
                consumer.consumer,
                consumer.name or consumer.consumer,
                src.display,
                MappingProxyType(dict(consumer.credentials)),
            ),
            automations,
        )

    def _static(self, consumer: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"params": params, "consumer": {"key": consumer}, "env": self.env_name}

    def _from_blueprint(
        self,
        src: SourceFile,
        consumer: Consumer,
        key: str,
        entry: BlueprintAutomation,
        blueprints: Mapping[str, CompiledBlueprint],
    ) -> CompiledAutomation | None:
        bp = blueprints.get(entry.blueprint)
        if bp is None:
            return None
        base: PathKey = ("automations", key)
        params_ok = self._check_params(src, bp, entry.params, (*base, "params"))
        params = Params(entry.params, set(bp.model.params.get("properties", {})))
        static = self._static(consumer.consumer, params)
        trigger = self._trigger(bp.model.trigger.app, bp.model.trigger.trigger)
        action = self._action(bp.model.action.app, bp.model.action.action)
        trigger_input = self._render_trigger_input(
            # params that fail their schema are one mistake, reported once: not again as
            # each trigger or action input they would render into
            src,
            bp.trigger_input,
            static,
            trigger if params_ok else None,
            (*base, "params"),
        )
        if action is not None and params_ok:
            self._check_literal_input(
                src,
                action,
                bp.action_input,
                (*base, "params"),
                static=static,
                report_at=(*base, "params"),
            )
        return CompiledAutomation(
            consumer=consumer.consumer,
            key=key,
            name=entry.name or bp.model.name,
            enabled=entry.enabled,
            blueprint=bp.key,
            source=src,
            trigger_app=bp.model.trigger.app,
            trigger_key=bp.model.trigger.trigger,
            trigger_credential=entry.credentials.trigger,
            trigger_input=MappingProxyType(trigger_input),
            filter=bp.filter,
            action_app=bp.model.action.app,
            action_key=bp.model.action.action,
            action_credential=entry.credentials.action,
            action_input=bp.action_input,
            params=params,
        )

    def _check_params(
        self, src: SourceFile, bp: CompiledBlueprint, given: Mapping[str, Any], at: PathKey
    ) -> bool:
        """A consumer's params against the blueprint's `params` schema, each problem once and
        in the validator's words; False when there was one."""
        schema = bp.params_schema
        ok = True
        for violation in self.ctx.violations(schema, given):
            if violation.validator == "additionalProperties" and schema.properties is not None:
                continue  # `_unknown_keys` names each one, with a suggestion
            ok = False
            if violation.validator == "required":
                missing = violation.missing_property
                self.ctx.report(
                    src,
                    "RY403",
                    f"blueprint `{bp.key}` requires param `{missing}`",
                    at,
                    hint=f"add `{missing}:` under params",
                )
                continue
            owner = f"blueprint `{bp.key}`"
            self._refused(src, violation, f"param {{}} of {owner}", f"params of {owner}", at)
        known = schema.properties
        if known is not None and any(name not in known for name in given):
            ok = False
        self._unknown_keys(src, given, schema, at, f"blueprint `{bp.key}` has no param", "params")
        return ok

    def _refused(
        self, src: SourceFile, violation: Violation, named: str, whole: str, at: PathKey
    ) -> None:
        """RY402 in the validator's words: `{named}` with the field (`input `text` of …`) when
        the violation is about one, else `{whole}: …`; reported where the value is."""
        field = ".".join(str(p) for p in violation.path)
        message = (
            f"{named.format(f'`{field}`')} {violation.describe()}"
            if field
            else f"{whole}: {violation.describe()}"
        )
        self.ctx.report(src, "RY402", message, (*at, *violation.path))

    def _render_trigger_input(
        self,
        src: SourceFile,
        tree: Tree,
        static: Mapping[str, Any],
        trigger: CompiledTrigger | None,
        at: PathKey,
    ) -> dict[str, Any]:
        try:
            rendered = render_tree(tree, static, drop_null=True)
        except RenderError as exc:
            self.ctx.report(src, "RY402", f"trigger input: {exc}", at)
            return {}
        if trigger is not None and isinstance(rendered, dict):
            self._validate(
                src,
                trigger.input_schema,
                rendered,
                at,
                f"trigger `{trigger.app}/{trigger.key}` input",
            )
        return rendered if isinstance(rendered, dict) else {}

    def _unknown_keys(
        self,
        src: SourceFile,
        given: Mapping[str, Any],
        schema: Schema,
        at: PathKey,
        what: str,
        noun: str,
    ) -> None:
        """Keys the schema does not list are typos far more often than intent: report them."""
        known = schema.properties
        if known is None:
            return
        for key in given:
            if key not in known:
                self.ctx.report(
                    src,
                    "RY402",
                    f"{what} `{key}`",
                    (*at, key),
                    key=True,
                    hint=did_you_mean(key, known, noun=noun),
                )

    def _validate(
        self, src: SourceFile, schema: Schema, value: Any, at: PathKey, what: str
    ) -> None:
        for violation in self.ctx.violations(schema, value):
            if violation.validator == "additionalProperties" and schema.properties is not None:
                continue  # `_unknown_keys` names each one, with a suggestion
            if violation.validator == "required":
                missing = violation.missing_property
                self.ctx.report(src, "RY403", f"{what} `{missing}` is required", at)
                continue
            self._refused(src, violation, f"{what} {{}}", what, at)

    def _inline(
        self, src: SourceFile, consumer: Consumer, key: str, entry: InlineAutomation
    ) -> CompiledAutomation | None:
        base: PathKey = ("automations", key)
        trigger = self._trigger(entry.trigger.app, entry.trigger.trigger)
        action = self._action(entry.action.app, entry.action.action)
        static = self._static(consumer.consumer, {})
        trigger_tree = self.ctx.tree(
            src, entry.trigger.input, (*base, "trigger", "input"), STATIC_NAMES
        )
        if trigger is not None:
            self._unknown_keys(
                src,
                entry.trigger.input,
                trigger.input_schema,
                (*base, "trigger", "input"),
                f"trigger `{trigger.app}/{trigger.key}` has no input",
                "inputs",
            )
        action_input = self.ctx.tree(
            src, entry.action.input, (*base, "action", "input"), AUTOMATION_NAMES
        )
        filter_query = self.ctx.query(src, entry.filter, (*base, "filter"))
        self._check_mapping(src, trigger, action, action_input, filter_query, base, None)
        trigger_input = self._render_trigger_input(
            src, trigger_tree, static, trigger, (*base, "trigger", "input")
        )
        if action is not None:
            self._check_literal_input(
                src, action, action_input, (*base, "action", "input"), static=static
            )
        return CompiledAutomation(
            consumer=consumer.consumer,
            key=key,
            name=entry.name or key,
            enabled=entry.enabled,
            blueprint=None,
            source=src,
            trigger_app=entry.trigger.app,
            trigger_key=entry.trigger.trigger,
            trigger_credential=entry.trigger.credential,
            trigger_input=MappingProxyType(trigger_input),
            filter=filter_query,
            action_app=entry.action.app,
            action_key=entry.action.action,
            action_credential=entry.action.credential,
            action_input=action_input,
            params=Params({}, set()),
        )


def _has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return True
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False
