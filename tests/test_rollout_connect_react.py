"""Rollout's own embedded components in a real browser against the real daemon: the published
`@rollout/connect-react` (installed from npm once into `tests/.node/connect/`, git-ignored),
bundled unchanged with esbuild into a partner's page (`tests/node/connect_react_app.js`:
`RolloutConnectProvider` + `AutomationsManager`), shown in chromium. The page lists the
consumer's automations with their icons, switches one off, and opens one in the editor, which
imports the action's UI module and shows the inputs and the payload variable it reads; and
`AutomationCreator` makes a new one (apps, credential, inputs from the variables menu) that
then runs.

Without node, npm or chromium it skips with the reason, except under CI=true."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rollout_npm
from browser import launch, require_chromium
from daemon_proc import Daemon, consumer_token
from rollout_client import Sink, copy_dropin_project

NODE = Path(__file__).parent / "node"
PACKAGES = (
    "@rollout/connect-react@2.2.169",
    "@tanstack/react-query@4",
    "react@18",
    "react-dom@18",
    "esbuild@0.24",
)
# connect-react 2.2's @elysiajs/eden asks for @elysiajs/stream@rc, which npm no longer has
OVERRIDES = {"@elysiajs/stream": "1.0.3"}
MADE_OVER_THE_API = {
    "name": "Made over the API",
    "trigger": {
        "appKey": "partner",
        "triggerKey": "order-created",
        "credentialKey": "acme",
        "inputParams": {},
    },
    "action": {
        "appKey": "sink",
        "actionKey": "deliver",
        "credentialKey": "sink",
        "inputParams": {"order_id": "{{payload.order_id}}", "text": "from the API"},
    },
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The partner's page script (connect-react and React, bundled) and connect-react's CSS."""
    require_chromium()
    modules = rollout_npm.require("connect", PACKAGES, OVERRIDES)
    target = tmp_path_factory.mktemp("bundle") / "app.js"
    entry = modules.parent / "connect_react_app.js"  # imports resolve from where it lies
    shutil.copyfile(NODE / "connect_react_app.js", entry)
    built = subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),
            str(entry),
            "--bundle",
            "--format=iife",
            f"--outfile={target}",
            "--define:process.env.NODE_ENV='production'".replace("'", '"'),
            "--define:process.env={}",
            "--define:global=globalThis",
            "--log-level=error",
        ],
        cwd=modules.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    css = modules / "@rollout" / "connect-react" / "dist" / "default.css"
    return target.read_text(), css.read_text()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with Sink() as sink:
        running = Daemon(copy_dropin_project(tmp_path), sink.url).start()
        try:
            yield running
        finally:
            running.stop()


def open_partner_page(browser: Any, daemon: Daemon, bundle: tuple[str, str]) -> tuple[Any, list]:
    """The partner's page, served at the runner's origin by the browser's own routing (the
    components call `${apiBaseUrl}/trpc` and import modules from it)."""
    script, css = bundle
    token = consumer_token("acme")
    html = (
        f"<!doctype html><html><head><meta charset=utf-8><style>{css}</style></head>"
        "<body><div id=root></div><script>"
        f'window.API_BASE_URL = "{daemon.url}/api"; window.CONSUMER_TOKEN = "{token}";'
        '</script><script src="/partner/app.js"></script></body></html>'
    )
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(
        f"{daemon.url}/partner/index.html",
        lambda route: route.fulfill(body=html, content_type="text/html"),
    )
    page.route(
        f"{daemon.url}/partner/app.js",
        lambda route: route.fulfill(body=script, content_type="text/javascript"),
    )
    page.goto(f"{daemon.url}/partner/index.html")
    return page, errors


