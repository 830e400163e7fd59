"""Webhook parts in-process: subscriptions made once across replicas sharing one database,
taken over when the holder's lease expires; dedupe keys of deliveries without ids. The tests
that keep hooks in the store run on a SQLite file and a PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from app_server import Answer, AppServer
from cryptography.fernet import Fernet
from runner_env import copy_project, environ
from store_env import close_stores, replica_stores
from webhook_project import SECRETS, add_webhooks

from rollout_yaml.config.diagnostics import Severity
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.errors import EventRejected
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.engine.subscriptions import LEASE_NAME, Subscriptions
from rollout_yaml.engine.webhooks import Delivery, extract
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.http.client import AppClients
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import HookState, RunQuery


@pytest.fixture
def hooks_app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(201, {"webhook": {"id": 9}})
    yield server
    server.stop()


def compiled(tmp_path: Path, hooks_url: str) -> CompiledEnvironment:
    project = copy_project(tmp_path)
    add_webhooks(project)
    env, diagnostics = load_and_compile(
        Layout(project),
        "test",
        missing_secret=Severity.ERROR,
        environ={**environ("http://127.0.0.1:9"), **SECRETS, "HOOKS_URL": hooks_url},
    )
    assert env is not None, [d for d in diagnostics if d.is_error]
    return env


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_two_replicas_subscribe_once_and_the_survivor_takes_over(
    tmp_path: Path, database: str, hooks_app: AppServer
) -> None:
    env = compiled(tmp_path, hooks_app.url)

    async def scenario() -> None:
        stores = await replica_stores(database, tmp_path)
        clients = AppClients()
        clock = Clock()
        config = LiveConfig(env)
        one, two = (
            Subscriptions(config, replica, clients, owner=owner, clock=clock, lease_ttl=60)
            for replica, owner in zip(stores, ("replica-1", "replica-2"), strict=True)
        )
        try:
            await asyncio.gather(one.sync(), two.sync())
            await asyncio.gather(one.sync(), two.sync())
            assert [(r.method, r.path) for r in hooks_app.requests] == [("POST", "/webhooks")]
            hooks = await stores[0].list_hooks()
            assert {h.automation for h in hooks} == {
                "std-vector",
                "std",
                "gh",
                "slack-vector",
                "slack-events",
                "payments",
                "orders",
            }
            [orders] = [h for h in hooks if h.automation == "orders"]
            assert orders.subscription == {"id": "9"} and orders.state is HookState.ACTIVE

            # whichever won the race holds the lease (on PostgreSQL either may): it stops
            # renewing (it died); after the lease expires the other one works
            first_holds = await stores[0].acquire_lease(LEASE_NAME, "replica-1", clock.now, 60)
            survivor = two if first_holds else one
            store = stores[1] if first_holds else stores[0]
            removed = {k: a for k, a in env.automations.items() if k != ("hooky", "orders")}
            previous = config.current
            config.swap(_with_automations(env, removed))
            survivor.changed(previous)
            await survivor.sync()
            assert len(hooks_app.requests) == 1  # the holder's lease is still live
            clock.now += 61
            await survivor.sync()
            assert [(r.method, r.path) for r in hooks_app.requests][1:] == [
                ("DELETE", "/webhooks/9")
            ]
            assert "orders" not in {h.automation for h in await store.list_hooks()}
        finally:
            await clients.close()
            await close_stores(stores)

    asyncio.run(scenario())


def _with_automations(env: CompiledEnvironment, automations: dict) -> CompiledEnvironment:
    return replace(env, automations=automations)


def test_deliveries_without_ids_dedupe_on_content_or_the_delivery_id(
    tmp_path: Path, hooks_app: AppServer
) -> None:
    env = compiled(tmp_path, hooks_app.url)
    trigger = env.apps["hooks"].triggers["github"]
    assert trigger.webhook is not None
    first = extract(trigger, trigger.webhook, {"a": 1, "b": [2]}, None)
    again = extract(trigger, trigger.webhook, {"b": [2], "a": 1}, None)
    other = extract(trigger, trigger.webhook, {"a": 2}, None)
    assert first == again and first[0][0].startswith("sha256:")
    assert first[0][0] != other[0][0]
    assert extract(trigger, trigger.webhook, {"a": 1}, "delivery-7")[0][0] == "delivery-7"
    orders = env.apps["hooks"].triggers["orders"]
    assert orders.webhook is not None
    keys = [k for k, _ in extract(orders, orders.webhook, {"orders": [{"id": 1}, {"id": 2}]}, None)]
    assert keys == ["1", "2"]


def test_a_stored_credential_not_connected_yet_waits_visibly(
    tmp_path: Path, database: str, hooks_app: AppServer
) -> None:
    project = copy_project(tmp_path)
    consumer = add_webhooks(project)
    text = consumer.read_text()
    start = text.index("  hooks:\n    app: hooks\n")
    end = text.index("automations:")
    consumer.write_text(text[:start] + "  hooks:\n    app: hooks\n    stored: true\n" + text[end:])
    env, diagnostics = load_and_compile(
        Layout(project),
        "test",
        missing_secret=Severity.ERROR,
        environ={**environ("http://127.0.0.1:9"), **SECRETS, "HOOKS_URL": hooks_app.url},
    )
    assert env is not None, [d for d in diagnostics if d.is_error]

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        runtime = Runtime(env, store)
        try:
            await runtime.subscriptions.sync()
            assert hooks_app.requests == []
            status = await runtime.subscriptions.status()
            [pending] = status["pending"]
            assert pending["automation"] == "orders" and pending["attempts"] == 1
            assert "not connected yet" in pending["last_error"]
            urls = await runtime.webhook_urls("hooky")
            hook_id = urls[("hooky", "payments")].rsplit("/", 1)[1]
            with pytest.raises(EventRejected) as refused:
                await runtime.receive_webhook(
                    Delivery("hooks", "stripe", hook_id, {"Stripe-Signature": "t=1,v1=00"}, b"{}")
                )
            assert refused.value.status == 503
            assert await store.list_runs(RunQuery()) == []

            # connected (values set through the API or the CLI): the subscription goes out
            # with the stored token, decrypted
            keyed = with_encryption_key(env)
            runtime.swap(keyed)
            await runtime.credentials.put(keyed, "hooky", "hooks", {"token": "stored-token-1"})
            await asyncio.sleep(1.3)  # the failed attempt's backoff (1 s ± 20 %)
            await runtime.subscriptions.sync()
            [subscribe] = hooks_app.requests
            assert subscribe.headers["authorization"] == "Bearer stored-token-1"
            assert (await runtime.subscriptions.status())["pending"] == []
        finally:
            await runtime.clients.close()
            await store.close()

    asyncio.run(scenario())


def with_encryption_key(env: CompiledEnvironment) -> CompiledEnvironment:
    settings = env.settings.model_copy(update={"encryption_key": Fernet.generate_key().decode()})
    return CompiledEnvironment(
        env.name, settings, env.source, env.apps, env.blueprints, env.consumers, env.automations
    )


def test_a_new_public_url_moves_the_subscription_and_keeps_the_hook_id(
    tmp_path: Path, database: str, hooks_app: AppServer
) -> None:
    env = compiled(tmp_path, hooks_app.url)
    server = env.settings.server.model_copy(update={"public_url": "https://hooks.example.com/ry/"})
    moved = replace(env, settings=env.settings.model_copy(update={"server": server}))

    async def scenario() -> None:
        store = open_store(database, tmp_path)
        await store.open()
        clients = AppClients()
        config = LiveConfig(env)
        subscriptions = Subscriptions(config, store, clients, owner="r1")
        try:
            await subscriptions.sync()
            [before] = [h for h in await store.list_hooks() if h.automation == "orders"]
            assert hooks_app.requests[0].json()["address"] == (
                f"http://127.0.0.1:8080/webhooks/hooks/orders/{before.id}"
            )
            config.swap(moved)
            subscriptions.changed(env)
            await subscriptions.sync()
            calls = [(r.method, r.path) for r in hooks_app.requests]
            assert calls == [
                ("POST", "/webhooks"),
                ("DELETE", "/webhooks/9"),
                ("POST", "/webhooks"),
            ]
            [after] = [h for h in await store.list_hooks() if h.automation == "orders"]
            assert after.id == before.id
            assert hooks_app.requests[2].json()["address"] == (
                f"https://hooks.example.com/ry/webhooks/hooks/orders/{before.id}"
            )
            assert after.subscribed_url == hooks_app.requests[2].json()["address"]
        finally:
            await clients.close()
            await store.close()

    asyncio.run(scenario())
