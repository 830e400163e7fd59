"""The pages in a real browser (Debian's chromium through Playwright), on the real daemon
process, with a real HTTP server as the App and the partner's site framing the portal.

One browser and one daemon serve the whole module; each test opens its own browser context
(cookies of its own). `ROLLOUT_UI_SCREENSHOTS=1` also writes the pictures of docs/ui.md.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_server import Answer, AppServer
from browser import launch, require_chromium, screenshot
from daemon_proc import Daemon, consumer_token, free_port
from oauth_provider import Provider
from runner_env import SECRETS
from ui_env import UI_SECRETS, PartnerSite, ui_project

require_chromium()
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ORDER = {"order_id": 7, "total": 25.5, "customer": {"name": "Ada", "email": "ada@example.com"}}
FINISHED = ("succeeded", "failed", "filtered", "dry_run")


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True, "ok": True})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def partner() -> Iterator[PartnerSite]:
    site = PartnerSite().start()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    running = Provider().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, partner: PartnerSite, provider: Provider
) -> tuple[Path, int]:
    port = free_port()
    folder = ui_project(tmp_path_factory.mktemp("ui"), port, partner.origin, provider.url)
    return folder, port


@pytest.fixture(scope="module")
def daemon(project: tuple[Path, int], app: AppServer) -> Iterator[Daemon]:
    folder, port = project
    running = Daemon(folder, app.url, port=port, extra_env=UI_SECRETS).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert dialogs == [], f"a page opened a dialog (a script ran): {dialogs}"


def wait_run(client: httpx.Client, run_id: str, path: str = "/v1/runs") -> dict[str, Any]:
    deadline = time.time() + 20
    while time.time() < deadline:
        answer = client.get(f"{path}/{run_id}")
        if answer.status_code == 200 and answer.json()["status"] in FINISHED:
            return dict(answer.json())
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def pushed_run(daemon: Daemon, consumer: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Push one event for `consumer` and wait for its one run to finish."""
    with daemon.client(consumer) as client:
        answer = client.post(
            "/v1/events", json={"app": "partner", "trigger": "order-created", "payload": payload}
        )
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event_ids"][0]
        deadline = time.time() + 20
        while time.time() < deadline:
            for run in client.get("/v1/runs", params={"limit": 50}).json()["runs"]:
                if run["event"]["id"] == event_id:
                    return wait_run(client, run["id"])
            time.sleep(0.05)
    raise AssertionError("no run for the pushed event")


def sign_in_operator(page: Any, daemon: Daemon, target: str = "/ui") -> None:
    page.goto(daemon.url + target)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Admin token or consumer token").fill(SECRETS["ROLLOUT_ADMIN_TOKEN"])
    page.get_by_role("button", name="Sign in").click()


def sign_in_consumer(page: Any, daemon: Daemon, consumer: str, target: str = "/ui/embed") -> None:
    page.goto(f"{daemon.url}/ui/session?token={consumer_token(consumer)}&next={target}")
    assert "token=" not in page.url


# -- operators -------------------------------------------------------------------------------


def test_operator_finds_a_failed_run_sees_the_error_and_redacted_request_and_replays_it(
    page: Any, daemon: Daemon, app: AppServer
) -> None:
    app.answer(*[Answer(500, {"error": {"message": "sink is down for maintenance"}})] * 4)
    failed = pushed_run(daemon, "acme", ORDER)
    assert failed["status"] == "failed", failed

    sign_in_operator(page, daemon)
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show runs").click()
    expect(page).to_have_url(re.compile(r"/ui/runs\?.*status=failed"))
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    statuses = rows.locator("td:nth-child(2)").all_inner_texts()
    assert statuses and set(statuses) == {"failed"}, statuses
    screenshot(page, "runs")

    page.get_by_role("link", name=failed["id"]).click()
    expect(page.get_by_role("heading", name=f"Run {failed['id']}")).to_be_visible()
    expect(page.locator("pre.error")).to_contain_text("sink is down for maintenance")
    request = page.locator("pre.request").last  # the last attempt is open, earlier ones folded
    expect(request).to_contain_text("Authorization: Bearer ***")
    expect(request).to_contain_text(f"POST {app.url}/orders/7")
    assert SECRETS["ACME_SINK_TOKEN"] not in page.content()
    expect(page.locator("pre.response").last).to_contain_text("HTTP 500")
    expect(page.locator("pre.response").last).to_contain_text("sink is down for maintenance")
    assert page.locator("details.attempt").count() == 4
    screenshot(page, "run-failed")

    page.get_by_role("button", name="Replay this run").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Run run_"))).to_be_visible()
    assert failed["id"] not in page.url
    expect(page.locator("dd .status").first).to_have_text("succeeded", timeout=15_000)
    expect(page.get_by_role("link", name=failed["id"])).to_be_visible()  # "Replay of"
    assert app.requests[-1].path == "/orders/7"


