"""Webhook deliveries signed by the publishers' own libraries (Svix, Standard Webhooks, Stripe,
Slack's SDK) and by GitHub's documented algorithm (checked against its published vector),
received by the real runtime on a SQLite file: each valid, replayed, tampered and stale. Also
the repository's GitHub connector, whose automations filter on `headers."x-github-event"`
and whose secret is being rotated, and its Slack connector mapping an interactivity post
through `from_json(payload)`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import octokit
import pytest
import stripe
import svix.webhooks
from app_server import AppServer
from runner_env import copy_project, environ
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StandardWebhook
from test_http_signatures import load_vectors
from webhook_project import SECRETS, SLACK_SECRET, STRIPE_SECRET, add_webhooks

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.webhooks import Delivery, DeliveryResult
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import RunQuery, RunStatus

REPO = Path(__file__).resolve().parent.parent
# 25 key bytes: their base64 ends in `=`, which Svix-style secrets leave out
UNPADDED = "whsec_" + base64.b64encode(b"rollout-yaml-unpadded-key").decode().rstrip("=")
GITHUB_NEW = "gh-webhook-secret-2026"
GITHUB_OLD = "It's a Secret to Everybody"  # GitHub's documented example, being rotated out

OCTO = """\
consumer: octo
credentials:
  sink: { app: sink, values: { token: "${ACME_SINK_TOKEN}" } }
  gh: { app: github, values: { token: "${ACME_SINK_TOKEN}" } }
  slack: { app: slack, values: { access_token: "${GLOBEX_SINK_TOKEN}" } }
automations:
  issues-only:
    trigger:
      { app: github, trigger: repository-event, credential: gh, input: { owner: o, repo: r } }
    filter: "headers.\\"x-github-event\\" == 'issues'"
    action: { app: sink, action: deliver, credential: sink, input: { order_id: 1, text: x } }
  pulls-only:
    trigger:
      { app: github, trigger: repository-event, credential: gh, input: { owner: o, repo: p } }
    filter: "headers.\\"x-github-event\\" == 'pull_request' && payload.action == 'opened'"
    action: { app: sink, action: deliver, credential: sink, input: { order_id: 2, text: x } }
  clicks:
    trigger: { app: slack, trigger: button-clicked, credential: slack }
    action:
      app: sink
      action: post-message
      credential: sink
      input: { text: "{{ payload.action_id }} {{ payload.value }} by {{ payload.user }}" }
"""


@pytest.fixture
def runtime(tmp_path: Path, sink: AppServer) -> Iterator[Runtime]:
    project = copy_project(tmp_path)
    add_webhooks(project)
    for app in ("github", "slack"):
        shutil.copy(REPO / "connectors" / f"{app}.yaml", project / "connectors")
    environment = project / "environments/test/environment.yaml"
    environment.write_text(
        environment.read_text().replace(
            "apps:\n",
            'apps:\n  github:\n    base_url: "${SINK_URL}"\n    webhook_secret: "${GH_NEW}"\n'
            '    vars: { previous_webhook_secret: "${GH_OLD}" }\n'
            '  slack:\n    base_url: "${SINK_URL}"\n    webhook_secret: "${SLACK_SECRET}"\n',
        )
    )
    consumers = project / "environments/test/consumers"
    (consumers / "octo.yaml").write_text(OCTO)
    env, diagnostics = load_and_compile(
        Layout(project),
        "test",
        missing_secret=Severity.ERROR,
        environ={
            **environ(sink.url),
            **SECRETS,
            "STANDARD_SECRET": UNPADDED,
            "HOOKS_URL": sink.url,
            "GH_NEW": GITHUB_NEW,
            "GH_OLD": GITHUB_OLD,
        },
    )
    assert env is not None, [d for d in diagnostics if d.is_error]

    async def start() -> Runtime:
        store = open_store(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
        await store.open()
        started = Runtime(env, store)
        await started.start(claim=False)
        await started.subscriptions.sync()  # makes every automation's hookId
        return started

    loop = asyncio.new_event_loop()
    started = loop.run_until_complete(start())
    started.loop = loop  # type: ignore[attr-defined]
    yield started

    async def stop() -> None:
        await started.stop(grace=1)
        await started.store.close()

    loop.run_until_complete(stop())
    loop.close()


def run(runtime: Runtime, coroutine: Any) -> Any:
    return runtime.loop.run_until_complete(coroutine)  # type: ignore[attr-defined]


def receiver(runtime: Runtime, automation: str) -> Callable[..., DeliveryResult]:
    """Deliver to `automation`'s webhook URL: body and headers, as the publisher sent them."""
    hooks = run(runtime, runtime.store.list_hooks())
    (hook,) = [h for h in hooks if h.automation == automation]

    def deliver(body: bytes, headers: dict[str, str]) -> DeliveryResult:
        delivery = Delivery(hook.app, hook.trigger, hook.id, headers, body)
        return run(runtime, runtime.receive_webhook(delivery))  # type: ignore[no-any-return]

    return deliver


