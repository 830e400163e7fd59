"""Webhook triggers added to the runner test project: one trigger per verification scheme, and
one REST-hook trigger with subscribe/unsubscribe against a real HTTP server standing in for
the App. The secrets are the published example secrets of each scheme."""

from __future__ import annotations

import json
from pathlib import Path

STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # Standard Webhooks' own test secret
GITHUB_SECRET = "It's a Secret to Everybody"  # GitHub docs' example
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack docs' example
STRIPE_SECRET = "whsec_test_secret_for_stripe_checks_0123"
HMAC_SECRET = "hooks-app-hmac-secret-9f8e7d"
HOOKS_TOKEN = "hooks-api-token-31c7a2"

SECRETS = {
    "HOOKS_TOKEN": HOOKS_TOKEN,
    "STANDARD_SECRET": STANDARD_SECRET,
    "GITHUB_SECRET": GITHUB_SECRET,
    "SLACK_SECRET": SLACK_SECRET,
    "STRIPE_SECRET": STRIPE_SECRET,
    "HOOKS_WEBHOOK_SECRET": HMAC_SECRET,
}

# Published vectors carry fixed timestamps from years ago: the `*-vector` triggers accept them
# with a wide tolerance; the other triggers keep the usual five minutes.
CONNECTOR = """\
app: hooks
name: Hooks
version: 1.0.0
base_url: http://hooks.invalid
auth:
  type: bearer
  fields:
    standard_secret: { type: string, secret: true }
    github_secret: { type: string, secret: true }
    slack_secret: { type: string, secret: true }
    stripe_secret: { type: string, secret: true }
triggers:
  standard-vector:
    name: Standard Webhooks (published vector)
    payload_schema: { type: object }
    webhook:
      verify:
        scheme: standard-webhooks
        secret: "{{ credential.standard_secret }}"
        tolerance: 4000d
  standard:
    name: Standard Webhooks
    payload_schema: { type: object }
    webhook:
      verify:
        scheme: standard-webhooks
        secret: "{{ credential.standard_secret }}"
        tolerance: 5m
  github:
    name: GitHub-signed
    payload_schema: {}
    webhook:
      verify: { scheme: github, secret: "{{ credential.github_secret }}" }
  slack-vector:
    name: Slack slash command (published vector)
    payload_schema: { type: object }
    webhook:
      verify: { scheme: slack, secret: "{{ credential.slack_secret }}", tolerance: 4000d }
      payload: "{command: command, user: user_name, channel: channel_name}"
  slack:
    name: Slack events
    payload_schema: { type: object }
    webhook:
      verify: { scheme: slack, secret: "{{ credential.slack_secret }}", tolerance: 5m }
      items: "[@][?type == 'event_callback']"
      id: event_id
      payload: "{text: event.text}"
  stripe:
    name: Stripe payment
    payload_schema:
      type: object
      required: [payment_intent]
      properties: { payment_intent: { type: string } }
    webhook:
      verify: { scheme: stripe, secret: "{{ credential.stripe_secret }}", tolerance: 5m }
      items: "[@][?type == 'payment_intent.succeeded']"
      id: id
      payload: "{payment_intent: data.object.id, amount: data.object.amount}"
  orders:
    name: Orders (REST hook)
    input_schema: { type: object, required: [topic], properties: { topic: { type: string } } }
    payload_schema:
      type: object
      required: [order_id]
      properties: { order_id: { type: integer } }
    webhook:
      verify:
        scheme: hmac
        header: X-Hooks-Hmac-Sha256
        encoding: base64
        secret: "{{ app.webhook_secret }}"
      items: "orders"
      id: "to_string(id)"
      payload: "{order_id: id, total: total}"
      subscribe:
        request:
          method: POST
          path: /webhooks
          json: { topic: "{{ input.topic }}", address: "{{ webhook.url }}" }
        id: "webhook.id"
      unsubscribe:
        request: { method: DELETE, path: "/webhooks/{{ subscription.id }}" }
"""

AUTOMATIONS = {
    "std-vector": "standard-vector",
    "std": "standard",
    "gh": "github",
    "slack-vector": "slack-vector",
    "slack-events": "slack",
    "payments": "stripe",
}

ORDERS_AUTOMATION = """\
  orders:
    trigger: {{ app: hooks, trigger: orders, credential: hooks, input: {{ topic: {topic} }} }}
    action:
      app: sink
      action: post-message
      credential: sink
      input: {{ text: "{prefix} {{{{ payload.order_id }}}}" }}
"""


def consumer_file(
    orders: str | None = ORDERS_AUTOMATION.format(topic="orders/paid", prefix="Order"),
) -> str:
    lines = [
        "consumer: hooky",
        "credentials:",
        "  sink:",
        "    app: sink",
        '    values: { token: "${ACME_SINK_TOKEN}" }',
        "  hooks:",
        "    app: hooks",
        "    values:",
        '      token: "${HOOKS_TOKEN}"',
        '      standard_secret: "${STANDARD_SECRET}"',
        '      github_secret: "${GITHUB_SECRET}"',
        '      slack_secret: "${SLACK_SECRET}"',
        '      stripe_secret: "${STRIPE_SECRET}"',
        "automations:",
    ]
    for key, trigger in AUTOMATIONS.items():
        lines += [
            f"  {key}:",
            f"    trigger: {{ app: hooks, trigger: {trigger}, credential: hooks }}",
            "    action:",
            "      app: sink",
            "      action: post-message",
            "      credential: sink",
            '      input: { text: "{{ payload | tojson }}" }',
        ]
    return "\n".join(lines) + "\n" + (orders or "")


def add_webhooks(project: Path) -> Path:
    """Add the `hooks` App, its environment settings and the `hooky` consumer; return the
    consumer file."""
    (project / "connectors" / "hooks.yaml").write_text(CONNECTOR)
    environment = project / "environments" / "test" / "environment.yaml"
    environment.write_text(
        environment.read_text().replace(
            "apps:\n",
            'apps:\n  hooks:\n    base_url: "${HOOKS_URL}"\n'
            '    webhook_secret: "${HOOKS_WEBHOOK_SECRET}"\n',
        )
    )
    consumer = project / "environments" / "test" / "consumers" / "hooky.yaml"
    consumer.write_text(consumer_file())
    return consumer


def db_count(project: Path, sql: str) -> int:
    import sqlite3

    path = project / "environments" / "test" / ".rollout" / "state.db"
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