def test_operator_sees_automations_consumers_and_is_sent_to_sign_in_without_a_session(
    page: Any, daemon: Daemon
) -> None:
    page.goto(daemon.url + "/ui/automations?consumer=acme")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    page.get_by_label("Admin token or consumer token").fill("not-the-admin-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid admin token")

    page.get_by_label("Admin token or consumer token").fill(SECRETS["ROLLOUT_ADMIN_TOKEN"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/ui/automations\?consumer=acme$"))
    row = page.locator("tbody tr", has_text="orders-to-sink")
    expect(row).to_contain_text("environments/test/consumers/acme.yaml:")
    expect(row).to_contain_text("yes")
    screenshot(page, "automations")

    page.get_by_role("link", name="Consumers").click()
    initech = page.locator("tbody tr", has_text="initech")
    expect(initech).to_contain_text("initech-sink (sink)")
    expect(page.locator("tbody tr")).to_have_count(3)


def test_a_payload_with_a_script_and_a_template_is_shown_as_text(page: Any, daemon: Daemon) -> None:
    script, template = "<script>alert(1)</script>", "{{ 7*7 }} {% raw %}{{ config }}"
    run = pushed_run(daemon, "acme", {**ORDER, "note": f"{script} {template}"})
    assert run["status"] == "succeeded", run
    for signed_in, path in (
        (lambda: sign_in_operator(page, daemon, f"/ui/runs/{run['id']}"), "/ui"),
        (
            lambda: sign_in_consumer(page, daemon, "acme", f"/ui/embed/runs/{run['id']}"),
            "/ui/embed",
        ),
    ):
        signed_in()
        expect(page).to_have_url(re.compile(re.escape(f"{path}/runs/{run['id']}") + "$"))
        payload = page.locator("section", has=page.get_by_role("heading", name="Event")).locator(
            "pre"
        )
        expect(payload).to_contain_text(f"{script} {template}")
        request = page.locator("pre.request").last
        expect(request).to_contain_text(script)
        assert "49" not in payload.inner_text()
        assert page.locator("script").count() == 1  # the page's own ui.js, nothing else
        assert page.locator("main script").count() == 0


def test_status_shows_a_refused_reload_as_validate_prints_it(
    page: Any, daemon: Daemon, project: tuple[Path, int]
) -> None:
    broken = project[0] / "environments" / "test" / "consumers" / "umbrella.yaml"
    broken.write_text("consumer: umbrella\nautomations:\n  orders:\n    blueprnt: order-alerts\n")
    with daemon.client() as client:
        try:
            deadline = time.time() + 20
            while client.get("/status").json()["last_reload_error"] is None:
                assert time.time() < deadline, "the broken file was not reloaded"
                time.sleep(0.1)
            sign_in_operator(page, daemon, "/ui/status")
            expect(page.get_by_role("alert")).to_contain_text("was refused")
            printed = page.locator("pre.diagnostics").first.inner_text()
            lines = printed.splitlines()
            assert re.match(
                r"environments/test/consumers/umbrella\.yaml:4:5: error\[RY\d+\] ", lines[0]
            ), printed
            assert lines[1].endswith("|     blueprnt: order-alerts"), printed
            assert lines[2].strip() == "|     ^", printed
            assert any(line.strip().startswith("= help:") for line in lines), printed
            screenshot(page, "status")
        finally:
            generation = client.get("/status").json()["generation"]
            broken.unlink()
            deadline = time.time() + 20
            while client.get("/status").json()["generation"] == generation:
                assert time.time() < deadline, "the fixed project was not reloaded"
                time.sleep(0.1)


def test_the_portal_lives_in_the_partners_iframe_and_the_operator_pages_never_do(
    page: Any, daemon: Daemon, partner: PartnerSite
) -> None:
    token = consumer_token("initech")
    theme = "accent:aa0000,background:fffdf5,text:</style><script>alert(1)</script>"
    partner.pages["/app"] = (
        "<!doctype html><title>Partner</title><h1>Partner app</h1>"
        f'<iframe id="portal" title="Integrations" width="900" height="700" '
        f'src="{daemon.url}/ui/session?token={token}&amp;next=/ui/embed&amp;theme={theme}"></iframe>'
        f'<iframe id="operator" title="Operator" src="{daemon.url}/ui/runs"></iframe>'
    )
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    page.goto(partner.origin + "/app")
    portal = page.frame_locator("#portal")
    expect(portal.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    frame = next(f for f in page.frames if f.url.startswith(daemon.url + "/ui/embed"))
    assert "token=" not in frame.url
    button = portal.get_by_role("link", name="Set up: Alert me about orders")
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(170, 0, 0)"
    body = portal.locator("body")
    assert body.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 253, 245)"
    assert body.evaluate("e => getComputedStyle(e).color") == "rgb(27, 31, 36)"  # default kept
    cookie = next(c for c in page.context.cookies() if c["name"] == "ry_portal")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "None"
    assert cookie.get("partitionKey", "").startswith("http://localhost")

    portal.get_by_role("link", name="Runs").click()  # the session holds inside the frame
    expect(portal.get_by_role("heading", name="Runs")).to_be_visible()
    assert any("frame-ancestors 'none'" in text for text in blocked), blocked
    operator = next(f for f in page.frames if f.name == "" and f.url.startswith("chrome-error"))
    assert "Runs" not in operator.content()
    screenshot(page, "embed")


def test_forms_need_the_sessions_csrf_token_and_a_post_from_this_site(daemon: Daemon) -> None:
    with httpx.Client(base_url=daemon.url) as client:
        signed = client.post("/ui/session", data={"token": SECRETS["ROLLOUT_ADMIN_TOKEN"]})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/runs"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/ui" in cookie
        run = pushed_run(daemon, "acme", ORDER)
        page = client.get(f"/ui/runs/{run['id']}")
        assert page.status_code == 200
        for name in ("content-security-policy", "x-frame-options", "referrer-policy"):
            assert name in page.headers, name
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        replay = f"/ui/runs/{run['id']}/replay"
        assert client.post(replay, data={"note": "no token"}).status_code == 403
        assert client.post(replay, data={"csrf": "forged"}).status_code == 403
        cross = {"Sec-Fetch-Site": "cross-site"}
        assert client.post(replay, data={"csrf": token[1]}, headers=cross).status_code == 403
        done = client.post(replay, data={"csrf": token[1]})
        assert done.status_code == 303 and done.headers["location"].startswith("/ui/runs/run_")
    with httpx.Client(base_url=daemon.url) as stranger:
        assert stranger.post(replay, data={"csrf": token[1]}).status_code == 401
        assert stranger.get("/ui/runs").status_code == 303


def test_a_consumer_sees_only_its_own_runs_and_never_the_operator_pages(
    page: Any, daemon: Daemon
) -> None:
    acme_run = pushed_run(daemon, "acme", ORDER)
    sign_in_consumer(page, daemon, "globex")
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
    page.goto(f"{daemon.url}/ui/embed/runs/{acme_run['id']}")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto(f"{daemon.url}/ui/embed/runs")
    assert acme_run["id"] not in page.content()
    page.goto(f"{daemon.url}/ui/runs")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expired = consumer_token("globex", ttl=1)
    time.sleep(1.1)
    page.goto(f"{daemon.url}/ui/session?token={expired}&next=/ui/embed")
    expect(page.get_by_role("alert")).to_contain_text("expired")


def test_a_consumer_connects_an_api_key_credential_whose_value_is_never_shown(
    page: Any, daemon: Daemon
) -> None:
    secret = "initech-typed-token-93f1c2"
    sign_in_consumer(page, daemon, "initech", "/ui/embed/credentials")
    section = page.locator("section.connection", has_text="initech-sink")
    expect(section).to_contain_text("not connected")
    section.get_by_role("button", name="Save Sink connection").click()
    expect(page.locator("section.connection", has_text="initech-sink")).to_contain_text(
        "no values given"
    )
    section.get_by_label("token").fill(secret)
    section.get_by_role("button", name="Save Sink connection").click()
    expect(page.get_by_role("status")).to_contain_text("Saved initech-sink")
    expect(section).to_contain_text("active")
    assert section.get_by_label("token").input_value() == ""
    assert secret not in page.content()
    screenshot(page, "connections")
    page.get_by_role("button", name="Disconnect Sink").click()
    expect(page.locator("section.connection", has_text="initech-sink")).to_contain_text(
        "not connected"
    )


PAGES = {
    "operator": ["/ui/runs", "/ui/automations", "/ui/consumers", "/ui/status"],
    "portal": [
        "/ui/embed",
        "/ui/embed/blueprints/order-alerts",
        "/ui/embed/credentials",
        "/ui/embed/automations/orders-to-sink",
        "/ui/embed/runs",
    ],
}
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML)"""
NAMELESS = """() => [...document.querySelectorAll('a, button')]
  .filter(e => !(e.innerText.trim() || e.getAttribute('aria-label')))
  .map(e => e.outerHTML)"""


def test_every_field_has_a_label_and_every_page_fits_360_pixels(
    browser: Any, daemon: Daemon
) -> None:
    run = pushed_run(daemon, "acme", ORDER)
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        sign_in_operator(page, daemon)
        sign_in_consumer(page, daemon, "acme")
        for path in [
            *PAGES["operator"],
            f"/ui/runs/{run['id']}",
            *PAGES["portal"],
            f"/ui/embed/runs/{run['id']}",
            "/ui/embed/runs",
        ]:
            page.goto(daemon.url + path)
            expect(page.locator("h1")).to_be_visible()
            assert page.evaluate(UNLABELLED) == [], path
            assert page.evaluate(NAMELESS) == [], path
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width} px wide at 360 px"
        page.goto(daemon.url + "/ui/embed/blueprints/order-alerts")
        screenshot(page, "setup-360")
        with daemon.client("massive") as client:
            values = {"token": "massive-sink-token-0e"}
            client.post("/v1/credentials", json={"key": "m", "app": "sink", "values": values})
            body = {
                "key": "m",
                "blueprint": "order-alerts",
                "params": {"channel": "#m", "min_total": 1},
                "credentials": {"action": "m"},
            }
            assert client.post("/v1/automations", json=body).status_code == 201
        sign_in_consumer(page, daemon, "massive", "/ui/embed/automations/m")
        page.get_by_role("button", name="Delete…").click()  # the confirmation
        for _ in range(2):
            expect(page.locator("h1")).to_be_visible()
            assert page.evaluate(UNLABELLED) == [] and page.evaluate(NAMELESS) == []
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{page.url} is {width} px wide at 360 px"
            page.goto(daemon.url + "/ui/embed/credentials")
    finally:
        context.close()


def test_a_consumer_connects_an_oauth2_app_in_a_popup_that_reports_back(
    page: Any, daemon: Daemon, provider: Provider
) -> None:
    sign_in_consumer(page, daemon, "initech", "/ui/embed/credentials")
    section = page.locator("section.connection", has_text="initech-crm")
    expect(section).to_contain_text("not connected")
    with page.expect_popup() as opened:
        section.get_by_role("link", name="Connect CRM").click()
    popup = opened.value
    popup.wait_for_event("close", timeout=15_000)  # the popup told the portal and closed
    section = page.locator("section.connection", has_text="initech-crm")
    expect(section).to_contain_text("active")
    expect(section.get_by_role("link", name="Reconnect CRM")).to_be_visible()
    assert provider.live_access_tokens()
    for token in provider.live_access_tokens():
        assert token not in page.content()


def test_a_consumer_connects_a_new_oauth2_account_whose_key_is_made_up(
    page: Any, daemon: Daemon, provider: Provider
) -> None:
    sign_in_consumer(page, daemon, "tyrell", "/ui/embed/credentials")
    expect(page.get_by_text("You have no connections yet.")).to_be_visible()
    # what the portal is told, kept where its reload (ui.js reloads on the message) leaves it
    page.evaluate(
        "() => window.addEventListener('message', e => sessionStorage.setItem('told', "
        "JSON.stringify([...JSON.parse(sessionStorage.getItem('told') || '[]'), "
        "{origin: e.origin, data: e.data}])))"
    )
    with page.expect_popup() as opened:
        page.get_by_role("link", name="Connect a new CRM account").click()
    opened.value.wait_for_event("close", timeout=15_000)
    section = page.locator("section.connection", has_text="CRM (")
    expect(section).to_contain_text("active")
    key = section.locator("h2 .muted").inner_text().strip("()")
    messages = json.loads(page.evaluate("() => sessionStorage.getItem('told') || '[]'"))
    assert len(messages) == 1 and messages[0]["origin"] == daemon.url, messages
    assert messages[0]["data"] == {
        "type": "rollout-yaml:credential",
        "credential": key,
        "app": "crm",
        "status": "connected",
    }
    with daemon.client("tyrell") as client:
        listed = client.get("/v1/credentials").json()["credentials"]
        assert [(c["key"], c["app"], c["status"]) for c in listed] == [(key, "crm", "active")]
    for token in provider.live_access_tokens():
        assert token not in page.content()


def test_runs_page_by_page_with_the_keyset_cursor_and_the_filters_kept(
    page: Any, daemon: Daemon
) -> None:
    events = [
        {"app": "partner", "trigger": "order-created", "payload": {**ORDER, "order_id": n}}
        for n in range(1, 31)
    ]
    with daemon.client("globex") as client:
        assert client.post("/v1/events", json={"events": events}).json()["runs_queued"] == 30
        deadline = time.time() + 20
        while len(client.get("/v1/runs", params={"status": "succeeded"}).json()["runs"]) < 30:
            assert time.time() < deadline, "the runs did not finish"
            time.sleep(0.1)
    sign_in_operator(page, daemon, "/ui/runs?consumer=globex&automation=orders-to-chat&since=1h")
    expect(page.get_by_label("Consumer")).to_have_value("globex")
    expect(page.get_by_label("Time")).to_have_value("1h")
    first = page.locator("tbody tr td:first-child").all_inner_texts()
    assert len(first) == 25
    page.get_by_role("link", name="Older runs").click()
    expect(page).to_have_url(re.compile(r"cursor=run_"))
    expect(page.get_by_label("Automation")).to_have_value("orders-to-chat")
    second = page.locator("tbody tr td:first-child").all_inner_texts()
    assert len(second) >= 5 and not set(first) & set(second)
    assert sorted(first + second, reverse=True) == first + second  # newest first throughout
    assert set(page.locator("tbody tr td:nth-child(3)").all_inner_texts()) == {"globex"}


# -- the consumer's own automations and connections ----------------------------------------


def add_sink_connection(page: Any, key: str, token: str) -> Any:
    """On Connections: a Sink connection no consumer file declares, under `key`."""
    new = page.locator("section.connection", has=page.get_by_role("heading", name="Sink", level=3))
    new.get_by_label("Name of this connection").fill(key)
    new.get_by_label("token").fill(token)
    new.get_by_role("button", name="Add Sink connection").click()
    expect(page.get_by_role("status")).to_contain_text(f"Saved {key}")
    return page.locator("section.connection", has_text=key)


def test_a_consumer_connects_switches_on_a_blueprint_through_its_form_and_sees_the_run(
    page: Any, daemon: Daemon, app: AppServer
) -> None:
    token = "hooli-sink-token-5d0c1e"
    sign_in_consumer(page, daemon, "hooli", "/ui/embed/credentials")
    connection = add_sink_connection(page, "hooli-sink", token)
    expect(connection).to_contain_text("active")
    assert token not in page.content()

    app.answer(Answer(200, {"ok": True, "account": {"name": "Hooli <b>Sink</b> {{ 7*7 }}"}}))
    connection.get_by_role("button", name="Test connection").click()
    connection = page.locator("section.connection", has_text="hooli-sink")
    expect(connection.get_by_role("status")).to_have_text(
        "Connection works: Hooli <b>Sink</b> {{ 7*7 }}."
    )
    assert app.requests[-1].path == "/me"
    assert app.requests[-1].headers["authorization"] == f"Bearer {token}"

    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Set up: Alert me about orders").click()
    expect(page.get_by_label("Sink connection (action)")).to_have_value("hooli-sink")
    channel = page.get_by_label("Channel")
    hostile = "<script>alert(1)</script> {{ 7*7 }}"
    channel.fill(hostile)  # the pattern wants "#orders"
    page.get_by_label("Smallest total").fill("0")  # below its minimum of 1
    page.get_by_role("button", name="Switch on").click()
    expect(channel).to_have_attribute("aria-invalid", "true")
    error = page.locator("#f-params-channel-error")
    expect(error).to_contain_text(f"'{hostile}' does not match")  # shown as text
    expect(page.locator("#f-params-min_total-error")).to_contain_text("minimum")
    expect(channel).to_have_value(hostile)  # what was typed is kept
    assert page.locator("script").count() == 1
    expect(page.get_by_label("Priority")).to_have_value("normal")
    screenshot(page, "setup-error")
    with daemon.client("hooli") as client:
        assert client.get("/v1/automations/order-alerts").status_code == 404  # nothing stored

    channel.fill("#orders")
    page.get_by_label("Smallest total").fill("5")
    page.get_by_label("Priority").select_option("high")
    page.get_by_role("button", name="Switch on").click()
    expect(page).to_have_url(re.compile(r"/ui/embed/automations/order-alerts\?done=created$"))
    expect(page.get_by_role("status")).to_contain_text("Switched on")

    run = pushed_run(daemon, "hooli", ORDER)
    assert run["status"] == "succeeded", run
    assert app.requests[-1].json()["text"] == "[high] #orders: order 7"
    page.reload()
    page.get_by_role("link", name=run["id"]).click()
    expect(page.get_by_role("heading", name=f"Run {run['id']}")).to_be_visible()
    expect(page.locator("pre.request").last).to_contain_text("Authorization: Bearer ***")
    assert token not in page.content()

    page.go_back()
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("Paused")
    with daemon.client("hooli") as client:
        pushed = client.post(
            "/v1/events", json={"app": "partner", "trigger": "order-created", "payload": ORDER}
        )
        assert pushed.json()["runs_queued"] == 0
    page.get_by_role("button", name="Switch on").click()
    expect(page.get_by_role("status")).to_contain_text("Switched on again")
    screenshot(page, "portal-automation")

    page.get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Disconnect Sink (hooli-sink)").click()
    refused = page.locator("section.connection", has_text="hooli-sink").get_by_role("alert")
    expect(refused).to_contain_text("used by automation(s) `order-alerts`")

    page.get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Alert me about orders").first.click()
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("alert")).to_contain_text("Delete Alert me about orders?")
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted")
    expect(page.get_by_text("You have no automations yet.")).to_be_visible()
    page.get_by_role("link", name="Connections").click()
    page.get_by_role("button", name="Disconnect Sink (hooli-sink)").click()
    expect(page.get_by_role("status")).to_contain_text("Disconnected hooli-sink")


def tab_to(page: Any, target: Any, presses: int = 120) -> None:
    """Press Tab until `target` has the focus, as someone without a mouse gets there."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("e => e === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


def test_the_whole_consumer_flow_works_with_the_keyboard_only(
    page: Any, daemon: Daemon, app: AppServer
) -> None:
    keys = page.keyboard
    sign_in_consumer(page, daemon, "wayne", "/ui/embed/credentials")
    new = page.locator("section.connection", has=page.get_by_role("heading", name="Sink", level=3))
    tab_to(page, new.get_by_label("Name of this connection"))
    keys.type("wayne-sink")
    tab_to(page, new.get_by_label("token"))
    keys.type("wayne-sink-token-77aa")
    keys.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved wayne-sink")

    tab_to(page, page.get_by_role("link", name="Integrations"))
    keys.press("Enter")
    tab_to(page, page.get_by_role("link", name="Set up: Alert me about orders"))
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Alert me about orders", level=1)).to_be_visible()
    tab_to(page, page.get_by_label("Automation key"))
    keys.press("Control+a")
    keys.type("wayne-orders")
    tab_to(page, page.get_by_label("Channel"))
    keys.type("#wayne")
    tab_to(page, page.get_by_label("Priority"))
    keys.press("ArrowDown")
    expect(page.get_by_label("Priority")).to_have_value("high")
    tab_to(page, page.get_by_label("Name the customer"))
    keys.press("Space")
    expect(page.get_by_label("Name the customer")).not_to_be_checked()
    tab_to(page, page.get_by_role("button", name="Switch on"))
    keys.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/embed/automations/wayne-orders\?done=created$"))

    run = pushed_run(daemon, "wayne", ORDER)
    assert app.requests[-1].json()["text"] == "[high] #wayne: order 7"
    page.reload()  # F5
    tab_to(page, page.get_by_role("link", name=run["id"]))
    keys.press("Enter")
    expect(page.get_by_role("heading", name=f"Run {run['id']}")).to_be_visible()
    tab_to(page, page.get_by_role("button", name="Replay this run"))
    keys.press("Enter")
    expect(page.locator("dd .status").first).to_have_text("succeeded", timeout=15_000)
    assert run["id"] not in page.url

    page.goto(daemon.url + "/ui/embed/automations/wayne-orders")
    tab_to(page, page.get_by_role("button", name="Pause"))
    keys.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Paused")
    tab_to(page, page.get_by_role("button", name="Delete…"))
    keys.press("Enter")
    tab_to(page, page.get_by_role("button", name="Yes, delete it"))
    keys.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Deleted")


def test_no_page_shows_a_secret_value(daemon: Daemon, provider: Provider) -> None:
    """Every page of both sides, signed in, after credentials were typed in and connected:
    no secret the runner holds is in any answer's HTML (as is, or base64)."""
    typed = "stark-sink-token-c0ffee-91"
    with daemon.client("stark") as stark:
        made = stark.post(
            "/v1/credentials", json={"key": "stark-sink", "app": "sink", "values": {"token": typed}}
        )
        assert made.status_code == 201, made.text
        with daemon.client("stark") as client:
            created = client.post(
                "/v1/automations",
                json={
                    "key": "alerts",
                    "blueprint": "order-alerts",
                    "params": {"channel": "#s", "min_total": 1},
                    "credentials": {"action": "stark-sink"},
                },
            )
            assert created.status_code == 201, created.text
    run = pushed_run(daemon, "stark", ORDER)
    secrets = [
        *SECRETS.values(),
        *UI_SECRETS.values(),
        typed,
        *provider.live_access_tokens(),
        consumer_token("stark"),
    ]
    shown = [s for value in secrets for s in (value, base64.b64encode(value.encode()).decode())]
    pages: dict[str, str] = {}
    with httpx.Client(base_url=daemon.url) as operator:
        operator.post("/ui/session", data={"token": SECRETS["ROLLOUT_ADMIN_TOKEN"]})
        listed = operator.get("/ui/runs").text
        paths = [*PAGES["operator"], *set(re.findall(r'href="(/ui/runs/run_[^"]+)"', listed))]
        for path in paths:
            answer = operator.get(path)
            assert answer.status_code == 200, path
            pages[path] = answer.text
    with httpx.Client(base_url=daemon.url) as consumer:
        signed = consumer.post("/ui/session", data={"token": consumer_token("stark")})
        # the portal's cookie is `Secure` (it may be framed), which httpx keeps off plain http
        consumer.headers["Cookie"] = signed.headers["set-cookie"].split(";")[0]
        for path in [
            *PAGES["portal"][:3],
            "/ui/embed/automations/alerts",
            f"/ui/embed/runs/{run['id']}",
        ]:
            answer = consumer.get(path)
            assert answer.status_code == 200, path
            pages[path] = answer.text
    assert len(pages) > 8 and "stark-sink" in pages["/ui/embed/credentials"]
    assert "Authorization: Bearer ***" in pages[f"/ui/embed/runs/{run['id']}"]
    for path, html in pages.items():
        assert "<h1>" in html and "Sign in</h1>" not in html, path
        leaked = [s for s in shown if s in html]
        assert leaked == [], f"{path} shows a secret"


def test_operator_sees_an_api_automation_turn_invalid_printed_as_validate_prints_it(
    page: Any, daemon: Daemon, project: tuple[Path, int]
) -> None:
    with daemon.client("soylent") as client:
        values = {"token": "soylent-sink-token-3b"}
        made = client.post(
            "/v1/credentials", json={"key": "soylent-sink", "app": "sink", "values": values}
        )
        assert made.status_code == 201, made.text
        body = {
            "key": "green",
            "blueprint": "order-alerts",
            "params": {"channel": "#green", "min_total": 1},
            "credentials": {"action": "soylent-sink"},
        }
        assert client.post("/v1/automations", json=body).status_code == 201
        run = pushed_run(daemon, "soylent", ORDER)
        assert run["status"] == "succeeded", run

        blueprint = project[0] / "automations" / "order-alerts.yaml"
        original = blueprint.read_text()
        blueprint.write_text(original.replace("[channel, min_total]", "[channel, min_total, zone]"))
        try:
            deadline = time.time() + 20
            while client.get("/v1/automations/green").json()["status"] != "invalid":
                assert time.time() < deadline, "the changed blueprint was not reloaded"
                time.sleep(0.1)
            sign_in_operator(page, daemon, "/ui/automations?consumer=soylent")
            row = page.locator("tbody tr", has_text="green").first
            expect(row.locator("td").nth(2)).to_have_text("API")
            expect(row.locator("td").nth(3)).to_have_text("yes")
            expect(row.locator("td").nth(4)).to_contain_text("invalid")
            expect(row.locator("td").nth(5)).to_contain_text("succeeded")
            expect(row.locator("td").nth(6)).to_contain_text("0% (0 of 1)")
            report = page.locator("tr.report", has_text="soylent/green")
            report.get_by_text("Why soylent/green is invalid").click()
            lines = report.locator("pre.diagnostics").first.inner_text().splitlines()
            assert re.match(
                r"api:soylent/green:3:1: error\[RY\d+\] \$\.params: .*requires param `zone`",
                lines[0],
            ), lines
            assert lines[1].endswith("| params:"), lines
            assert lines[2].strip() == "| ^", lines
            assert lines[3].strip() == "= help: add `zone:` under params", lines
            screenshot(page, "automations-invalid")
        finally:
            blueprint.write_text(original)
            deadline = time.time() + 20
            while client.get("/v1/automations/green").json()["status"] != "ready":
                assert time.time() < deadline, "the restored blueprint was not reloaded"
                time.sleep(0.1)


def test_the_portals_writes_need_the_csrf_token_and_a_post_from_this_site(daemon: Daemon) -> None:
    with httpx.Client(base_url=daemon.url) as client:
        signed = client.post("/ui/session", data={"token": consumer_token("cyberdyne")})
        client.headers["Cookie"] = signed.headers["set-cookie"].split(";")[0]  # Secure: see above
        form = client.get("/ui/embed/blueprints/order-alerts")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        fields = {"key": "t", "params.channel": "#t", "params.min_total": "1"}
        for data, headers in (
            (fields, {}),
            ({**fields, "csrf": "forged"}, {}),
            ({**fields, "csrf": token[1]}, {"Sec-Fetch-Site": "cross-site"}),
        ):
            answer = client.post("/ui/embed/blueprints/order-alerts", data=data, headers=headers)
            assert answer.status_code == 403, answer.text
        for path in ("/ui/embed/automations/t/delete", "/ui/embed/credentials"):
            assert client.post(path, data={"confirm": "yes", "app": "sink"}).status_code == 403
        cross = client.get("/ui/embed/connect/crm", headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        started = client.get("/ui/embed/connect/crm", headers={"Sec-Fetch-Site": "same-origin"})
        assert started.status_code == 303 and "/oauth/authorize?" in started.headers["location"]
    with daemon.client("cyberdyne") as api:
        assert api.get("/v1/automations").json()["automations"] == []
        assert api.get("/v1/credentials").json()["credentials"] == []
