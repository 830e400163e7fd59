"""Webhook triggers in the real daemon: deliveries signed as each publisher signs them (the
published examples among them) through `POST /webhooks/...`, and REST-hook subscriptions made
and removed at a real HTTP server standing in for the App while consumer files are edited."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import stripe
from app_server import Answer, AppServer
from daemon_proc import Daemon
from runner_env import copy_project
from standardwebhooks.webhooks import Webhook
from test_http_signatures import load_vectors
from webhook_project import (
    GITHUB_SECRET,
    HMAC_SECRET,
    ORDERS_AUTOMATION,
    SECRETS,
    SLACK_SECRET,
    STANDARD_SECRET,
    STRIPE_SECRET,
    add_webhooks,
    compact,
    consumer_file,
    db_count,
)

VECTORS = load_vectors()


@pytest.fixture
def sink() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"ok": True})
    yield server
    server.stop()


@pytest.fixture
def hooks_app() -> Iterator[AppServer]:
    """The App whose REST-hook API the runner subscribes to; records every call."""
    server = AppServer().start()
    server.default = Answer(201, {"webhook": {"id": 4242}})
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = copy_project(tmp_path)
    add_webhooks(project)
    return project


def start(project: Path, sink: AppServer, hooks_app: AppServer, port: int | None = None) -> Daemon:
    env = {**SECRETS, "HOOKS_URL": hooks_app.url}
    return Daemon(project, sink.url, port=port, extra_env=env).start()


@pytest.fixture
def daemon(project: Path, sink: AppServer, hooks_app: AppServer) -> Iterator[Daemon]:
    running = start(project, sink, hooks_app)
    yield running
    running.stop()


def webhook_urls(daemon: Daemon, *, expect: set[str] | None = None, timeout: float = 10) -> dict:
    """`webhook_url` of each of hooky's automations, once the runner has made them."""
    deadline = time.time() + timeout
    with daemon.client("hooky") as client:
        while True:
            listed = client.get("/v1/automations").json()["automations"]
            urls = {a["key"]: a["webhook_url"] for a in listed}
            ready = {k for k, v in urls.items() if v}
            if (expect is None and urls and all(urls.values())) or (
                expect is not None and ready == expect
            ):
                return urls
            if time.time() > deadline:
                raise AssertionError(f"webhook URLs not ready: {urls}")
            time.sleep(0.05)


def path_of(url: str) -> str:
    return urlsplit(url).path


def deliver(daemon: Daemon, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(daemon.url + path_of(url), content=body, headers=headers, timeout=10)


def runs_of(daemon: Daemon, automation: str) -> list[dict]:
    with daemon.client("hooky") as client:
        listed = client.get("/v1/runs", params={"automation": automation}).json()["runs"]
        return [client.get(f"/v1/runs/{r['id']}").json() for r in listed]


def standard_headers(msg_id: str, when: datetime, body: bytes) -> dict[str, str]:
    signature = Webhook(STANDARD_SECRET).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def slack_headers(body: bytes, when: int) -> dict[str, str]:
    base = f"v0:{when}:".encode() + body
    digest = hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(when),
        "X-Slack-Signature": f"v0={digest}",
        "content-type": "application/json",
    }


def stripe_event(event_id: str, intent: str = "pi_123") -> bytes:
    return compact(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent, "object": "payment_intent", "amount": 2000}},
        }
    )


