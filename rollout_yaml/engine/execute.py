"""Executes one attempt of one run: render the mapping, check it, build and send the request,
read the answer, and record the attempt with the run's next state."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from rollout_yaml.config.secrets import redact, redact_value
from rollout_yaml.engine.credentials import Credentials, CredentialUnavailable, secrets_with
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.mapping import automation_context, render_action_input
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.notifications import Notifications
from rollout_yaml.engine.outbound import Call, Exchange, Outbound, RateLimited
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import (
    CompiledAction,
    CompiledApp,
    CompiledAutomation,
    CompiledEnvironment,
)
from rollout_yaml.expr.templates import RenderError
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import BadAnswer
from rollout_yaml.http.request import PreparedRequest, RequestBuildError
from rollout_yaml.http.response import error_message, interpret
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
        outbound: Outbound | None = None,
        notifications: Notifications | None = None,
    ) -> None:
        self.config = config
        self.notifications = notifications
        self.store = store
        self.clients = clients
        self.credentials = credentials or Credentials(store, clients, owner)
        self.outbound = outbound or Outbound(clients, self.credentials)
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
        """Render and check the input, then send through the outbound path and read the
        answer; `_Failed` for what fails before anything is sent."""
        app = env.apps[automation.action_app]
        action = app.actions[automation.action_key]
        inputs = self._inputs(env, automation, action, item)
        try:
            call = await self.outbound.open(
                env,
                app,
                automation.consumer,
                automation.action_credential,
                input=inputs,
                run={"id": item.run_id, "attempt": number},
            )
        except CredentialUnavailable as exc:
            if not exc.retryable:
                raise _Failed(str(exc), "credential") from exc
            attempt = Attempt(item.run_id, number, time.time(), 0.0, None, None, str(exc))
            delay = self._transient_delay(action, number)
            return await self._after_failure(
                item, number, secrets, attempt, inputs, str(exc), "credential", delay
            )
        secrets = secrets_with(secrets, call.secrets)
        request = self._request(call, action, item)
        if env.settings.runtime.dry_run:
            attempt = Attempt(
                item.run_id, number, time.time(), 0.0, call.record(request), None, None
            )
            return await self._finish(
                item, number, RunStatus.DRY_RUN, secrets, attempt=attempt, inputs=inputs
            )
        try:
            exchange = await call.send(request, ticket=item.run_id, hold=RATE_LIMIT_HOLD)
        except RateLimited as limited:
            return await self._defer(item, limited.wait, inputs, secrets)
        except RequestBuildError as exc:
            raise _Failed(str(exc), "request") from exc
        secrets = secrets_with(secrets, call.secrets)
        return await self._conclude(item, number, app, action, inputs, exchange, secrets)

    def _inputs(
        self,
        env: CompiledEnvironment,
        automation: CompiledAutomation,
        action: CompiledAction,
        item: WorkItem,
    ) -> Any:
        """The action's inputParams rendered from the event, checked against `input_schema`."""
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
        return inputs

    def _request(self, call: Call, action: CompiledAction, item: WorkItem) -> PreparedRequest:
        try:
            request = call.build(action.request)
        except RequestBuildError as exc:  # redacted by the call
            raise _Failed(str(exc), "request") from exc
        if action.model.idempotency_header:
            request.headers[action.model.idempotency_header] = item.run_id
        return request

    @staticmethod
    def _transient_delay(action: CompiledAction, number: int) -> float | None:
        return retry_delay(
            action.retry, number, status=None, transport_error=True, retry_after=None
        )

    async def _conclude(
        self,
        item: WorkItem,
        number: int,
        app: CompiledApp,
        action: CompiledAction,
        inputs: Any,
        exchange: Exchange,
        secrets: frozenset[str],
    ) -> Verdict:
        """The attempt's end from what came back: success, or a failure under the retry
        policy. Whatever fails while reading the answer (a body nested too deeply, an
        expression that raises on it) fails this attempt like an error answer of its
        status, recorded; it never leaves the run to be sent again at its lease's expiry."""
        policy = action.retry
        error = exchange.error
        if error is not None:
            attempt = Attempt(
                item.run_id,
                number,
                exchange.started,
                exchange.elapsed_ms,
                exchange.request_record,
                None,
                str(error),
            )
            status = error.status if isinstance(error, BadAnswer) else None
            delay = retry_delay(
                policy,
                number,
                status=status,
                transport_error=error.transient,
                retry_after=None,
            )
            return await self._after_failure(
                item, number, secrets, attempt, inputs, str(error), error.error_kind, delay
            )
        answer = exchange.answer
        assert answer is not None
        self.metrics.action_seconds.labels(app.key, action.key).observe(answer.elapsed_ms / 1000)
        ok, output, message = False, None, ""
        kind = "app_refused" if 400 <= answer.status < 500 and answer.status != 429 else "app_error"
        try:
            body = exchange.body()
            outcome = interpret(app, action, answer.status, body)
            ok = outcome.ok
            if ok:
                output = outcome.output  # redacted where it is written (`_write`)
            else:
                message = outcome.error or error_message(app, action, answer.status, body)
        except Exception as exc:
            ok, kind = False, "response"
            message = (
                f"the answer could not be read: {exc}"
                if not isinstance(exc, BadAnswer)
                else str(exc)
            )
            if isinstance(exc, RecursionError):
                message = "the answer could not be read: it is nested too deeply"
        attempt = Attempt(
            item.run_id,
            number,
            exchange.started,
            answer.elapsed_ms,
            exchange.request_record,
            exchange.response_record,
            None if ok else message,
        )
        if ok:
            return await self._finish(
                item,
                number,
                RunStatus.SUCCEEDED,
                secrets,
                attempt=attempt,
                inputs=inputs,
                output=output,
            )
        retry_after = parse_retry_after(answer.headers.get("retry-after"), time.time())
        delay = retry_delay(
            policy, number, status=answer.status, transport_error=False, retry_after=retry_after
        )
        unrenewable = exchange.unrenewable
        if unrenewable is not None:
            kind, message = "credential", str(unrenewable)
            delay = self._transient_delay(action, number) if unrenewable.retryable else None
        return await self._after_failure(
            item, number, secrets, attempt, inputs, message, kind, delay
        )

    async def _defer(
        self, item: WorkItem, wait: float, inputs: Any, secrets: frozenset[str]
    ) -> Verdict:
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
        await self._write(update, None, secrets)
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
            error=message,
            error_kind=kind,
            next_attempt_at=now + delay,
            input=inputs,
            lease_owner=self.owner,
            lease_expires_at=now + delay + self.lease,
        )
        update = await self._write(update, attempt, secrets)
        log.info(
            "attempt %d failed (%s), retrying in %.2fs",
            number,
            update.error,
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
            output=output,
            error=error,
            error_kind=kind,
            finished_at=now,
            input=inputs,
        )
        update = await self._write(update, attempt, secrets, finished=item)
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

    async def _write(
        self,
        update: RunUpdate,
        attempt: Attempt | None,
        secrets: frozenset[str],
        *,
        finished: WorkItem | None = None,
    ) -> RunUpdate:
        """Where a run's records are written, and so where they are redacted: the run's
        error, input and output and the attempt's error, every secret in every spelling
        (`redact`). The attempt's request and response come redacted from the outbound path
        (http/recording.py). Returns the update as written. A `finished` run's `run.finished`
        notification is written in the same transaction (so a crash loses neither)."""
        written = replace(
            update,
            error=None if update.error is None else redact(update.error, secrets),
            output=redact_value(update.output, secrets),
            input=redact_value(update.input, secrets),
        )
        if attempt is not None and attempt.error is not None:
            attempt = replace(attempt, error=redact(attempt.error, secrets))
        notices = []
        if finished is not None and self.notifications is not None:
            notices = self.notifications.run_finished(self.config.current, finished, written)
        await self.store.record(written, attempt, notices)
        if notices and self.notifications is not None:
            self.notifications.wake()
        return written
