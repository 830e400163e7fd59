"""Receiving webhook deliveries: find the automation by its hookId, verify the signature with the
trigger's scheme, answer Slack's challenge, turn the body into events (`items`, `id`,
`payload`), store them durably and only then acknowledge.

A delivery that fails a check stores nothing: an unknown hookId is a 404, a bad signature or a
timestamp outside the tolerance a 401, a body that cannot be read a 400, a payload that does
not match the trigger's `payload_schema` a 422.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

from rollout_yaml import json_codec
from rollout_yaml.config.secrets import redact
from rollout_yaml.engine.credentials import Credentials, CredentialUnavailable
from rollout_yaml.engine.dispatch import Dispatcher
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.intake import Prepared, add_event
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.metrics import Metrics
from rollout_yaml.engine.outbound import credential_values
from rollout_yaml.engine.work import WorkItem
from rollout_yaml.expr.compiled import (
    CompiledApp,
    CompiledAutomation,
    CompiledEnvironment,
    CompiledTrigger,
    CompiledWebhook,
)
from rollout_yaml.expr.templates import Template
from rollout_yaml.http.request import request_context
from rollout_yaml.http.signatures import slack_challenge, verify
from rollout_yaml.store.base import Store
from rollout_yaml.store.records import EventRecord, Hook, HookState, Ingested, NewRun, new_id
from rollout_yaml.store.schema import MAX_EVENT_KEY

log = logging.getLogger("rollout_yaml.webhooks")

WEBHOOK_PATH = "/webhooks/{app}/{trigger}/{hook_id}"


def is_webhook(env: CompiledEnvironment, automation: CompiledAutomation) -> bool:
    app = env.apps.get(automation.trigger_app)
    trigger = app.triggers.get(automation.trigger_key) if app else None
    return trigger is not None and trigger.webhook is not None


def fingerprint(automation: CompiledAutomation) -> str:
    """What a hookId stays the same for: the trigger, its credential and its inputParams.
    Anything else (the action, the mapping, `enabled`) can change without a new URL."""
    identity = [
        automation.trigger_app,
        automation.trigger_key,
        automation.trigger_credential,
        dict(automation.trigger_input),
    ]
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def public_base(env: CompiledEnvironment, listening: str | None) -> str:
    """`server.public_url`, else the address the daemon listens on."""
    server = env.settings.server
    if server.public_url:
        return server.public_url.rstrip("/")
    return listening or f"http://{server.host}:{server.port}"


def webhook_url(base: str, hook: Hook) -> str:
    return base + WEBHOOK_PATH.format(app=hook.app, trigger=hook.trigger, hook_id=hook.id)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST to a webhook URL, as received: the raw body is what senders sign; `query` is
    the URL's query (a repeated parameter as a list)."""

    app: str
    trigger: str
    hook_id: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, Any] = field(default_factory=dict)

    def scope(self) -> dict[str, Any]:
        """What `items`, `id`, `payload` and filters see beside the body: `headers` with
        lower-cased names, and `query`."""
        return {
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "query": dict(self.query),
        }


def query_fields(query_string: str) -> dict[str, Any]:
    """A URL's query as fields: each value a string, a repeated one a list."""
    return _fields(parse_qsl(query_string, keep_blank_values=True))


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    event_ids: list[str]
    runs_queued: int
    challenge: str | None = None


def _not_found() -> EventRejected:
    return EventRejected(404, "not_found", "no active webhook at this URL")


