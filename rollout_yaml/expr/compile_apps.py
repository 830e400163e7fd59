"""Compiles one connector: its requests, expressions and schemas, checked against each other."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from rollout_yaml.config.loader import Loaded
from rollout_yaml.config.models import Connector
from rollout_yaml.config.models.connector import Action, ApiKeyAuth, JwtAuth, Trigger
from rollout_yaml.config.models.environment import AppSettings
from rollout_yaml.config.models.request import CursorPaging, NextUrlPaging, Request
from rollout_yaml.config.source import PathKey, SourceFile
from rollout_yaml.expr.compiled import (
    CompiledAction,
    CompiledApp,
    CompiledAuthTest,
    CompiledPoll,
    CompiledRequest,
    CompiledTrigger,
    CompiledWebhook,
)
from rollout_yaml.expr.context import CONNECTOR_NAMES, CompileContext
from rollout_yaml.expr.schemas import SchemaProblem, resolve_refs
from rollout_yaml.expr.values import Tree, templates_in


class AppCompiler:
    """Compiles the parts of one connector; a failing part is reported and left out."""

    def __init__(self, ctx: CompileContext, loaded: Loaded[Connector]) -> None:
        self.ctx = ctx
        self.connector = loaded.model
        self.source: SourceFile | None = loaded.source

    def compile(self, settings: AppSettings | None) -> CompiledApp:
        c, src = self.connector, self.source
        auth_headers: Tree = {}
        auth_query: Tree = {}
        if isinstance(c.auth, ApiKeyAuth | JwtAuth):
            auth_headers = self.ctx.tree(src, c.auth.headers, ("auth", "headers"), CONNECTOR_NAMES)
            auth_query = self.ctx.tree(src, c.auth.query, ("auth", "query"), CONNECTOR_NAMES)
        if c.base_url is None:
            first = next(c.requests(), None)
            if first is not None:
                what, at = first
                self.ctx.report(
                    src,
                    "RY103",
                    f"missing `base_url`: {what} sends a request, and its path starts there",
                    at,
                    key=True,
                    hint="add `base_url: https://…` at the top of the file (only a connector "
                    "that sends no request may leave it out)",
                )
        return CompiledApp(
            key=c.app,
            connector=c,
            file=src.display if src else None,
            # each {{ }} is percent-encoded: a credential value cannot add a host, port or path
            base_url=self.ctx.template(
                src, c.base_url or "", ("base_url",), CONNECTOR_NAMES, url_path=True
            ),
            auth_headers=auth_headers,
            auth_query=auth_query,
            default_headers=self.ctx.tree(
                src, c.defaults.headers, ("defaults", "headers"), CONNECTOR_NAMES
            ),
            default_query=self.ctx.tree(
                src, c.defaults.query, ("defaults", "query"), CONNECTOR_NAMES
            ),
            error=self.ctx.query(src, c.defaults.error, ("defaults", "error")),
            settings=settings or AppSettings(),
            triggers=MappingProxyType({k: self._trigger(k, t) for k, t in c.triggers.items()}),
            actions=MappingProxyType({k: self._action(k, a) for k, a in c.actions.items()}),
            auth_test=self._auth_test(),
        )

    def _auth_test(self) -> CompiledAuthTest | None:
        auth, src = self.connector.auth, self.source
        test = getattr(auth, "test", None)
        if test is None:
            return None
        return CompiledAuthTest(
            request=self.request(test.request, ("auth", "test", "request"), None),
            success=self.ctx.query(src, test.success, ("auth", "test", "success")),
            label=self.ctx.query(src, getattr(auth, "label", None), ("auth", "label")),
        )

    # -- schemas -------------------------------------------------------------------------

    def resolved_schema(self, schema: dict[str, Any], path: PathKey) -> dict[str, Any]:
        try:
            resolved = resolve_refs(schema, self.connector.schemas)
        except SchemaProblem as exc:
            self.ctx.report(self.source, exc.code, str(exc), (*path, *exc.path))
            return {}
        return resolved if isinstance(resolved, dict) else {}

    # -- requests ------------------------------------------------------------------------

    def request(
        self, request: Request, path: PathKey, input_schema: dict[str, Any] | None
    ) -> CompiledRequest:
        src, names = self.source, CONNECTOR_NAMES
        compiled = CompiledRequest(
            method=request.method,
            path=self.ctx.template(src, request.path, (*path, "path"), names, url_path=True),
            query=self.ctx.tree(src, request.query, (*path, "query"), names),
            headers=self.ctx.tree(src, request.headers, (*path, "headers"), names),
            json_body=self.ctx.tree(src, request.json_body, (*path, "json"), names),
            form=self.ctx.tree(src, request.form, (*path, "form"), names),
            body=(
                None
                if request.body is None
                else self.ctx.template(src, request.body, (*path, "body"), names)
            ),
            timeout=request.timeout or self.connector.defaults.timeout,
        )
        if input_schema is not None:
            self._check_input_use(compiled, path, input_schema)
        return compiled

    def _check_input_use(
        self, request: CompiledRequest, path: PathKey, input_schema: dict[str, Any]
    ) -> None:
        parts = {
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "json": request.json_body,
            "form": request.form,
            "body": request.body,
        }
        for part, tree in parts.items():
            for at, template in templates_in(tree, (*path, part)):
                self.ctx.check_fields(
                    self.source,
                    input_schema,
                    template.paths("input"),
                    at,
                    "input",
                    "the input_schema",
                )

    # -- triggers and actions ------------------------------------------------------------

    def _trigger(self, key: str, trigger: Trigger) -> CompiledTrigger:
        src, base = self.source, ("triggers", key)
        input_schema = self.resolved_schema(trigger.input_schema, (*base, "input_schema"))
        payload_schema = self.resolved_schema(trigger.payload_schema, (*base, "payload_schema"))
        filter_query = self.ctx.query(src, trigger.filter, (*base, "filter"))
        if filter_query is not None:
            self.ctx.check_fields(
                src,
                payload_schema,
                filter_query.field_paths("payload"),
                (*base, "filter"),
                "payload",
                f"trigger `{key}`'s payload",
            )
        poll = webhook = None
        if trigger.poll is not None:
            spec, at = trigger.poll, (*base, "poll")
            next_expr = None
            if isinstance(spec.paginate, NextUrlPaging | CursorPaging):
                next_expr = self.ctx.query(src, spec.paginate.next, (*at, "paginate", "next"))
            poll = CompiledPoll(
                every=spec.every,
                request=self.request(spec.request, (*at, "request"), input_schema),
                paginate=spec.paginate,
                next_page=next_expr,
                items=self.ctx.query(src, spec.items, (*at, "items")) or _identity(self.ctx),
                id=self.ctx.query(src, spec.id, (*at, "id")) or _identity(self.ctx),
                cursor=self.ctx.query(src, spec.cursor, (*at, "cursor")),
                payload=self.ctx.query(src, spec.payload, (*at, "payload")),
                initial=spec.initial,
            )
        if trigger.webhook is not None:
            hook, at = trigger.webhook, (*base, "webhook")
            webhook = CompiledWebhook(
                verify_secrets=(
                    tuple(
                        self.ctx.template(src, secret, path, CONNECTOR_NAMES)
                        for secret, path in _secret_paths(hook.verify.secret, (*at, "verify"))
                    )
                    if hook.verify
                    else None
                ),
                items=self.ctx.query(src, hook.items, (*at, "items")),
                id=self.ctx.query(src, hook.id, (*at, "id")),
                payload=self.ctx.query(src, hook.payload, (*at, "payload")),
                subscribe=(
                    self.request(
                        hook.subscribe.request, (*at, "subscribe", "request"), input_schema
                    )
                    if hook.subscribe
                    else None
                ),
                subscription_id=(
                    self.ctx.query(src, hook.subscribe.id, (*at, "subscribe", "id"))
                    if hook.subscribe
                    else None
                ),
                unsubscribe=(
                    self.request(
                        hook.unsubscribe.request, (*at, "unsubscribe", "request"), input_schema
                    )
                    if hook.unsubscribe
                    else None
                ),
            )
        return CompiledTrigger(
            app=self.connector.app,
            key=key,
            model=trigger,
            input_schema=self.ctx.schema(src, input_schema, (*base, "input_schema")),
            payload_schema=self.ctx.schema(src, payload_schema, (*base, "payload_schema")),
            filter=filter_query,
            poll=poll,
            webhook=webhook,
        )

    def _action(self, key: str, action: Action) -> CompiledAction:
        src, base = self.source, ("actions", key)
        input_schema = self.resolved_schema(action.input_schema, (*base, "input_schema"))
        if action.output_schema is not None:
            output_schema = self.resolved_schema(action.output_schema, (*base, "output_schema"))
            self.ctx.schema(src, output_schema, (*base, "output_schema"))
        return CompiledAction(
            app=self.connector.app,
            key=key,
            model=action,
            input_schema=self.ctx.schema(src, input_schema, (*base, "input_schema")),
            request=self.request(action.request, (*base, "request"), input_schema),
            success=self.ctx.query(src, action.success, (*base, "success")),
            error=self.ctx.query(src, action.error, (*base, "error")),
            output=self.ctx.query(src, action.output, (*base, "output")),
            retry=self.connector.retry_for(action),
        )


def _identity(ctx: CompileContext) -> Any:
    return ctx.query(None, "@", ())


def _secret_paths(
    secret: str | list[str], at: tuple[str | int, ...]
) -> list[tuple[str, tuple[str | int, ...]]]:
    """Each `verify.secret` template with the path a diagnostic about it names."""
    if isinstance(secret, str):
        return [(secret, (*at, "secret"))]
    return [(text, (*at, "secret", index)) for index, text in enumerate(secret)]
