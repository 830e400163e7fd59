"""Executes one attempt of one run: render the mapping, check it, build and send the request,
read the answer, and record the attempt with the run's next state."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import (
    Credentials,
    CredentialUnavailable,
    secret_values,
    secrets_with,
)
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.mapping import automation_context, render_action_input
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import CompiledAutomation, CompiledEnvironment
from rollout_yaml.expr.templates import RenderError
from rollout_yaml.http.client import AppClients, SendError
from rollout_yaml.http.rate_limit import quota_for
from rollout_yaml.http.recording import request_record, response_record
from rollout_yaml.http.request import (
    PreparedRequest,
    RequestBuildError,
    app_context,
    build_request,
)
from rollout_yaml.http.response import error_message, interpret, parse_body
from rollout_yaml.http.retry import parse_retry_after, retry_delay
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import Attempt, RunStatus, RunUpdate

log = logging.getLogger("rollout_yaml.engine")

# A send waits in its worker for a rate-limit slot at most this long; a later slot is kept for
# the run, which goes back to the queue until then (the worker serves other Apps meanwhile).
RATE_LIMIT_HOLD = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an attempt ended; `retry_in` is set when another attempt should follow."""

    status: RunStatus
    retry_in: float | None = None
    same_attempt: bool = False  # deferred before sending (rate limit): no attempt was used


