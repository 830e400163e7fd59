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
from rollout_yaml.http.auth import sign
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    app_context,
    build_request,
    request_context,
)
from rollout_yaml.http.response import interpret

Place = tuple[str | int, ...]
"""A key inside one test entry (`("expect_request", "method")`), `()` for the entry itself."""


@dataclass(frozen=True)
class Failure:
    text: str
    place: Place = ()


@dataclass
class CaseResult:
    """One test's outcome. `index` is its position in the file's `tests:` and each failure
    names the key of the test it is about, so that the command line can show file:line."""

    file: str
    name: str
    index: int = 0
    found: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.found

    @property
    def failures(self) -> tuple[str, ...]:
        """The failures' texts (read only: add one with `fail`)."""
        return tuple(failure.text for failure in self.found)

    def fail(self, text: str, place: Place = ()) -> None:
        self.found.append(Failure(text, place))

    def expect(self, what: str, expected: Any, got: Any, place: Place = ()) -> None:
        if expected != got:
            self.fail(f"{what}\n    expected: {_show(expected)}\n    got:      {_show(got)}", place)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def count_tests(
    apps: Mapping[str, CompiledApp],
    blueprints: Mapping[str, CompiledBlueprint],
    pattern: str | None = None,
) -> int:
    connector_tests = sum(
        1
        for app in apps.values()
        for t in app.connector.tests
        if _selected(t.name, app.key, pattern)
    )
    return connector_tests + sum(
        1
        for bp in blueprints.values()
        for t in bp.model.tests
        if _selected(t.name, bp.key, pattern)
    )


def iter_tests(
    apps: Mapping[str, CompiledApp],
    blueprints: Mapping[str, CompiledBlueprint],
    pattern: str | None = None,
) -> Iterator[CaseResult]:
    """Each selected test's result as soon as it ran (the command line shows progress)."""
    for app in apps.values():
        for index, test in enumerate(app.connector.tests):
            if _selected(test.name, app.key, pattern):
                result = run_connector_test(app, test)
                result.index = index
                yield result
    for bp in blueprints.values():
        for index, bp_test in enumerate(bp.model.tests):
            if _selected(bp_test.name, bp.key, pattern):
                result = run_blueprint_test(bp, apps, bp_test)
                result.index = index
                yield result


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
    return request_context(
        app,
        input=dict(test.input),
        credential=credential_for_test(app, test),
        run={"id": "run_test", "attempt": 1},
        webhook_url=f"http://localhost/webhooks/{app.key}/{test.trigger}/test",
        subscription={"id": "sub_test"},
        app_values=app_values,
    )


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
        request = sign(app, build_request(app, action.request, context), context)
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
        result.expect("error", test.expect_error, outcome.error, ("expect_error",))
    elif not outcome.ok:
        result.fail(f"the action failed: {outcome.error}", ("response",))
    if test.expect_output is not None:
        result.expect("output", test.expect_output, outcome.output, ("expect_output",))


def _compare_error(result: CaseResult, test: ConnectorTest, error: str) -> None:
    if test.expect_error is None:
        result.fail(f"unexpected error: {error}", ("input",))
    elif test.expect_error not in error:
        result.expect("error", test.expect_error, error, ("expect_error",))


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
            result.expect("request headers", value, picked, ("expect_request", key))
        elif key == "method":
            place = ("expect_request", key)
            result.expect("request method", str(value).upper(), actual["method"], place)
        elif key == "query":
            wanted = {k: _query_text(v) for k, v in value.items()}
            got_query = {k: actual["query"].get(k) for k in wanted}
            result.expect("request query", wanted, got_query, ("expect_request", key))
        elif key in actual:
            result.expect(f"request {key}", value, actual[key], ("expect_request", key))
        else:
            result.fail(
                f"expect_request has unknown key `{key}` (known: "
                f"{', '.join(sorted([*actual, 'headers']))})",
                ("expect_request", key),
            )


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def trigger_events(
    trigger: CompiledTrigger, document: Any, scope: Mapping[str, Any] | None = None
) -> Iterator[tuple[Any, Any]]:
    """(id, payload) of each event a poll page or a webhook body holds; `scope` is a webhook
    delivery's `headers` and `query`."""
    id_query: Query | None
    if trigger.poll is not None:
        items = trigger.poll.items.search(document)
        id_query, payload_query, scope = trigger.poll.id, trigger.poll.payload, None
    elif trigger.webhook is not None:
        hook = trigger.webhook
        items = hook.items.search(document, scope) if hook.items else [document]
        if items is not None and not isinstance(items, list):
            items = [items]
        id_query, payload_query = hook.id, hook.payload
    else:
        yield None, document
        return
    for item in items or []:
        item_id = id_query.search(item, scope) if id_query is not None else None
        payload = payload_query.search(item, scope) if payload_query is not None else item
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
            request = sign(app, build_request(app, trigger.poll.request, context), context)
            _compare_request(result, test.expect_request, request)
        except RequestBuildError as exc:
            result.fail(f"poll request: {exc}", ("expect_request",))
    document = test.body if test.body is not None else test.response
    scope = {
        "headers": {name.lower(): value for name, value in test.headers.items()},
        "query": dict(test.query),
    }
    events = list(trigger_events(trigger, document, scope))
    payloads = [payload for _, payload in events]
    for index, payload in enumerate(payloads):
        for violation in trigger.payload_schema.violations(payload):
            result.fail(
                f"payload {index} does not match payload_schema at "
                f"{violation.json_path}: {violation.message}",
                ("body" if test.body is not None else "response",),
            )
    if test.expect_payloads is not None:
        result.expect("payloads", test.expect_payloads, payloads, ("expect_payloads",))
    if test.expect_ids is not None:
        result.expect("ids", test.expect_ids, [str(i) for i, _ in events], ("expect_ids",))


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
                ("expect_trigger_input",),
            )
        if test.expect_filtered is not None:
            passed = bp.filter.is_true(context) if bp.filter is not None else True
            result.expect("filtered", test.expect_filtered, not passed, ("expect_filtered",))
        if test.expect_input is not None:
            rendered = render_tree(bp.action_input, context, drop_null=True)
            result.expect("action input", test.expect_input, rendered, ("expect_input",))
            app = apps.get(bp.model.action.app)
            action = app.actions.get(bp.model.action.action) if app else None
            if action is not None:
                for violation in action.input_schema.violations(rendered):
                    result.fail(
                        f"action input fails the input_schema at "
                        f"{violation.json_path}: {violation.message}",
                        ("expect_input",),
                    )
    except RenderError as exc:
        result.fail(f"template failed: {exc}")
    return result