def refused(deliver: Callable[..., DeliveryResult], body: bytes, headers: dict[str, str]) -> str:
    with pytest.raises(EventRejected) as rejected:
        deliver(body, headers)
    assert rejected.value.status == 401
    return rejected.value.message


def runs_of(runtime: Runtime, automation: str) -> list[Any]:
    """The automation's runs with their events (payloads included)."""
    listed = run(runtime, runtime.store.list_runs(RunQuery(automation=automation)))
    return [run(runtime, runtime.store.get_run(r.id)) for r in listed]


def payload(event: str) -> bytes:
    return json.dumps({"type": event, "data": {"id": "ord_1", "amount": 1200}}).encode()


# -- Svix and Standard Webhooks: one scheme, two header families, an unpadded secret --------


@pytest.mark.parametrize("family", ["svix", "webhook"])
def test_svix_signed_deliveries_under_either_header_family(runtime: Runtime, family: str) -> None:
    deliver = receiver(runtime, "std")
    signer = svix.webhooks.Webhook(UNPADDED)
    body, msg_id, now = payload("order.paid"), f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        f"{family}-id": msg_id,
        f"{family}-timestamp": str(int(now.timestamp())),
        f"{family}-signature": signer.sign(msg_id, now, body.decode()),
        "content-type": "application/json",
    }
    signer.verify(body, headers)  # the publisher's own verifier agrees
    first = deliver(body, headers)
    assert first.runs_queued == 1
    again = deliver(body, headers)  # replayed: the same message id is the same event
    assert again.runs_queued == 0 and again.event_ids == first.event_ids
    (run_,) = runs_of(runtime, "std")
    assert run_.event.dedupe_key == msg_id  # the delivery id under either family
    assert "matches" in refused(deliver, body.replace(b"1200", b"9999"), headers)
    stale = datetime.fromtimestamp(now.timestamp() - 600, UTC)
    old = {**headers, f"{family}-timestamp": str(int(stale.timestamp()))}
    old[f"{family}-signature"] = signer.sign(msg_id, stale, body.decode())
    assert "old" in refused(deliver, body, old)


def test_standard_webhooks_reference_signer_with_an_unpadded_secret(runtime: Runtime) -> None:
    deliver = receiver(runtime, "std")
    signer = StandardWebhook(UNPADDED)  # the reference library pads before decoding, as we do
    body, msg_id, now = payload("order.created"), "msg_std_1", datetime.now(UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body.decode()),
    }
    assert deliver(body, headers).runs_queued == 1
    assert deliver(body, headers).runs_queued == 0  # replayed
    assert "matches" in refused(deliver, body + b" ", headers)  # tampered
    stale = datetime.fromtimestamp(now.timestamp() - 3600, UTC)
    headers = {
        "webhook-id": "msg_std_2",
        "webhook-timestamp": str(int(stale.timestamp())),
        "webhook-signature": signer.sign("msg_std_2", stale, body.decode()),
    }
    assert "old" in refused(deliver, body, headers)


# -- Stripe and Slack, signed by their own libraries ---------------------------------------


def test_stripe_signed_deliveries(runtime: Runtime) -> None:
    deliver = receiver(runtime, "payments")
    event = {
        "id": "evt_pub_1",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_9", "amount": 990}},
    }
    body = json.dumps(event).encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
    stripe.Webhook.construct_event(body.decode(), header, STRIPE_SECRET)  # Stripe agrees
    assert deliver(body, {"Stripe-Signature": header}).runs_queued == 1
    assert deliver(body, {"Stripe-Signature": header}).runs_queued == 0  # replayed
    tampered = body.replace(b"990", b"1")
    assert "matches" in refused(deliver, tampered, {"Stripe-Signature": header})
    stale = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRET, timestamp=int(time.time()) - 600
    )
    assert "old" in refused(deliver, body, {"Stripe-Signature": stale})


def slack_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    when = str(timestamp or int(time.time()))
    signature = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=when, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": when, "X-Slack-Signature": signature}