class _Failed(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def scrub(value: Any, secrets: frozenset[str]) -> Any:
    """Replace secret values inside any JSON-like value."""
    if not secrets or value is None:
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    text = json.dumps(value, ensure_ascii=False, default=str)
    cleaned = redact(text, secrets)
    return value if cleaned == text else json.loads(cleaned)


class Executor:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        clients: AppClients,
        metrics: Metrics,
        owner: str,
        lease: float,
        credentials: Credentials | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clients = clients
        self.credentials = credentials or Credentials(store, clients, owner)
        self.metrics = metrics
        self.owner = owner
        self.lease = lease

    async def execute(self, item: WorkItem) -> Verdict:
        env = self.config.current
        attempt_number = item.attempts + 1
        automation = env.automations.get((item.consumer, item.automation))
        if automation is None or not automation.enabled:
            why = "no longer exists" if automation is None else "is disabled"
            return await self._finish(
                item,
                attempt_number,
                RunStatus.FAILED,
                env.secret_values,
                error=f"automation `{item.automation}` {why}",
                kind="config",
                attempt=None,
            )
        # The environment's set is reused as is (its redaction pattern is compiled once);
        # a credential's secrets are added only when the configuration does not hold them.
        secrets = secrets_with(env.secret_values, self._credential_secrets(env, automation))
        try:
            return await self._attempt(env, automation, item, attempt_number, secrets)
        except _Failed as failed:
            return await self._finish(
                item,
                attempt_number,
                RunStatus.FAILED,
                secrets,
                error=str(failed),
                kind=failed.kind,
                attempt=None,
            )

    async def _credential(
        self, env: CompiledEnvironment, automation: CompiledAutomation
    ) -> dict[str, Any]:
        """The action credential's values (stored ones decrypted, OAuth2 tokens fresh)."""
        key = automation.action_credential
        if key is None:
            return {}
        refresh = not env.settings.runtime.dry_run
        return await self.credentials.values(env, automation.consumer, key, refresh=refresh)

    async def _renewed(
        self, env: CompiledEnvironment, automation: CompiledAutomation, used: dict[str, Any]
    ) -> dict[str, Any] | None:
        key = automation.action_credential
        assert key is not None
        return await self.credentials.renew_after_401(env, automation.consumer, key, used)

    def _credential_secrets(
        self, env: CompiledEnvironment, automation: CompiledAutomation
    ) -> frozenset[str]:
        key = automation.action_credential
        consumer = env.consumers.get(automation.consumer)
        if key is None or consumer is None or key not in consumer.credentials:
            return frozenset()
        values = consumer.credentials[key].values or {}
        fields = env.apps[automation.action_app].connector.secret_fields()
        return frozenset(str(v) for k, v in values.items() if k in fields and v)

    async def _attempt(
        self,
        env: CompiledEnvironment,
        automation: CompiledAutomation,
        item: WorkItem,
        number: int,
        secrets: frozenset[str],
    ) -> Verdict:
        app = env.apps[automation.action_app]
        action = app.actions[automation.action_key]
        event_view = {
            "id": item.event.dedupe_key,
            "received_at": item.event.received_at,
            "app": item.event.app,
            "trigger": item.event.trigger,
        }
        context = automation_context(env, automation, item.event.payload, event_view)
        try:
            inputs = render_action_input(automation, context)
        except RenderError as exc:
            raise _Failed(f"mapping failed: {exc}", "mapping") from exc
        violations = action.input_schema.violations(inputs)
        if violations:
            detail = "; ".join(f"input {v.json_path}: {v.message}" for v in violations)
            raise _Failed(detail, "input")
        policy = action.retry
        try:
            credential = await self._credential(env, automation)
        except CredentialUnavailable as exc:
            if not exc.retryable:
                raise _Failed(str(exc), "credential") from exc
            attempt = Attempt(item.run_id, number, time.time(), 0.0, None, None, str(exc))
            delay = retry_delay(policy, number, status=None, transport_error=True, retry_after=None)
            return await self._after_failure(
                item, number, secrets, attempt, inputs, str(exc), "credential", delay
            )
        secrets = secrets_with(secrets, secret_values(app, credential))
        request_context = {
            "input": inputs,
            "credential": credential,
            "app": app_context(app),
            "cursor": None,
            "page": None,
            "run": {"id": item.run_id, "attempt": number},
            "webhook": {"url": None},
            "subscription": {},
        }

        def build(credential: dict[str, Any]) -> PreparedRequest:
            try:
                request = build_request(
                    app, action.request, {**request_context, "credential": credential}, credential
                )
            except RequestBuildError as exc:  # redacted here: `secrets` now has stored ones
                raise _Failed(redact(str(exc), secrets), "request") from exc
            if action.model.idempotency_header:
                request.headers[action.model.idempotency_header] = item.run_id
            return request

        request = build(credential)
        started = time.time()
        recorded_request = request_record(request, secrets)
        if env.settings.runtime.dry_run:
            attempt = Attempt(item.run_id, number, started, 0.0, recorded_request, None, None)
            return await self._finish(
                item, number, RunStatus.DRY_RUN, secrets, attempt=attempt, inputs=inputs
            )
        quota = quota_for(
            app.connector.rate_limit, app.key, automation.consumer, automation.action_credential
        )
        if quota is not None:
            wait = self.clients.limiter.reserve(quota, ticket=item.run_id, hold=RATE_LIMIT_HOLD)
            if wait > RATE_LIMIT_HOLD:
                return await self._defer(item, wait, scrub(inputs, secrets))
            if wait > 0:
                await asyncio.sleep(wait)
                started = time.time()
        max_bytes = env.settings.runtime.limits.max_response_bytes
        unrenewable: CredentialUnavailable | None = None
        try:
            answer = await self.clients.send(app.key, request, max_bytes)
            if answer.status == 401 and automation.action_credential is not None:
                # an OAuth2 token the App no longer takes: renew it once, send once more
                try:
                    renewed = await self._renewed(env, automation, credential)
                except CredentialUnavailable as exc:
                    renewed, unrenewable = None, exc
                if renewed is not None:
                    secrets = secrets_with(secrets, secret_values(app, renewed))
                    request = build(renewed)
                    recorded_request = request_record(request, secrets)
                    answer = await self.clients.send(app.key, request, max_bytes)
        except SendError as exc:
            elapsed = (time.time() - started) * 1000
            attempt = Attempt(
                item.run_id,
                number,
                started,
                elapsed,
                recorded_request,
                None,
                redact(str(exc), secrets),
            )
            delay = retry_delay(
                policy,
                number,
                status=None,
                transport_error=exc.kind in ("timeout", "connection"),
                retry_after=None,
            )
            kind = "egress" if exc.kind == "egress" else "transport"
            return await self._after_failure(
                item, number, secrets, attempt, inputs, str(exc), kind, delay
            )
        self.metrics.action_seconds.labels(app.key, action.key).observe(answer.elapsed_ms / 1000)
        body = parse_body(answer.body)
        outcome = interpret(app, action, answer.status, body)
        attempt = Attempt(
            item.run_id,
            number,
            started,
            answer.elapsed_ms,
            recorded_request,
            response_record(answer.status, answer.headers, answer.body, secrets),
            None if outcome.ok else redact(outcome.error or "", secrets),
        )
        if outcome.ok:
            return await self._finish(
                item,
                number,
                RunStatus.SUCCEEDED,
                secrets,
                attempt=attempt,
                inputs=inputs,
                output=outcome.output,
            )
        retry_after = parse_retry_after(answer.headers.get("retry-after"), time.time())
        delay = retry_delay(
            policy, number, status=answer.status, transport_error=False, retry_after=retry_after
        )
        kind = "app_refused" if 400 <= answer.status < 500 and answer.status != 429 else "app_error"
        message = outcome.error or error_message(app, action, answer.status, body)
        if unrenewable is not None:
            kind, message = "credential", str(unrenewable)
            delay = (
                retry_delay(policy, number, status=None, transport_error=True, retry_after=None)
                if unrenewable.retryable
                else None
            )
        return await self._after_failure(
            item, number, secrets, attempt, inputs, message, kind, delay
        )

    async def _defer(self, item: WorkItem, wait: float, inputs: Any) -> Verdict:
        """Put the run back until its rate-limit slot, leased to this process meanwhile (a
        replica claims it only if this process dies)."""
        now = time.time()
        update = RunUpdate(
            run_id=item.run_id,
            status=RunStatus.RETRYING if item.attempts else RunStatus.QUEUED,
            attempts=item.attempts,
            updated_at=now,
            next_attempt_at=now + wait,
            input=inputs,
            lease_owner=self.owner,
            lease_expires_at=now + wait + self.lease,
        )
        await self.store.record(update, None)
        log.debug(
            "rate limit: sending in %.2fs",
            wait,
            extra={"consumer": item.consumer, "automation": item.automation, "run_id": item.run_id},
        )
        return Verdict(update.status, wait, same_attempt=True)

    async def _after_failure(
        self,
        item: WorkItem,
        number: int,
        secrets: frozenset[str],
        attempt: Attempt,
        inputs: Any,
        message: str,
        kind: str,
        delay: float | None,
    ) -> Verdict:
        if delay is None:
            return await self._finish(
                item,
                number,
                RunStatus.FAILED,
                secrets,
                attempt=attempt,
                inputs=inputs,
                error=message,
                kind=kind,
            )
        now = time.time()
        update = RunUpdate(
            run_id=item.run_id,
            status=RunStatus.RETRYING,
            attempts=number,
            updated_at=now,
            error=redact(message, secrets),
            error_kind=kind,
            next_attempt_at=now + delay,
            input=scrub(inputs, secrets),
            lease_owner=self.owner,
            lease_expires_at=now + delay + self.lease,
        )
        await self.store.record(update, attempt)
        log.info(
            "attempt %d failed (%s), retrying in %.2fs",
            number,
            redact(message, secrets),
            delay,
            extra={"consumer": item.consumer, "automation": item.automation, "run_id": item.run_id},
        )
        return Verdict(RunStatus.RETRYING, delay)

    async def _finish(
        self,
        item: WorkItem,
        number: int,
        status: RunStatus,
        secrets: frozenset[str],
        *,
        attempt: Attempt | None,
        inputs: Any = None,
        output: Any = None,
        error: str | None = None,
        kind: str | None = None,
    ) -> Verdict:
        now = time.time()
        update = RunUpdate(
            run_id=item.run_id,
            status=status,
            attempts=number if attempt else item.attempts,
            updated_at=now,
            output=scrub(output, secrets),
            error=None if error is None else redact(error, secrets),
            error_kind=kind,
            finished_at=now,
            input=scrub(inputs, secrets),
        )
        await self.store.record(update, attempt)
        self.metrics.runs.labels(str(status)).inc()
        level = logging.WARNING if status is RunStatus.FAILED else logging.DEBUG
        log.log(
            level,
            "run %s%s",
            status,
            f": {update.error}" if update.error else "",
            extra={"consumer": item.consumer, "automation": item.automation, "run_id": item.run_id},
        )
        return Verdict(status)