class WebhookReceiver:
    def __init__(
        self,
        config: LiveConfig,
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        *,
        owner: str,
        lease: float,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.owner = owner
        self.lease = lease
        self.credentials = credentials
        self.clock = clock

    async def receive(self, delivery: Delivery) -> DeliveryResult:
        hook = await self.store.get_hook(delivery.hook_id)
        if (
            hook is None
            or hook.state is not HookState.ACTIVE
            or (hook.app, hook.trigger) != (delivery.app, delivery.trigger)
        ):
            raise _not_found()
        active = self.config.active
        env = active.env
        automation = env.automations.get((hook.consumer, hook.automation))
        if (
            automation is None
            or not automation.enabled
            or fingerprint(automation) != hook.fingerprint
        ):
            raise _not_found()  # changed or removed since; its hook is being retired
        app = env.apps[hook.app]
        trigger = app.triggers[hook.trigger]
        spec = trigger.webhook
        if spec is None:
            raise _not_found()
        where = {"consumer": hook.consumer, "automation": hook.automation}
        delivery_id = await self._verify(env, app, trigger, spec, automation, delivery, where)
        scheme = trigger.model.webhook.verify if trigger.model.webhook else None
        if scheme is not None and scheme.scheme == "slack":
            challenge = slack_challenge(delivery.body)
            if challenge is not None:
                log.info("answered Slack's url_verification challenge", extra=where)
                return DeliveryResult([], 0, challenge)
        document = parse_body(delivery.headers, delivery.body)
        scope = delivery.scope()
        events = extract(trigger, spec, document, delivery_id, scope)
        now = self.clock()
        prepared = Prepared([], {})
        for dedupe, payload in events:
            record = EventRecord(
                new_id("evt"),
                hook.consumer,
                hook.app,
                hook.trigger,
                dedupe,
                payload,
                now,
                "webhook",
            )
            add_event(
                active,
                record,
                [automation],
                prepared,
                owner=self.owner,
                lease=self.lease,
                delivery=scope,
            )
        ingested = await self.store.ingest(prepared.batch)
        queued = [
            prepared.work[run_id]
            for result in ingested
            for run_id in result.run_ids
            if run_id in prepared.work
        ]
        queued.extend(await self._runs_for_known_events(prepared, ingested))
        self.dispatcher.submit(queued)
        self.metrics.events.labels(hook.app, hook.trigger).inc(sum(r.new for r in ingested))
        return DeliveryResult([r.event_id for r in ingested], len(queued))

    async def _runs_for_known_events(
        self, prepared: Prepared, ingested: list[Ingested]
    ) -> list[WorkItem]:
        """An event already stored (the same id sent to another automation's URL, as Stripe
        does for each endpoint, or the same delivery again) still gets one run for this
        automation; the unique (automation, event) constraint makes a repeat add nothing."""
        new_runs: list[NewRun] = []
        for (_record, runs), result in zip(prepared.batch, ingested, strict=True):
            if not result.new:
                new_runs.extend(replace(run, event_id=result.event_id) for run in runs)
        if not new_runs:
            return []
        inserted = set(await self.store.insert_runs(new_runs))
        work = []
        for (record, runs), result in zip(prepared.batch, ingested, strict=True):
            for run in runs:
                if run.id in inserted and run.id in prepared.work:
                    item = prepared.work[run.id]
                    work.append(replace(item, event=replace(record, id=result.event_id)))
        return work

    async def _verify(
        self,
        env: CompiledEnvironment,
        app: CompiledApp,
        trigger: CompiledTrigger,
        spec: CompiledWebhook,
        automation: CompiledAutomation,
        delivery: Delivery,
        where: dict[str, str],
    ) -> str | None:
        """Check the signature; return the publisher's delivery id when the scheme has one."""
        model = trigger.model.webhook
        scheme = model.verify if model else None
        if scheme is None or spec.verify_secrets is None:
            return None
        try:
            credential = await credential_values(
                env, automation.consumer, automation.trigger_credential, self.credentials
            )
        except CredentialUnavailable:
            credential = None  # fine unless the secret template reads `credential`
        try:
            context = request_context(
                app, input=dict(automation.trigger_input), credential=credential or {}
            )
            secrets = [
                "" if rendered is None else str(rendered)
                for rendered in (
                    secret.render(context) if isinstance(secret, Template) else secret
                    for secret in spec.verify_secrets
                )
            ]
        except ValueError as exc:
            message = redact(str(exc), env.secret_values)
            log.error("webhook secret unavailable: %s", message, extra=where)
            raise EventRejected(
                503, "unavailable", "the webhook secret of this automation is not available"
            ) from exc
        verified = verify(
            scheme,
            secrets,
            delivery.headers,
            delivery.body,
            self.clock(),
        )
        if not verified.ok:
            log.warning("webhook delivery refused: %s", verified.reason, extra=where)
            raise EventRejected(401, "unauthorized", f"signature check failed: {verified.reason}")
        return verified.delivery_id


def parse_body(headers: Mapping[str, str], body: bytes) -> Any:
    """The delivery as data: form fields for `application/x-www-form-urlencoded` (Slack's
    slash commands), JSON otherwise; a `text/*` body that is not JSON is kept as a string."""
    content_type = ""
    for name, value in headers.items():
        if name.lower() == "content-type":
            content_type = value.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventRejected(400, "invalid_body", "the webhook body is not UTF-8") from exc
    if content_type == "application/x-www-form-urlencoded":
        return _fields(parse_qsl(text, keep_blank_values=True))
    if not text.strip():
        raise EventRejected(400, "invalid_body", "the webhook body is empty")
    try:
        return json_codec.loads(body)
    except json_codec.JSONRejected as exc:
        if content_type.startswith("text/"):
            return text
        raise EventRejected(
            400,
            "invalid_json",
            f"the webhook body is not acceptable JSON: {exc}",
            [{"path": exc.path, "message": exc.reason}],
        ) from exc


def _bounded_key(key: str) -> str:
    """A dedupe key within the column; a longer one is replaced by its SHA-256 (truncating
    would make two deliveries with one long prefix a single event)."""
    if len(key) <= MAX_EVENT_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def extract(
    trigger: CompiledTrigger,
    spec: CompiledWebhook,
    document: Any,
    delivery_id: str | None,
    scope: Mapping[str, Any] | None = None,
) -> list[tuple[str, Any]]:
    """(dedupe key, payload) of each event in a delivery.

    The key is the trigger's `id`; without one, the publisher's delivery id (with the item's
    position when a delivery holds several); without that, a hash of the item, so the same
    delivery sent twice is still one event. `scope` (the delivery's `headers` and `query`) is
    readable by `items`, `id` and `payload` where the body or item has no field of that name.
    """
    if spec.items is None:
        items = [document]
    else:
        found = spec.items.search(document, scope)
        items = [] if found is None else found if isinstance(found, list) else [found]
    events: list[tuple[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        key = spec.id.search(item, scope) if spec.id is not None else None
        if key is None or key == "":
            if delivery_id:
                key = delivery_id if len(items) == 1 else f"{delivery_id}#{index}"
            else:
                canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
                key = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        payload = spec.payload.search(item, scope) if spec.payload is not None else item
        for violation in trigger.payload_schema.violations(payload):
            problems.append(
                {
                    "path": f"$.items[{index}].payload{violation.json_path[1:]}",
                    "message": violation.message,
                }
            )
        events.append((_bounded_key(str(key)), payload))
    if problems:
        raise EventRejected(
            422,
            "invalid_request",
            f"a payload does not match `{trigger.app}/{trigger.key}`'s payload_schema: "
            f"{problems[0]['message']}",
            problems,
        )
    return events
