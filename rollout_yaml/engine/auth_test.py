"""A credential tried against its App: the connector's `auth.test` sent with it through the one
way out (engine/outbound.py: the same signing, renewal after a 401, rate limit and redaction as
an action), its `success` read, and its `label` (e.g. the account's name) kept with the
credential's row and the time, to name it in lists.

Nothing the App answers is kept but the label; a failed test leaves an earlier label as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import CredentialRejected, Credentials, CredentialUnavailable
from rollout_yaml.engine.outbound import Call, Outbound
from rollout_yaml.expr.compiled import CompiledApp, CompiledAuthTest, CompiledEnvironment
from rollout_yaml.http.request import RequestBuildError, request_context
from rollout_yaml.http.response import error_message

LABEL_CHARS = 200


@dataclass(frozen=True, slots=True)
class TestResult:
    """What one test found: `ok`, the App's status, the label read, or why it failed."""

    __test__ = False  # not a pytest class

    ok: bool
    tested_at: float
    status: int | None = None
    label: str | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "label": self.label,
            "error": self.error,
            "tested_at": datetime.fromtimestamp(self.tested_at, UTC).isoformat(),
        }


def _text(value: Any) -> str | None:
    if value is None or value in ("", [], {}):
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:LABEL_CHARS]


async def run(
    outbound: Outbound,
    credentials: Credentials,
    env: CompiledEnvironment,
    consumer: str,
    key: str,
) -> TestResult:
    """Test `consumer`'s credential `key`; CredentialRejected when there is no such credential
    (not_found) or its App declares no `auth.test`."""
    target = await credentials.target(env, consumer, key)
    if target is None:
        raise CredentialRejected(
            f"credential `{key}` is neither declared nor stored for `{consumer}`", not_found=True
        )
    test = target.app.auth_test
    if test is None:
        raise CredentialRejected(
            f"app `{target.app.key}` declares no `auth.test` to try its credentials with",
            help=f"add `auth.test` (a request, and `success`) to the `{target.app.key}` connector",
        )
    now = credentials.clock()
    try:
        call = await outbound.open(env, target.app, consumer, key, input={})
    except CredentialUnavailable as exc:
        return TestResult(False, now, error=str(exc))
    result = await attempt(call, test, now)
    if result.ok:
        await credentials.store.label_credential(consumer, key, result.label, now)
    return result


async def try_values(
    outbound: Outbound,
    env: CompiledEnvironment,
    app: CompiledApp,
    consumer: str,
    values: Mapping[str, Any],
    now: float,
) -> TestResult | None:
    """`auth.test` with values not stored yet (what a consumer is about to save); None when
    the App declares no test. Nothing is kept."""
    if app.auth_test is None:
        return None
    context = request_context(app, input={}, credential=dict(values))
    call = Call(outbound, env, app, consumer, None, context)
    return await attempt(call, app.auth_test, now)


async def attempt(call: Call, test: CompiledAuthTest, now: float) -> TestResult:
    """Send the test through `call` and read its answer (the label redacted)."""
    try:
        exchange = await call.send(call.build(test.request))
    except RequestBuildError as exc:  # redacted by the call
        return TestResult(False, now, error=str(exc))
    if exchange.error is not None:
        return TestResult(False, now, error=call.redact(str(exchange.error)))
    if exchange.unrenewable is not None:
        return TestResult(False, now, exchange.status, error=str(exchange.unrenewable))
    status = exchange.status
    assert status is not None
    try:
        body = exchange.body()
        ok = 200 <= status < 300 and (test.success is None or test.success.is_true(body))
        label = _text(test.label.search(body)) if ok and test.label is not None else None
    except Exception as exc:  # a body nested too deeply, an expression raising on it
        return TestResult(False, now, status, error=call.redact(f"the answer: {exc}"))
    if not ok:
        message = error_message(call.app, None, status, body)
        if 200 <= status < 300 and message == f"HTTP {status}":
            message = f"HTTP {status}, but `auth.test.success` is false for the answer"
        return TestResult(False, now, status, error=call.redact(message))
    label = None if label is None else redact(label, call.secrets)
    return TestResult(True, now, status, label=label)
