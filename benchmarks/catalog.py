"""The generated Apps: a dozen business entities, and connectors built from them.

Shapes are realistic on purpose (nested payload schemas, `$ref`s, templated requests, JMESPath,
pagination, signed webhooks) so that `validate` spends its time where a real project makes it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

STRING: Json = {"type": "string"}
NULLABLE: Json = {"type": ["string", "null"]}


@dataclass(frozen=True)
class Entity:
    """One kind of record an App holds; every entity has the same roles under its own names."""

    name: str
    plural: str
    id: str
    id_type: str
    title: str
    state: str
    states: tuple[str, ...]
    person: str
    timestamp: str
    extras: tuple[tuple[str, Json], ...] = ()

    @property
    def slug(self) -> str:
        return self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    def payload_schema(self) -> Json:
        person = {"name": STRING, "email": {"type": ["string", "null"], "format": "email"}}
        properties: Json = {
            self.id: {"type": self.id_type, "description": f"{self.label} ID"},
            self.title: STRING,
            self.state: {"type": "string", "enum": list(self.states)},
            self.person: {"type": "object", "properties": person},
            self.timestamp: {"type": "string", "format": "date-time"},
        }
        properties.update(self.extras)
        return {
            "type": "object",
            "required": [self.id, self.title, self.state],
            "properties": properties,
        }

    def payload_query(self) -> str:
        """JMESPath shaping one API item into the payload (APIs name things their own way)."""
        parts = [
            f"{self.id}: id",
            f"{self.title}: {self.title}",
            f"{self.state}: {self.state}",
            f"{self.person}: {{name: {self.person}.full_name, email: {self.person}.email}}",
            f"{self.timestamp}: {self.timestamp}",
            *(f"{name}: {name}" for name, _ in self.extras),
        ]
        return "{" + ", ".join(parts) + "}"


MONEY = (("total", {"type": "string", "description": "Decimal string"}), ("currency", STRING))
ENTITIES: tuple[Entity, ...] = (
    Entity(
        "order",
        "orders",
        "order_id",
        "integer",
        "name",
        "status",
        ("open", "paid", "fulfilled", "refunded"),
        "customer",
        "created_at",
        extras=MONEY,
    ),
    Entity(
        "contact",
        "contacts",
        "contact_id",
        "integer",
        "full_name",
        "lifecycle_stage",
        ("subscriber", "lead", "customer"),
        "owner",
        "created_at",
        extras=(
            ("company", {"type": "object", "properties": {"name": STRING, "domain": STRING}}),
            ("phone", NULLABLE),
        ),
    ),
    Entity(
        "ticket",
        "tickets",
        "ticket_id",
        "integer",
        "subject",
        "status",
        ("new", "open", "pending", "solved"),
        "requester",
        "created_at",
        extras=(("priority", {"type": "string", "enum": ["low", "normal", "high", "urgent"]}),),
    ),
    Entity(
        "invoice",
        "invoices",
        "invoice_id",
        "string",
        "number",
        "status",
        ("draft", "open", "paid", "void"),
        "customer",
        "issued_at",
        extras=(("amount_due", {"type": "integer", "minimum": 0}), ("currency", STRING)),
    ),
    Entity(
        "message",
        "messages",
        "message_id",
        "string",
        "text",
        "channel_type",
        ("public", "private", "im"),
        "author",
        "sent_at",
        extras=(("channel", STRING),),
    ),
    Entity(
        "issue",
        "issues",
        "issue_id",
        "integer",
        "title",
        "state",
        ("open", "closed"),
        "author",
        "created_at",
        extras=(("repository", STRING), ("labels", {"type": "array", "items": STRING})),
    ),
    Entity(
        "submission",
        "submissions",
        "submission_id",
        "string",
        "form_name",
        "status",
        ("complete", "partial"),
        "respondent",
        "submitted_at",
        extras=(("form_id", STRING), ("score", {"type": ["integer", "null"]})),
    ),
    Entity(
        "deal",
        "deals",
        "deal_id",
        "integer",
        "title",
        "stage",
        ("qualified", "proposal", "won", "lost"),
        "owner",
        "updated_at",
        extras=(("amount", {"type": "number"}), ("currency", STRING)),
    ),
    Entity(
        "task",
        "tasks",
        "task_id",
        "string",
        "title",
        "status",
        ("todo", "doing", "done"),
        "assignee",
        "due_at",
        extras=(("project", STRING),),
    ),
    Entity(
        "meeting",
        "meetings",
        "meeting_id",
        "string",
        "summary",
        "status",
        ("confirmed", "tentative", "cancelled"),
        "organizer",
        "start_at",
        extras=(("location", NULLABLE),),
    ),
    Entity(
        "shipment",
        "shipments",
        "shipment_id",
        "string",
        "tracking_number",
        "status",
        ("label_created", "in_transit", "delivered"),
        "recipient",
        "shipped_at",
        extras=(("carrier", STRING),),
    ),
    Entity(
        "payment",
        "payments",
        "payment_id",
        "string",
        "description",
        "status",
        ("succeeded", "failed", "refunded"),
        "payer",
        "created_at",
        extras=MONEY,
    ),
)


@dataclass(frozen=True)
class InputField:
    """One action input: `kind` says how an automation fills it (see generate.map_inputs)."""

    name: str
    kind: str  # title | email | id | state | body | channel | flag
    schema: Json
    required: bool


@dataclass(frozen=True)
class TriggerDef:
    app: str
    key: str
    kind: str  # poll | webhook | push
    entity: Entity


@dataclass(frozen=True)
class ActionDef:
    app: str
    key: str
    entity: Entity
    fields: tuple[InputField, ...]
    name: str
    method: str
    path: str
    body: Json


@dataclass(frozen=True)
class App:
    key: str
    label: str
    auth: str  # api_key | bearer
    triggers: tuple[TriggerDef, ...]
    actions: tuple[ActionDef, ...]
    document: Json

    @property
    def has_webhooks(self) -> bool:
        return any(t.kind == "webhook" for t in self.triggers)


def _input_schema(fields: tuple[InputField, ...]) -> Json:
    return {
        "type": "object",
        "required": [f.name for f in fields if f.required],
        "properties": {f.name: f.schema for f in fields},
        "additionalProperties": False,
    }


def _value(field: InputField) -> str:
    tail = "" if field.required else " | default(none)"
    return f"{{{{ input.{field.name}{tail} }}}}"


def _actions(app: str, e: Entity) -> list[ActionDef]:
    """The actions an App offers on `e`: create, update state, add a note, archive."""
    ident = InputField(
        e.id, "id", {"type": ["string", "integer"], "description": f"{e.label} ID"}, True
    )
    state = {"type": "string", "enum": list(e.states)}
    item = f"/{e.plural}/{{{{ input.{e.id} }}}}"
    if e.name == "message":
        create: tuple[InputField, ...] = (
            InputField("channel", "channel", {"type": "string", "description": "Channel ID"}, True),
            InputField("text", "body", {"type": "string", "maxLength": 40000}, True),
            InputField("unfurl_links", "flag", {"type": "boolean"}, False),
        )
        create_body: Json = {f.name: _value(f) for f in create}
    else:
        create = (
            InputField(e.title, "title", {"type": "string", "minLength": 1}, True),
            InputField(f"{e.person}_email", "email", {"type": "string", "format": "email"}, True),
            InputField(e.state, "state", state, False),
            InputField("description", "body", {"type": "string", "maxLength": 10000}, False),
        )
        create_body = {
            e.name: {
                e.title: _value(create[0]),
                e.person: {"email": _value(create[1])},
                e.state: _value(create[2]),
                "description": _value(create[3]),
            }
        }
    update = (
        ident,
        InputField(e.state, "state", state, True),
        InputField("reason", "body", {"type": "string"}, False),
    )
    note = (
        ident,
        InputField("body", "body", {"type": "string", "maxLength": 5000}, True),
        InputField("internal", "flag", {"type": "boolean"}, False),
    )
    archive = (ident, InputField("reason", "body", {"type": "string"}, False))
    state_key = e.state.replace("_", "-")
    return [
        ActionDef(
            app,
            f"create-{e.slug}",
            e,
            create,
            f"Create {e.label}",
            "POST",
            f"/{e.plural}",
            create_body,
        ),
        ActionDef(
            app,
            f"update-{e.slug}-{state_key}",
            e,
            update,
            f"Update {e.label} {e.state}",
            "PATCH",
            item,
            {e.name: {e.state: _value(update[1])}, "reason": _value(update[2])},
        ),
        ActionDef(
            app,
            f"add-{e.slug}-note",
            e,
            note,
            f"Add {e.label} Note",
            "POST",
            f"{item}/notes",
            {"note": {"body": _value(note[1]), "internal": "{{ input.internal | default(true) }}"}},
        ),
        ActionDef(
            app,
            f"archive-{e.slug}",
            e,
            archive,
            f"Archive {e.label}",
            "POST",
            f"{item}/archive",
            {"reason": _value(archive[1])},
        ),
    ]


PAGINATIONS: tuple[tuple[str, Json], ...] = (
    ("data", {"type": "link_header", "max_pages": 20}),
    ("data", {"type": "next_url", "next": "links.next", "max_pages": 50}),
    ("items", {"type": "cursor", "param": "cursor", "next": "meta.next_cursor || `null`"}),
    (
        "results",
        {"type": "page", "param": "page", "start": 1, "size_param": "per_page", "size": 100},
    ),
    ("records", {"type": "offset", "param": "offset", "size_param": "limit", "size": 100}),
)


def _poll(rng: random.Random, e: Entity, event: str) -> Json:
    items, paginate = rng.choice(PAGINATIONS)
    since = "updated_since" if event == "updated" else "created_since"
    return {
        "name": f"{event.capitalize()} {e.label}",
        "description": f"A {e.name.replace('_', ' ')} is {event} (polled, oldest first).",
        "input_schema": {
            "type": "object",
            "properties": {
                e.state: {
                    "type": ["string", "null"],
                    "enum": [*e.states, None],
                    "description": f"Only records in this {e.state} (empty: every record)",
                }
            },
            "additionalProperties": False,
        },
        "payload_schema": {"$ref": f"#/schemas/{e.name}"},
        "filter": f"input.{e.state} == `null` || payload.{e.state} == input.{e.state}",
        "poll": {
            "every": rng.choice(["1m", "5m", "15m"]),
            "request": {
                "path": f"/{e.plural}",
                "query": {since: "{{ cursor }}", "sort": f"{e.timestamp}:asc", "limit": 100},
            },
            "paginate": paginate,
            "items": items,
            "id": "to_string(id)",
            "cursor": f"max_by(@, &{e.timestamp}).{e.timestamp}",
            "payload": e.payload_query(),
            "initial": rng.choice(["skip", "skip", "emit"]),
        },
    }


def _webhook(rng: random.Random, e: Entity, event: str, vendor: str) -> Json:
    topic = f"{e.name}.{event}"
    hexa = rng.random() < 0.6
    verify: Json = {
        "scheme": "hmac",
        "header": f"X-{vendor}-Signature",
        "algorithm": rng.choice(["sha256", "sha256", "sha512", "sha1"]),
        "encoding": "hex" if hexa else "base64",
        "secret": "{{ app.webhook_secret }}",
    }
    if hexa and rng.random() < 0.5:
        verify["prefix"] = f"{verify['algorithm']}="
    return {
        "name": f"{e.label} {event.capitalize()}",
        "description": f"Webhook topic {topic}, subscribed when an automation starts using it.",
        "payload_schema": {"$ref": f"#/schemas/{e.name}"},
        "webhook": {
            "verify": verify,
            "items": f"[@][?type == '{topic}'].data",
            "id": "to_string(id)",
            "payload": e.payload_query(),
            "subscribe": {
                "request": {
                    "method": "POST",
                    "path": "/webhooks",
                    "json": {"url": "{{ webhook.url }}", "events": [topic], "active": True},
                },
                "id": "id",
            },
            "unsubscribe": {
                "request": {"method": "DELETE", "path": "/webhooks/{{ subscription.id }}"}
            },
        },
    }


def _push(e: Entity) -> Json:
    return {
        "name": f"{e.label} Synced",
        "description": f"The partner's backend pushes each {e.name} it syncs (POST /v1/events).",
        "payload_schema": e.payload_schema(),
        "push": {},
    }


def build_app(rng: random.Random, key: str, vendor: str, entities: list[Entity]) -> App:
    """One connector document plus the facts blueprints and consumers need about it."""
    first, second = entities
    auth_kind = "api_key" if rng.random() < 0.6 else "bearer"
    candidates: list[tuple[str, str, Entity, Json]] = [
        ("poll", f"new-{second.slug}", second, _poll(rng, second, "created")),
        ("poll", f"updated-{first.slug}", first, _poll(rng, first, "updated")),
        ("webhook", f"{second.slug}-updated", second, _webhook(rng, second, "updated", vendor)),
        ("push", f"{first.slug}-synced", first, _push(first)),
        ("push", f"{second.slug}-synced", second, _push(second)),
    ]
    chosen = [
        ("poll", f"new-{first.slug}", first, _poll(rng, first, "created")),
        ("webhook", f"{first.slug}-created", first, _webhook(rng, first, "created", vendor)),
        *rng.sample(candidates, rng.randint(1, 3)),
    ]
    triggers = tuple(TriggerDef(key, k, kind, e) for kind, k, e, _ in chosen)
    offered = _actions(key, first) + _actions(key, second)
    actions = (offered[0], *rng.sample(offered[1:], rng.randint(2, 4)))
    doc = _document(rng, key, vendor, auth_kind, entities, chosen, actions)
    return App(key, vendor, auth_kind, triggers, actions, doc)


def _document(
    rng: random.Random,
    key: str,
    vendor: str,
    auth_kind: str,
    entities: list[Entity],
    triggers: list[tuple[str, str, Entity, Json]],
    actions: tuple[ActionDef, ...],
) -> Json:
    if auth_kind == "api_key":
        base_url = f"https://{{{{ credential.account }}}}.{key}.example.com/api/"
        base_url += "{{ app.vars.api_version }}"
        apply = {"X-Api-Key": "{{ credential.api_key }}"}
        auth: Json = {
            "type": "api_key",
            "fields": {
                "account": {
                    "type": "string",
                    "pattern": "^[a-z0-9][a-z0-9-]*$",
                    "description": f"{vendor} account subdomain",
                },
                "api_key": {"type": "string", "secret": True, "description": "API key"},
            },
        }
        auth["query" if rng.random() < 0.2 else "headers"] = apply
    else:
        base_url = f"https://api.{key}.example.com/v{rng.randint(1, 3)}"
        auth = {"type": "bearer"}
    doc: Json = {
        "app": key,
        "name": vendor,
        "version": f"{rng.randint(1, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
        "description": f"{vendor}: {entities[0].plural} and {entities[1].plural}.",
        "base_url": base_url,
        "auth": auth,
        "defaults": {
            "headers": {"Accept": "application/json", "User-Agent": "rollout-yaml-bench"},
            "timeout": rng.choice(["10s", "30s"]),
            "retry": {
                "max_attempts": rng.randint(3, 6),
                "on_status": [429, 500, 502, 503, 504],
                "backoff": "exponential",
                "base": "1s",
                "max": "2m",
            },
            "error": rng.choice(["error.message", "errors[0].detail", "message"]),
        },
        "schemas": {e.name: e.payload_schema() for e in entities},
        "triggers": {k: body for _, k, _, body in triggers},
        "actions": {},
    }
    if rng.random() < 0.5:
        doc["rate_limit"] = {"requests": rng.choice([10, 50, 100]), "per": rng.choice(["1s", "1m"])}
    for a in actions:
        doc["actions"][a.key] = {
            "name": a.name,
            "description": f"{a.method} {a.path.split('{{')[0]}…",
            "input_schema": _input_schema(a.fields),
            "request": {"method": a.method, "path": a.path, "json": a.body},
            "idempotency_header": "Idempotency-Key",
            "output": f"{{id: {a.entity.name}.id || id, url: {a.entity.name}.url || url}}",
        }
    doc["tests"] = [_action_test(auth_kind, actions[0])]
    return doc


def _action_test(auth_kind: str, action: ActionDef) -> Json:
    """An offline test of the first (create) action: only required inputs given."""
    e = action.entity
    values = {
        f.name: ("ada@example.com" if f.kind == "email" else f"test {f.name}")
        for f in action.fields
        if f.required
    }
    if "channel" in values:
        expected: Json = dict(values)
    else:
        email = values[f"{e.person}_email"]
        expected = {e.name: {e.title: values[e.title], e.person: {"email": email}}}
    credential = (
        {"account": "acme", "api_key": "test-key"}
        if auth_kind == "api_key"
        else {"token": "test-token"}
    )
    return {
        "name": f"{action.key} sends the required fields only",
        "action": action.key,
        "credential": credential,
        "app": {"vars": {"api_version": "2024-10"}},
        "input": values,
        "expect_request": {"method": action.method, "path": action.path, "json": expected},
        "response_status": 201,
        "response": {"id": 42, "url": "https://example.com/r/42"},
        "expect_output": {"id": 42, "url": "https://example.com/r/42"},
    }
