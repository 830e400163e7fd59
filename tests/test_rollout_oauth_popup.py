"""connect-react's OAuth popup against the real daemon and a real OAuth 2.0 authorization
server: `oauth.getAuthorizeURL` → the App's consent → `/oauth/callback` → the last page, which
posts `{_rollout: {type: "credential-added", requestId, ok, credential}}` to its opener: followed
as a browser follows redirects, and in a real browser (chromium) with a real popup."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_server import Answer, AppServer
from browser import launch, require_chromium
from cryptography.fernet import Fernet
from daemon_proc import Daemon, free_port
from oauth_provider import CLIENT_SECRET, Provider
from rollout_client import batch_mutation, data, query

FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider().start()
    yield running
    running.stop()


@pytest.fixture
def daemon(tmp_path: Path, provider: Provider) -> Iterator[Daemon]:
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    for connector in (project / "connectors").glob("*.yaml"):
        connector.write_text(connector.read_text().replace("PROVIDER_URL", provider.url))
    sink = AppServer().start()
    sink.default = Answer(200, {"ok": True})
    port = free_port()
    extra = {
        "ROLLOUT_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PROVIDER_URL": provider.url,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    running = Daemon(project, sink.url, port=port, extra_env=extra).start()
    try:
        yield running
    finally:
        running.stop()
        sink.stop()


def authorize(daemon: Daemon) -> dict[str, Any]:
    with daemon.client("acme") as client:
        answer = batch_mutation(client, ("oauth.getAuthorizeURL", {"appKey": "crm"}))
    [found] = data(answer)
    return dict(found)


def posted_message(page_text: str) -> dict[str, Any]:
    return dict(json.loads(page_text.split("const message = ", 1)[1].split(";\n", 1)[0]))


def test_the_popup_ends_by_naming_the_new_credential(daemon: Daemon) -> None:
    started = authorize(daemon)
    with httpx.Client(timeout=30) as browser:
        last = browser.get(started["url"], follow_redirects=True)
    assert last.status_code == 200, last.text
    assert last.url.path == "/api/connect-react/oauth-done"
    message = posted_message(last.text)["_rollout"]
    assert message["type"] == "credential-added" and message["ok"] is True
    assert message["requestId"] == started["requestId"]
    key = message["credential"]["credentialKey"]
    with daemon.client("acme") as client:
        listed = query(client, "apps.credentials", {"appKey": "crm"})
        authorize_info = query(client, "apps.authInfo", {"appKey": "crm"})
    assert key in [c["credentialKey"] for c in listed]
    assert authorize_info == {"type": "oauth2"}


def test_a_declined_consent_reports_not_ok(daemon: Daemon, provider: Provider) -> None:
    provider.deny = True
    started = authorize(daemon)
    with httpx.Client(timeout=30) as browser:
        last = browser.get(started["url"], follow_redirects=True)
    message = posted_message(last.text)["_rollout"]
    assert message["ok"] is False and message["requestId"] == started["requestId"]
    assert "credential" not in message and message["error"]


OPEN_POPUP = """async (url) => {
  const got = new Promise((resolve) => window.addEventListener("message", (e) => resolve(e.data)));
  window.open(url, "", "width=800,height=800");
  return await got;
}"""


def test_a_real_popup_tells_its_opener(daemon: Daemon) -> None:
    require_chromium()
    from playwright import sync_api

    started = authorize(daemon)
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            page = chromium.new_page()
            page.goto(f"{daemon.url}/healthz")
            message = page.evaluate(OPEN_POPUP, started["url"])
        finally:
            chromium.close()
    assert message["_rollout"]["requestId"] == started["requestId"]
    assert message["_rollout"]["ok"] is True
    assert message["_rollout"]["credential"]["credentialKey"]