def test_automations_manager_works_unchanged(daemon: Daemon, bundle: tuple[str, str]) -> None:
    from playwright import sync_api

    with daemon.client("acme") as client:
        made = client.post("/api/automations", json=MADE_OVER_THE_API)
        assert made.status_code == 201, made.text
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            page, errors = open_partner_page(chromium, daemon, bundle)
            for name in ("Orders to the sink", "Contacts to the CRM", "Made over the API"):
                page.get_by_text(name).wait_for(timeout=20000)
            page.wait_for_function("[...document.images].every((i) => i.complete)")
            icons = page.eval_on_selector_all(
                "img", "images => images.map((i) => [i.src, i.naturalWidth > 0])"
            )
            switch = page.get_by_label("Turn Made over the API integration off")
            switch.locator("xpath=..").click()  # the label drawn as the switch
            turned = page.get_by_label("Turn Made over the API integration on")
            turned.wait_for(state="attached", timeout=20000)
            page.get_by_text("Contacts to the CRM").click()
            page.get_by_text("Note text").wait_for(timeout=20000)
            editor = page.inner_text("body")
            chosen = page.eval_on_selector_all("input", "inputs => inputs.map((i) => i.value)")
        finally:
            chromium.close()
    with daemon.client("acme") as client:
        listed = {a["name"]: a for a in client.get("/api/automations").json()}
    assert errors == []
    assert {src.rsplit("/", 2)[-2] for src, _ in icons} == {"partner", "sink", "crm"}
    assert all(loaded for _, loaded in icons), icons
    assert listed["Made over the API"]["active"] is False
    assert listed["Orders to the sink"]["active"] is True
    # the editor: trigger and action by name, the action's inputs from its UI module, and the
    # variable {{payload.contact_id}} shown by its label in the payload schema
    for shown in (
        "Contacts to the CRM",
        "Partner App",
        "Contact Created",
        "Partner CRM",
        "Add a note",
    ):
        assert shown in chosen, chosen
    assert "Note text" in editor and "New contact" in editor
    assert "Contact" in editor.split("Record", 1)[1] and "(missing)" not in editor


def test_an_automation_made_in_automation_creator_runs(
    daemon: Daemon, bundle: tuple[str, str]
) -> None:
    from playwright import sync_api

    def choose(page: Any, label: str, option: str) -> None:
        page.get_by_label(label).click()
        page.get_by_role("option", name=option).click()

    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            page, errors = open_partner_page(chromium, daemon, bundle)
            page.get_by_text("Orders to the sink").wait_for(timeout=20000)
            page.get_by_text("New").click()
            page.get_by_label("Automation Name Input").fill("Made in the browser")
            choose(page, "Trigger app dropdown", "Partner App")
            choose(page, "Trigger dropdown", "Order Created")
            choose(page, "Action app dropdown", "Sink")
            choose(page, "Action dropdown", "Deliver an order")
            choose(page, "Select action app credential", "sink")
            inputs = page.locator("[contenteditable=true]")  # order_id, text, note
            inputs.nth(0).click()
            page.keyboard.type("@")  # the variables menu: the payload's fields by title
            page.get_by_role("button", name="Order number").click()
            inputs.nth(1).click()
            page.keyboard.type("Order of ")
            page.keyboard.type("@")
            page.get_by_role("button", name="Total").click()
            page.get_by_label("Save automation").click()
            page.get_by_text("Made in the browser").wait_for(timeout=20000)  # back in the list
        finally:
            chromium.close()
    assert errors == []
    with daemon.client("acme") as client:
        made = next(
            a for a in client.get("/api/automations").json() if a["name"] == "Made in the browser"
        )
        pushed = client.post(
            "/api/trigger-push-event",
            json={
                "appKey": "partner",
                "triggerKey": "order-created",
                "payload": {"order_id": 31, "total": 5},
            },
        )
        assert pushed.status_code == 202, pushed.text
        deadline = time.time() + 20
        while True:
            runs = client.get("/api/automation-runs", params={"automationId": made["id"]}).json()
            if runs and runs[0]["status"] in ("SUCCESS", "USER_ERROR", "SERVER_ERROR"):
                break
            assert time.time() < deadline, runs
            time.sleep(0.1)
    assert made["action"]["inputParams"] == {
        "order_id": "{{payload.order_id}}",
        "text": "Order of {{payload.total}}",
    }
    assert made["action"]["credentialKey"] == "sink" and made["blueprintKey"] is None
    [run] = runs
    assert run["status"] == "SUCCESS" and run["triggerEvent"]["payload"]["order_id"] == 31