def orders_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).digest()
    return {
        "X-Hooks-Hmac-Sha256": base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


# -- published examples, through the endpoint --------------------------------------------


def test_the_published_examples_are_accepted_and_become_runs(
    daemon: Daemon, sink: AppServer
) -> None:
    urls = webhook_urls(daemon)
    std = VECTORS["standard-webhooks"]
    answer = deliver(
        daemon,
        urls["std-vector"],
        std["body"].encode(),
        {
            "webhook-id": std["webhook-id"],
            "webhook-timestamp": std["webhook-timestamp"],
            "webhook-signature": std["webhook-signature"],
            "content-type": "application/json",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["runs_queued"] == 1

    gh = VECTORS["github"]
    answer = deliver(
        daemon,
        urls["gh"],
        gh["body"].encode(),
        {"X-Hub-Signature-256": gh["X-Hub-Signature-256"], "content-type": "text/plain"},
    )
    assert answer.status_code == 200, answer.text

    slack = VECTORS["slack"]
    answer = deliver(
        daemon,
        urls["slack-vector"],
        slack["body"].encode(),
        {
            "X-Slack-Request-Timestamp": slack["X-Slack-Request-Timestamp"],
            "X-Slack-Signature": slack["X-Slack-Signature"],
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status_code == 200, answer.text

    # Stripe publishes no fixed vector: its own library signs, as its docs advise for tests.
    body = stripe_event("evt_1")
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
    answer = deliver(
        daemon,
        urls["payments"],
        body,
        {"Stripe-Signature": header, "content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text

    sink.wait_for(4)
    [std_run] = runs_of(daemon, "std-vector")
    assert std_run["status"] == "succeeded"
    assert std_run["event"]["payload"] == {"test": 2432232314}
    assert std_run["event"]["key"] == std["webhook-id"]  # the delivery id is the default key
    [gh_run] = runs_of(daemon, "gh")
    assert gh_run["event"]["payload"] == "Hello, World!"
    [slack_run] = runs_of(daemon, "slack-vector")
    assert slack_run["event"]["payload"] == {
        "command": "/webhook-collect",
        "user": "roadrunner",
        "channel": "foobar",
    }
    [stripe_run] = runs_of(daemon, "payments")
    assert stripe_run["event"]["payload"] == {"payment_intent": "pi_123", "amount": 2000}
    assert stripe_run["event"]["key"] == "evt_1"
    texts = sorted(r.json()["text"] for r in sink.requests)
    assert '{"amount": 2000, "payment_intent": "pi_123"}' in texts or any(
        "pi_123" in t for t in texts
    )


def test_a_bad_signature_is_401_and_stores_nothing(daemon: Daemon, project: Path) -> None:
    urls = webhook_urls(daemon)
    std, gh, slack = VECTORS["standard-webhooks"], VECTORS["github"], VECTORS["slack"]
    now = int(time.time())
    stripe_body = stripe_event("evt_bad")
    forged = [
        (  # the published signature over a changed body
            "std-vector",
            std["body"].replace("2432232314", "2432232315").encode(),
            {
                "webhook-id": std["webhook-id"],
                "webhook-timestamp": std["webhook-timestamp"],
                "webhook-signature": std["webhook-signature"],
            },
            "no v1 signature in header webhook-signature matches",
        ),
        (  # the right body signed with another secret
            "gh",
            gh["body"].encode(),
            {
                "X-Hub-Signature-256": "sha256="
                + hmac.new(b"another secret", gh["body"].encode(), hashlib.sha256).hexdigest()
            },
            "signature mismatch in header X-Hub-Signature-256",
        ),
        (  # the published signature with another timestamp
            "slack-vector",
            slack["body"].encode(),
            {
                "X-Slack-Request-Timestamp": str(int(slack["X-Slack-Request-Timestamp"]) + 1),
                "X-Slack-Signature": slack["X-Slack-Signature"],
                "content-type": "application/x-www-form-urlencoded",
            },
            "signature mismatch in header X-Slack-Signature",
        ),
        (  # keyed without the whsec_ prefix: Stripe signs with the whole string
            "payments",
            stripe_body,
            {
                "Stripe-Signature": f"t={now},v1="
                + hmac.new(
                    STRIPE_SECRET.removeprefix("whsec_").encode(),
                    f"{now}.".encode() + stripe_body,
                    hashlib.sha256,
                ).hexdigest()
            },
            "no v1 signature in header Stripe-Signature matches",
        ),
        ("payments", stripe_body, {}, "missing header Stripe-Signature"),
        ("orders", compact({"orders": [{"id": 1}]}), {"X-Hooks-Hmac-Sha256": "AAAA"}, "mismatch"),
    ]
    for key, body, headers, reason in forged:
        answer = deliver(daemon, urls[key], body, headers)
        assert answer.status_code == 401, (key, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unauthorized"
        assert reason in error["message"], (key, error)
    assert db_count(project, "select count(*) from events") == 0
    assert db_count(project, "select count(*) from runs") == 0
    with daemon.client("hooky") as client:
        assert client.get("/v1/runs").json()["runs"] == []
    logs = daemon.logs()
    assert "webhook delivery refused" in logs
    for secret in (STANDARD_SECRET, GITHUB_SECRET, SLACK_SECRET, STRIPE_SECRET, HMAC_SECRET):
        assert secret not in logs


def test_a_delivery_older_than_the_tolerance_is_refused(daemon: Daemon, project: Path) -> None:
    urls = webhook_urls(daemon)
    old = datetime.fromtimestamp(time.time() - 400, UTC)  # tolerance 5m
    body = compact({"type": "ping"})
    answer = deliver(daemon, urls["std"], body, standard_headers("msg_old", old, body))
    assert answer.status_code == 401
    assert "old, beyond the tolerance of 300s" in answer.json()["error"]["message"]

    future = datetime.fromtimestamp(time.time() + 400, UTC)
    answer = deliver(daemon, urls["std"], body, standard_headers("msg_future", future, body))
    assert answer.status_code == 401
    assert "in the future" in answer.json()["error"]["message"]

    slack_body = compact({"type": "event_callback", "event_id": "Ev1", "event": {"text": "hi"}})
    answer = deliver(
        daemon, urls["slack-events"], slack_body, slack_headers(slack_body, int(time.time()) - 400)
    )
    assert answer.status_code == 401

    stripe_body = stripe_event("evt_old")
    stale = stripe.WebhookSignature.generate_signature_header(
        stripe_body.decode(), STRIPE_SECRET, timestamp=int(time.time()) - 400
    )
    answer = deliver(daemon, urls["payments"], stripe_body, {"Stripe-Signature": stale})
    assert answer.status_code == 401
    assert db_count(project, "select count(*) from events") == 0

    # the same deliveries signed now are accepted
    now = datetime.now(UTC)
    assert (
        deliver(daemon, urls["std"], body, standard_headers("msg_now", now, body)).status_code
        == 200
    )
    fresh = stripe.WebhookSignature.generate_signature_header(stripe_body.decode(), STRIPE_SECRET)
    assert (
        deliver(daemon, urls["payments"], stripe_body, {"Stripe-Signature": fresh}).status_code
        == 200
    )
    assert db_count(project, "select count(*) from events") == 2


def test_the_same_delivery_twice_is_one_run(daemon: Daemon, sink: AppServer, project: Path) -> None:
    urls = webhook_urls(daemon)
    body = compact({"type": "invoice.paid", "n": 1})
    headers = standard_headers("msg_twice", datetime.now(UTC), body)
    answers = [deliver(daemon, urls["std"], body, headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["runs_queued"] for a in answers] == [1, 0, 0]
    assert len({a.json()["event_ids"][0] for a in answers}) == 1

    # Stripe retries a delivery with a new signature: the event id still dedupes it
    stripe_body = stripe_event("evt_retry")
    for _ in range(2):
        header = stripe.WebhookSignature.generate_signature_header(
            stripe_body.decode(), STRIPE_SECRET
        )
        assert (
            deliver(daemon, urls["payments"], stripe_body, {"Stripe-Signature": header}).status_code
            == 200
        )
    sink.wait_for(2)
    time.sleep(0.5)
    assert len(sink.requests) == 2
    assert len(runs_of(daemon, "std")) == 1
    assert len(runs_of(daemon, "payments")) == 1
    assert db_count(project, "select count(*) from runs") == 2


def test_slack_url_verification_is_answered_and_stores_nothing(
    daemon: Daemon, project: Path
) -> None:
    urls = webhook_urls(daemon)
    body = compact(
        {
            "token": "x",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    answer = deliver(daemon, urls["slack-events"], body, slack_headers(body, int(time.time())))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    # an unsigned challenge is refused like any unsigned delivery
    assert (
        deliver(
            daemon, urls["slack-events"], body, {"content-type": "application/json"}
        ).status_code
        == 401
    )
    # an event callback becomes a run; other types in `items` are dropped
    event = compact({"type": "event_callback", "event_id": "Ev42", "event": {"text": "hello"}})
    answer = deliver(daemon, urls["slack-events"], event, slack_headers(event, int(time.time())))
    assert answer.json()["runs_queued"] == 1
    assert db_count(project, "select count(*) from events") == 1


def test_unknown_urls_bad_bodies_and_size_limit(daemon: Daemon, project: Path) -> None:
    urls = webhook_urls(daemon)
    std = urls["std"]
    bogus = std.rsplit("/", 1)[0] + "/" + "0" * 32
    answer = deliver(daemon, bogus, b"{}", {})
    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "code": "not_found",
        "message": "no active webhook at this URL",
        "details": [],
    }
    # the right hookId under another trigger's path
    wrong = std.replace("/hooks/standard/", "/hooks/github/")
    assert deliver(daemon, wrong, b"{}", {}).status_code == 404
    # signed but not JSON
    body = b"not json"
    answer = deliver(daemon, std, body, standard_headers("msg_text", datetime.now(UTC), body))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json"
    # over runtime.limits.max_payload_bytes (1 MiB by default): refused before anything else
    huge = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    answer = deliver(daemon, std, huge, {})
    assert answer.status_code == 413
    # a payload that does not match the trigger's payload_schema
    orders = compact({"orders": [{"id": "not-a-number"}]})
    answer = deliver(daemon, urls["orders"], orders, orders_headers(orders))
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["path"] == "$.items[0].payload.order_id"
    assert db_count(project, "select count(*) from events") == 0


def test_an_hmac_delivery_with_several_items_runs_the_action(
    daemon: Daemon, sink: AppServer
) -> None:
    urls = webhook_urls(daemon)
    body = compact({"orders": [{"id": 1, "total": "5.00"}, {"id": 2, "total": "7.00"}]})
    answer = deliver(daemon, urls["orders"], body, orders_headers(body))
    assert answer.status_code == 200, answer.text
    assert answer.json()["runs_queued"] == 2
    sink.wait_for(2)
    assert sorted(r.json()["text"] for r in sink.requests) == ["Order 1", "Order 2"]
    keys = sorted(r["event"]["key"] for r in runs_of(daemon, "orders"))
    assert keys == ["1", "2"]


# -- subscriptions ------------------------------------------------------------------------


def _wait(condition: object, what: str, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while not condition():  # type: ignore[operator]
        if time.time() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def _calls(hooks_app: AppServer) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in hooks_app.requests]


def _generation(daemon: Daemon) -> int:
    return int(httpx.get(daemon.url + "/status", timeout=5).json()["generation"])


def _edit(daemon: Daemon, consumer: Path, text: str) -> None:
    before = _generation(daemon)
    consumer.write_text(text)
    _wait(lambda: _generation(daemon) > before, "the edit was not reloaded")


def test_subscriptions_follow_the_consumer_file(
    project: Path, sink: AppServer, hooks_app: AppServer
) -> None:
    consumer = project / "environments/test/consumers/hooky.yaml"
    hooks_app.answer(Answer(201, {"webhook": {"id": 101}}))
    daemon = start(project, sink, hooks_app)
    try:
        first = webhook_urls(daemon)["orders"]
        _wait(lambda: len(hooks_app.requests) == 1, "no subscribe call")
        [call] = hooks_app.requests
        assert (call.method, call.path) == ("POST", "/webhooks")
        assert call.json() == {"topic": "orders/paid", "address": first}
        assert call.headers["Authorization"] == f"Bearer {SECRETS['HOOKS_TOKEN']}"
    finally:
        assert daemon.stop() == 0

    # a restart keeps the URL and does not subscribe again
    daemon = start(project, sink, hooks_app)
    try:
        assert webhook_urls(daemon)["orders"] == first
        time.sleep(1.0)
        assert _calls(hooks_app) == [("POST", "/webhooks")]

        # a reload that changes the action but not the trigger keeps it too
        _edit(
            daemon,
            consumer,
            consumer_file(ORDERS_AUTOMATION.format(topic="orders/paid", prefix="Paid")),
        )
        time.sleep(0.5)
        assert webhook_urls(daemon)["orders"] == first
        assert _calls(hooks_app) == [("POST", "/webhooks")]

        # new inputParams: a new URL, the old subscription removed, a new one made
        hooks_app.answer(Answer(200, {}), Answer(201, {"webhook": {"id": 202}}))
        _edit(
            daemon,
            consumer,
            consumer_file(ORDERS_AUTOMATION.format(topic="orders/create", prefix="Paid")),
        )
        _wait(lambda: len(hooks_app.requests) == 3, f"calls: {_calls(hooks_app)}")
        second = webhook_urls(daemon)["orders"]
        assert second != first
        assert _calls(hooks_app)[1:] == [("DELETE", "/webhooks/101"), ("POST", "/webhooks")]
        assert hooks_app.requests[2].json() == {"topic": "orders/create", "address": second}
        body = compact({"orders": [{"id": 5}]})
        assert deliver(daemon, first, body, orders_headers(body)).status_code == 404
        assert deliver(daemon, second, body, orders_headers(body)).status_code == 200

        # removing the automation unsubscribes it
        _edit(daemon, consumer, consumer_file(orders=None))
        _wait(lambda: len(hooks_app.requests) == 4, f"calls: {_calls(hooks_app)}")
        assert _calls(hooks_app)[3] == ("DELETE", "/webhooks/202")
        assert "orders" not in webhook_urls(daemon)
        assert deliver(daemon, second, body, orders_headers(body)).status_code == 404
        _wait(
            lambda: (
                db_count(project, "select count(*) from webhooks where automation='orders'") == 0
            ),
            "the retired hook was not deleted",
        )
    finally:
        daemon.stop()
    assert SECRETS["HOOKS_TOKEN"] not in daemon.logs()


def test_disabling_keeps_the_url_and_unsubscribes_until_enabled(
    daemon: Daemon, project: Path, hooks_app: AppServer
) -> None:
    consumer = project / "environments/test/consumers/hooky.yaml"
    url = webhook_urls(daemon)["orders"]
    _wait(lambda: len(hooks_app.requests) == 1, "no subscribe call")
    orders = ORDERS_AUTOMATION.format(topic="orders/paid", prefix="Order")
    _edit(
        daemon,
        consumer,
        consumer_file(orders.replace("  orders:\n", "  orders:\n    enabled: false\n")),
    )
    _wait(lambda: len(hooks_app.requests) == 2, f"calls: {_calls(hooks_app)}")
    assert _calls(hooks_app)[1] == ("DELETE", "/webhooks/4242")
    body = compact({"orders": [{"id": 5}]})
    assert deliver(daemon, url, body, orders_headers(body)).status_code == 404
    assert webhook_urls(daemon)["orders"] == url
    _edit(daemon, consumer, consumer_file(orders))
    _wait(lambda: len(hooks_app.requests) == 3, f"calls: {_calls(hooks_app)}")
    assert _calls(hooks_app)[2] == ("POST", "/webhooks")
    assert webhook_urls(daemon)["orders"] == url
    assert deliver(daemon, url, body, orders_headers(body)).status_code == 200


def test_a_failing_subscribe_is_retried_and_shown_in_status(
    project: Path, sink: AppServer, hooks_app: AppServer
) -> None:
    hooks_app.answer(
        Answer(500, {"error": f"token {SECRETS['HOOKS_TOKEN']} rejected"}),
        Answer(201, {"webhook": {"id": 77}}),
    )
    daemon = start(project, sink, hooks_app)
    try:

        def failing() -> list:
            return httpx.get(daemon.url + "/status", timeout=5).json()["webhooks"]["pending"]

        _wait(lambda: failing() != [], "the failure is not shown")
        [shown] = failing()
        assert shown["automation"] == "orders" and shown["attempts"] == 1
        assert shown["last_error"].startswith("subscribe: HTTP 500")
        assert SECRETS["HOOKS_TOKEN"] not in json.dumps(shown)
        _wait(lambda: len(hooks_app.requests) == 2, "not retried", timeout=15)
        _wait(lambda: failing() == [], "the retry's success is not shown")
        assert hooks_app.requests[1].at - hooks_app.requests[0].at >= 0.5
    finally:
        daemon.stop()
    logs = daemon.logs()
    assert "subscribe of hooky/orders failed (attempt 1" in logs
    assert SECRETS["HOOKS_TOKEN"] not in logs


def test_one_event_sent_to_two_automations_urls_runs_each_once(
    daemon: Daemon, project: Path, sink: AppServer
) -> None:
    # Stripe sends each endpoint the same evt_… id; each automation gets its run, once.
    consumer = project / "environments/test/consumers/hooky.yaml"
    second = (
        "  payments-2:\n"
        "    trigger: { app: hooks, trigger: stripe, credential: hooks }\n"
        "    action:\n"
        "      app: sink\n"
        "      action: post-message\n"
        "      credential: sink\n"
        '      input: { text: "second {{ payload.payment_intent }}" }\n'
    )
    _edit(daemon, consumer, consumer.read_text() + second)
    urls = webhook_urls(daemon)
    assert urls["payments"] != urls["payments-2"]
    body = stripe_event("evt_shared", intent="pi_shared")
    answers = []
    for key in ("payments", "payments-2", "payments-2", "payments"):
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)
        answers.append(deliver(daemon, urls[key], body, {"Stripe-Signature": header}))
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert [a.json()["runs_queued"] for a in answers] == [1, 1, 0, 0]
    assert len({a.json()["event_ids"][0] for a in answers}) == 1  # one stored event
    sink.wait_for(2)
    time.sleep(0.5)
    assert len(sink.requests) == 2
    assert "second pi_shared" in {r.json()["text"] for r in sink.requests}
    assert [r["status"] for r in runs_of(daemon, "payments-2")] == ["succeeded"]
    assert db_count(project, "select count(*) from events") == 1
    assert db_count(project, "select count(*) from runs") == 2
