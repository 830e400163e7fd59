"""Runs the `tests:` of connectors and blueprints offline, through the same request building,
response reading and mapping code the runner uses. Nothing is sent anywhere."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.models.blueprint import BlueprintTest
from rollout_yaml.config.models.connector import ConnectorTest
from rollout_yaml.expr.compiled import (
    CompiledAction,
    CompiledApp,
    CompiledBlueprint,
    CompiledTrigger,
)
from rollout_yaml.expr.jmespath import Query
from rollout_yaml.expr.templates import Params, RenderError
from rollout_yaml.expr.values import render_tree
from rollout_yaml.http.request import PreparedRequest, RequestBuildError, app_context, build_request
from rollout_yaml.http.response import interpret


@dataclass
class CaseResult:
    file: str
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def expect(self, what: str, expected: Any, got: Any) -> None:
        if expected != got:
            self.failures.append(
                f"{what}\n    expected: {_show(expected)}\n    got:      {_show(got)}"
            )


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def run_tests(
    apps: Mapping[str, CompiledApp],
    blueprints: Mapping[str, CompiledBlueprint],
    pattern: str | None = None,
) -> list[CaseResult]:
    results = []
    for app in apps.values():
        for test in app.connector.tests:
            if _selected(test.name, app.key, pattern):
                results.append(run_connector_test(app, test))
    for bp in blueprints.values():
        for bp_test in bp.model.tests:
            if _selected(bp_test.name, bp.key, pattern):
                results.append(run_blueprint_test(bp, apps, bp_test))
    return results


def _selected(name: str, owner: str, pattern: str | None) -> bool:
    if not pattern:
        return True
    text = f"{owner} {name}".lower()
    return pattern.lower() in text or fnmatch.fnmatch(text, pattern.lower())


def credential_for_test(app: CompiledApp, test: ConnectorTest) -> dict[str, Any]:
    if test.credential is not None:
        return dict(test.credential)
    return {name: f"test-{name}" for name in app.connector.credential_fields()}


def connector_context(app: CompiledApp, test: ConnectorTest) -> dict[str, Any]:
    app_values = app_context(app)
    if test.app:
        app_values.update(test.app)
        app_values["vars"] = {**app_context(app)["vars"], **test.app.get("vars", {})}
    return {
        "input": dict(test.input),
        "credential": credential_for_test(app, test),
        "app": app_values,
        "cursor": None,
        "page": None,
        "run": {"id": "run_test", "attempt": 1},
        "webhook": {"url": f"http://localhost/webhooks/{app.key}/{test.trigger}/test"},
        "subscription": {"id": "sub_test"},
    }


def run_connector_test(app: CompiledApp, test: ConnectorTest) -> CaseResult:
    result = CaseResult(app.file or app.key, test.name)
    context = connector_context(app, test)
    if test.action is not None:
        action = app.actions.get(test.action)
        if action is not None:
            _action_test(app, action, test, context, result)
    elif test.trigger is not None:
        trigger = app.triggers.get(test.trigger)
        if trigger is not None:
            _trigger_test(app, trigger, test, context, result)
    return result


def _action_test(
    app: CompiledApp,
    action: CompiledAction,
    test: ConnectorTest,
    context: dict[str, Any],
    result: CaseResult,
) -> None:
    violations = action.input_schema.violations(test.input)
    if violations:
        error = "; ".join(f"{v.json_path}: {v.message}" for v in violations)
        _compare_error(result, test, error)
        return
    try:
        request = build_request(app, action.request, context, context["credential"])
    except RequestBuildError as exc:
        _compare_error(result, test, str(exc))
        return
    if action.model.idempotency_header:
        request.headers[action.model.idempotency_header] = "run_test"
    if test.expect_request is not None:
        _compare_request(result, test.expect_request, request)
    if test.response is None and test.expect_error is None and test.expect_output is None:
        return
    outcome = interpret(app, action, test.response_status, test.response)
    if test.expect_error is not None:
        result.expect("error", test.expect_error, outcome.error)
    elif not outcome.ok:
        result.failures.append(f"the action failed: {outcome.error}")
    if test.expect_output is not None:
        result.expect("output", test.expect_output, outcome.output)


def _compare_error(result: CaseResult, test: ConnectorTest, error: str) -> None:
    if test.expect_error is None:
        result.failures.append(f"unexpected error: {error}")
    elif test.expect_error not in error:
        result.expect("error", test.expect_error, error)


def _compare_request(result: CaseResult, expected: Mapping[str, Any], got: PreparedRequest) -> None:
    actual: dict[str, Any] = {
        "method": got.method,
        "path": got.path,
        "url": got.full_url(),
        "query": dict(got.query),
        "json": got.json_body,
        "form": got.form,
        "body": got.body,
    }
    for key, value in expected.items():
        if key == "headers":
            lowered = {k.lower(): v for k, v in got.headers.items()}
            picked = {k: lowered.get(k.lower()) for k in value}
            result.expect("request headers", value, picked)
        elif key == "method":
            result.expect("request method", str(value).upper(), actual["method"])
        elif key == "query":
            wanted = {k: _query_text(v) for k, v in value.items()}
            result.expect("request query", wanted, {k: actual["query"].get(k) for k in wanted})
        elif key in actual:
            result.expect(f"request {key}", value, actual[key])
        else:
            result.failures.append(
                f"expect_request has unknown key `{key}` (known: "
                f"{', '.join(sorted([*actual, 'headers']))})"
            )


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def trigger_events(trigger: CompiledTrigger, document: Any) -> Iterator[tuple[Any, Any]]:
    """(id, payload) of each event a poll page or a webhook body holds."""
    id_query: Query | None
    if trigger.poll is not None:
        items = trigger.poll.items.search(document)
        id_query, payload_query = trigger.poll.id, trigger.poll.payload
    elif trigger.webhook is not None:
        hook = trigger.webhook
        items = hook.items.search(document) if hook.items else [document]
        id_query, payload_query = hook.id, hook.payload
    else:
        yield None, document
        return
    for item in items or []:
        item_id = id_query.search(item) if id_query is not None else None
        payload = payload_query.search(item) if payload_query is not None else item
        yield item_id, payload


def _trigger_test(
    app: CompiledApp,
    trigger: CompiledTrigger,
    test: ConnectorTest,
    context: dict[str, Any],
    result: CaseResult,
) -> None:
    if trigger.poll is not None and test.expect_request is not None:
        try:
            request = build_request(app, trigger.poll.request, context, context["credential"])
            _compare_request(result, test.expect_request, request)
        except RequestBuildError as exc:
            result.failures.append(f"poll request: {exc}")
    document = test.body if test.body is not None else test.response
    events = list(trigger_events(trigger, document))
    payloads = [payload for _, payload in events]
    for index, payload in enumerate(payloads):
        for violation in trigger.payload_schema.violations(payload):
            result.failures.append(
                f"payload {index} does not match payload_schema at "
                f"{violation.json_path}: {violation.message}"
            )
    if test.expect_payloads is not None:
        result.expect("payloads", test.expect_payloads, payloads)
    if test.expect_ids is not None:
        result.expect("ids", test.expect_ids, [str(i) for i, _ in events])


def run_blueprint_test(
    bp: CompiledBlueprint, apps: Mapping[str, CompiledApp], test: BlueprintTest
) -> CaseResult:
    result = CaseResult(bp.file, test.name)
    params = Params(test.params, set(bp.model.params.get("properties", {})))
    context = {
        "params": params,
        "payload": test.payload,
        "event": {
            "id": "evt_test",
            "received_at": "2026-01-01T00:00:00Z",
            "app": bp.model.trigger.app,
            "trigger": bp.model.trigger.trigger,
        },
        "consumer": {"key": test.consumer},
        "env": "test",
    }
    try:
        if test.expect_trigger_input is not None:
            result.expect(
                "trigger input",
                test.expect_trigger_input,
                render_tree(bp.trigger_input, context, drop_null=True),
            )
        if test.expect_filtered is not None:
            passed = bp.filter.is_true(context) if bp.filter is not None else True
            result.expect("filtered", test.expect_filtered, not passed)
        if test.expect_input is not None:
            rendered = render_tree(bp.action_input, context, drop_null=True)
            result.expect("action input", test.expect_input, rendered)
            app = apps.get(bp.model.action.app)
            action = app.actions.get(bp.model.action.action) if app else None
            if action is not None:
                for violation in action.input_schema.violations(rendered):
                    result.failures.append(
                        f"action input fails the input_schema at "
                        f"{violation.json_path}: {violation.message}"
                    )
    except RenderError as exc:
        result.failures.append(f"template failed: {exc}")
    return result
