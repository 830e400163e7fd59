"""The runner test project with a polled App added: `connectors/shop.yaml` pointing at a
ListServer, one trigger per pagination style, and acme's automations sending each polled item
to the sink App (`POST /orders/<item id>`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STYLES: dict[str, dict[str, Any]] = {
    "link": {
        "request": {"path": "/link/items", "query": {"since_id": "{{ cursor }}", "limit": 100}},
        "paginate": {"type": "link_header"},
        "items": "items",
    },
    "cursor": {
        "request": {"path": "/cursor/items", "query": {"since_id": "{{ cursor }}", "limit": 100}},
        "paginate": {"type": "cursor", "param": "after", "next": "paging.next.after"},
        "items": "results",
    },
    "next": {
        "request": {"path": "/next/items", "query": {"since_id": "{{ cursor }}", "limit": 100}},
        "paginate": {"type": "next_url", "next": "links.next"},
        "items": "data",
    },
    "page": {
        "request": {"path": "/page/items", "query": {"since_id": "{{ cursor }}"}},
        "paginate": {
            "type": "page",
            "param": "page",
            "start": 1,
            "size_param": "per_page",
            "size": 100,
        },
        "items": "@",
    },
    "offset": {
        "request": {"path": "/offset/items", "query": {"since_id": "{{ cursor }}"}},
        "paginate": {"type": "offset", "param": "offset", "size_param": "limit", "size": 100},
        "items": "items",
    },
}


def trigger(
    style: str,
    *,
    initial: str = "emit",
    max_pages: int = 50,
    cursor: bool = True,
    every: str = "1s",
) -> dict[str, Any]:
    spec = STYLES[style]
    poll: dict[str, Any] = {
        "every": every,
        "request": spec["request"],
        "paginate": {**spec["paginate"], "max_pages": max_pages},
        "items": spec["items"],
        "id": "to_string(id)",
        "payload": "{item_id: id, name: name}",
        "initial": initial,
    }
    if cursor:
        poll["cursor"] = "max_by(@, &id).id"
    return {
        "name": f"Items ({style})",
        "input_schema": {
            "type": "object",
            "properties": {"tag": {"type": ["string", "null"]}},
            "additionalProperties": False,
        },
        "payload_schema": {
            "type": "object",
            "properties": {"item_id": {"type": "integer"}, "name": {"type": "string"}},
        },
        "poll": poll,
    }


def write_shop(project: Path, url: str, triggers: dict[str, dict[str, Any]]) -> None:
    connector = {
        "app": "shop",
        "name": "Shop",
        "version": "1.0.0",
        "base_url": url,
        "auth": {
            "type": "api_key",
            "fields": {"key": {"type": "string", "secret": True}},
            "headers": {"X-Api-Key": "{{ credential.key }}"},
        },
        "defaults": {"timeout": "5s", "error": "error.message"},
        "triggers": triggers,
    }
    (project / "connectors" / "shop.yaml").write_text(json.dumps(connector, indent=2))


def automation(
    trigger_key: str, *, text: str = "{{ payload.name }}", tag: str | None = None
) -> dict[str, Any]:
    inputs = {"tag": tag} if tag is not None else {}
    return {
        "trigger": {"app": "shop", "trigger": trigger_key, "credential": "shop", "input": inputs},
        "action": {
            "app": "sink",
            "action": "deliver",
            "credential": "sink",
            "input": {"order_id": "{{ payload.item_id }}", "text": text},
        },
    }


def write_automations(project: Path, automations: dict[str, dict[str, Any]]) -> None:
    """acme gets a `shop` credential (its key is a secret from the environment) and these
    automations besides its own."""
    path = project / "environments/test/consumers/acme.yaml"
    text = path.read_text().replace(
        "credentials:\n",
        'credentials:\n  shop:\n    app: shop\n    values: { key: "${ACME_SINK_TOKEN}" }\n',
        1,
    )
    for key, body in automations.items():
        text += f"  {key}: {json.dumps(body)}\n"
    path.write_text(text)
