"""The project the page tests run: the runner project, plus a blueprint a consumer may switch
on from the portal, a consumer with nothing yet but a credential to connect, and the partner's
own site (another site: `localhost` while the runner is `127.0.0.1`) that frames the portal."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from oauth_provider import CLIENT_ID, CLIENT_SECRET
from runner_env import copy_project

BLUEPRINT = """\
blueprint: order-alerts
name: Alert me about orders
description: Sends each new order to your sink channel.
params:
  type: object
  required: [channel, min_total]
  properties:
    channel:
      type: string
      title: Channel
      pattern: "^#[a-z0-9-]+$"
      description: "A channel name such as #orders"
    min_total:
      type: integer
      title: Smallest total
      minimum: 1
      default: 10
      description: Orders below this total are not sent
    priority:
      type: string
      title: Priority
      enum: [low, normal, high]
      default: normal
    with_customer:
      type: boolean
      title: Name the customer
      default: true
  additionalProperties: false
trigger: { app: partner, trigger: order-created }
action:
  app: sink
  action: deliver
  input:
    order_id: "{{ payload.order_id }}"
    text: "[{{ params.priority }}] {{ params.channel }}: order {{ payload.order_id }}"
"""

UI_SECRETS = {
    "UI_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "UI_CRM_CLIENT_SECRET": CLIENT_SECRET,
}
"""Secrets the page-test project adds to the runner project's (pass as the daemon's env)."""

INITECH = """\
consumer: initech
name: Initech
credentials:
  initech-sink:
    app: sink
    stored: true
  initech-crm:
    app: crm
    stored: true
"""

SINK_AUTH = """\
auth:
  type: bearer
  test: { request: { path: /me }, success: ok }
  label: account.name
"""
"""The sink App's auth, with a `test` (the portal's "Test connection") labelled by the account."""

OAUTH_FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project" / "connectors" / "crm.yaml"


def ui_project(tmp: Path, daemon_port: int, partner_origin: str, provider_url: str) -> Path:
    """The project; `provider_url` is the OAuth2 authorization server of its `crm` App."""
    project = copy_project(tmp)
    crm = OAUTH_FIXTURE.read_text().replace("PROVIDER_URL", provider_url)
    (project / "connectors" / "crm.yaml").write_text(crm)
    (project / "automations").mkdir(exist_ok=True)
    (project / "automations" / "order-alerts.yaml").write_text(BLUEPRINT)
    (project / "environments" / "test" / "consumers" / "initech.yaml").write_text(INITECH)
    sink = project / "connectors" / "sink.yaml"
    sink.write_text(sink.read_text().replace("auth: { type: bearer }\n", SINK_AUTH, 1))
    settings = project / "environments" / "test" / "environment.yaml"
    text = settings.read_text().replace(
        'server: { host: 127.0.0.1, port: 0, public_url: "http://127.0.0.1:8080" }',
        "server:\n"
        "  host: 127.0.0.1\n"
        f"  port: {daemon_port}\n"
        f'  public_url: "http://127.0.0.1:{daemon_port}"\n'
        f'  ui: {{ frame_ancestors: ["{partner_origin}"] }}',
    )
    assert "frame_ancestors" in text
    text = text.replace(
        "apps:\n",
        "apps:\n  crm:\n"
        f"    base_url: {provider_url}/api\n"
        f'    oauth: {{ client_id: {CLIENT_ID}, client_secret: "${{UI_CRM_CLIENT_SECRET}}" }}\n',
    )
    text = text.rstrip("\n") + '\nencryption_key: "${UI_ENCRYPTION_KEY}"\n'
    settings.write_text(text)
    return project


class PartnerSite:
    """The partner's app: serves whatever page a test puts at a path."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = site.pages.get(self.path.split("?")[0])
                data = (body or "not found").encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    def start(self) -> PartnerSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