def test_slack_sdk_signed_event_deliveries(runtime: Runtime) -> None:
    deliver = receiver(runtime, "slack-events")
    body = json.dumps(
        {"type": "event_callback", "event_id": "Ev01", "event": {"type": "message", "text": "hi"}}
    ).encode()
    headers = slack_headers(body)
    assert SignatureVerifier(SLACK_SECRET).is_valid(body, **_slack_args(headers))
    assert deliver(body, headers).runs_queued == 1
    retried = {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert deliver(body, retried).runs_queued == 0  # Slack's own retry: the same event
    assert "mismatch" in refused(deliver, body.replace(b"hi", b"ho"), headers)
    body_old = body.replace(b"Ev01", b"Ev02")
    assert "old" in refused(deliver, body_old, slack_headers(body_old, int(time.time()) - 600))


def _slack_args(headers: dict[str, str]) -> dict[str, str]:
    return {
        "timestamp": headers["X-Slack-Request-Timestamp"],
        "signature": headers["X-Slack-Signature"],
    }


def test_a_slack_interactivity_post_is_mapped_through_from_json(runtime: Runtime) -> None:
    deliver = receiver(runtime, "clicks")
    interaction = {
        "type": "block_actions",
        "trigger_id": "1337.42.abcdef",
        "user": {"id": "U42", "username": "ada"},
        "channel": {"id": "C7"},
        "container": {"message_ts": "1700000000.000100"},
        "actions": [{"action_id": "approve", "value": "order-42", "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(interaction)}).encode()
    headers = {**slack_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    assert deliver(body, headers).runs_queued == 1
    (run_,) = runs_of(runtime, "clicks")
    assert run_.event.dedupe_key == "1337.42.abcdef"
    assert run_.event.payload == {
        "action_id": "approve",
        "value": "order-42",
        "user": "U42",
        "channel": "C7",
        "message_ts": "1700000000.000100",
        "trigger_id": "1337.42.abcdef",
    }
    assert deliver(body, headers).runs_queued == 0  # replayed
    assert "mismatch" in refused(deliver, body.replace(b"U42", b"U43"), headers)


# -- GitHub: its documented algorithm, its published vector, a rotated secret -------------


def github_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` as GitHub documents it: HMAC-SHA256 of the raw body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_github_signer_reproduces_githubs_published_vector() -> None:
    vector = load_vectors()["github"]
    assert (
        github_signature(vector["secret"], vector["body"].encode())
        == (vector["X-Hub-Signature-256"])
    )


def github_delivery(event: str, body: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(secret, raw),
        "Content-Type": "application/json",
    }


ISSUE = {"action": "opened", "repository": {"full_name": "o/r"}, "sender": {"login": "ada"}}
PULL = {"action": "opened", "repository": {"full_name": "o/p"}, "sender": {"login": "bob"}}


def test_github_automations_filter_on_the_event_header(runtime: Runtime) -> None:
    issues, pulls = receiver(runtime, "issues-only"), receiver(runtime, "pulls-only")
    assert issues(*github_delivery("issues", ISSUE, GITHUB_NEW)).runs_queued == 1
    assert issues(*github_delivery("pull_request", ISSUE, GITHUB_NEW)).runs_queued == 0
    assert pulls(*github_delivery("pull_request", PULL, GITHUB_NEW)).runs_queued == 1
    assert pulls(*github_delivery("issues", PULL, GITHUB_NEW)).runs_queued == 0
    ping = github_delivery("ping", {"zen": "Keep it logically awesome."}, GITHUB_NEW)
    assert issues(*ping).event_ids == []  # `items` drops it: no event, no run at all
    filtered = sorted(r.status is RunStatus.FILTERED for r in runs_of(runtime, "issues-only"))
    assert filtered == [False, True]  # the issues event ran, the pull request was filtered
    queued = [r for r in runs_of(runtime, "pulls-only") if r.status is not RunStatus.FILTERED]
    assert queued[0].event.payload["event"] == "pull_request"
    assert queued[0].event.payload["data"]["sender"] == {"login": "bob"}


def test_a_rotated_github_secret_verifies_with_either_and_only_those(runtime: Runtime) -> None:
    deliver = receiver(runtime, "issues-only")
    body, headers = github_delivery("issues", ISSUE, GITHUB_OLD)  # signed before the rotation
    signature = headers["X-Hub-Signature-256"]
    assert octokit.verify_with_fallback(GITHUB_NEW, body.decode(), signature, [GITHUB_OLD])
    assert deliver(body, headers).runs_queued == 1
    assert deliver(body, headers).runs_queued == 0  # replayed: the same X-GitHub-Delivery
    body, headers = github_delivery("issues", {**ISSUE, "n": 2}, GITHUB_NEW)
    assert deliver(body, headers).runs_queued == 1
    body, headers = github_delivery("issues", {**ISSUE, "n": 3}, "a-secret-nobody-configured")
    assert "mismatch" in refused(deliver, body, headers)
    assert "mismatch" in refused(
        deliver,
        body.replace(b"3", b"4"),
        github_delivery("issues", {**ISSUE, "n": 3}, GITHUB_NEW)[1],
    )
