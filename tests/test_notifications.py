"""Partner notifications: stored in the outbox with what they report, delivered at least once to
a real receiver that checks each one with the `standardwebhooks` library, retried while it is
down, leased so that replicas never send one twice at once, and the secret never recorded."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from notify_receiver import Receiver, new_secret
from server_harness import ADMIN_TOKEN, LiveEnvironment, copy_project, secrets_environ
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from store_env import close_stores, replica_stores

from rollout_yaml.config.models.notify import NotifyRetry, secret_key
from rollout_yaml.config.project import Layout
from rollout_yaml.engine.live_config import LiveConfig
from rollout_yaml.engine.notifications import Notifications, backoff
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.signatures import standard_signature
from rollout_yaml.store.records import (
    CredentialStatus,
    NewNotification,
    NotificationQuery,
    NotificationStatus,
    StoredCredential,
    new_id,
)

FAST_RETRY = "{ first: 200ms, max: 1s, timeout: 2s }"
DOWN = float(os.environ.get("ROLLOUT_NOTIFY_DRILL_DOWN", "0"))
"""Seconds the receiver stays down at least (the issue's drill: `ROLLOUT_NOTIFY_DRILL_DOWN=30`);
by default only until every notification has failed twice."""


# -- signing and backoff -------------------------------------------------------------------


def test_the_signature_is_the_one_standard_webhooks_computes() -> None:
    secret = new_secret()
    body = b'{"type":"run.finished","data":{"text":"caf\xc3\xa9"}}'
    ours = standard_signature(secret_key(secret), "msg_1", 1_700_000_000, body)
    theirs = Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(1_700_000_000, UTC), body.decode()
    )
    assert ours == theirs
    assert ours.startswith("v1,") and len(base64.b64decode(ours[3:])) == 32


def test_backoff_doubles_up_to_max_with_jitter_taking_off_at_most_half() -> None:
    retry = NotifyRetry.model_validate({"first": "1s", "max": "10s"})
    full = [backoff(retry, n, rand=lambda: 0.0) for n in range(1, 7)]
    assert full == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    halved = [backoff(retry, n, rand=lambda: 1.0) for n in range(1, 7)]
    assert halved == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff(retry, 10_000) <= 10.0  # no overflow however long it has failed


# -- the outbox in the store ---------------------------------------------------------------


def notice(kind: str = "automation.created", at: float | None = None) -> NewNotification:
    now = time.time() if at is None else at
    payload = {"type": kind, "timestamp": "2026-01-01T00:00:00.000Z", "data": {"n": 1}}
    return NewNotification(new_id("msg"), kind, payload, now)


def test_replicas_claim_each_notification_once_and_a_lost_lease_loses_its_record(
    database: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        first, second = await replica_stores(database, tmp_path)
        try:
            notices = [notice() for _ in range(30)]
            await first.add_notifications(notices)
            await first.add_notifications(notices[:3])  # the same ids again: kept once
            now = time.time() + 1
            a, b = await asyncio.gather(
                first.claim_notifications("a", now, 60, 20),
                second.claim_notifications("b", now, 60, 20),
            )
            ids_a, ids_b = {n.id for n in a}, {n.id for n in b}
            assert not ids_a & ids_b
            assert ids_a | ids_b == {n.id for n in notices}
            # leased: nothing more to claim until a lease expires
            assert await first.claim_notifications("c", now, 60, 50) == []

            done = a[0]
            assert await first.finish_delivery(done.id, "a", 1, now, None, None)
            failed = a[1]
            assert await first.finish_delivery(failed.id, "a", 1, None, now + 5, "answered 503")
            # `b`'s lease expires; `c` takes one over, and `b`'s late record is refused
            late = b[0]
            taken = await second.claim_notifications("c", now + 61, 60, 50)
            assert late.id in {n.id for n in taken}
            assert not await second.finish_delivery(late.id, "b", 1, now, None, None)

            listed = await first.list_notifications(NotificationQuery(limit=100))
            assert [n.id for n in listed] == sorted((n.id for n in notices), reverse=True)
            by_id = {n.id: n for n in listed}
            assert by_id[done.id].status is NotificationStatus.DELIVERED
            assert by_id[failed.id].status is NotificationStatus.FAILING
            assert by_id[failed.id].last_error == "answered 503"
            assert by_id[late.id].status is NotificationStatus.PENDING
            failing = await first.list_notifications(
                NotificationQuery(status=NotificationStatus.FAILING)
            )
            assert [n.id for n in failing] == [failed.id]
            page = await first.list_notifications(NotificationQuery(limit=10))
            rest = await first.list_notifications(
                NotificationQuery(limit=100, before_id=page[-1].id)
            )
            assert [n.id for n in page + rest] == [n.id for n in listed]
            # retention takes delivered ones only
            assert await first.prune_notifications(now + 1) == 1
            assert done.id not in {
                n.id for n in await first.list_notifications(NotificationQuery(limit=100))
            }
        finally:
            await close_stores([first, second])

    asyncio.run(scenario())


def test_a_credential_turning_needs_reauth_stores_its_notification_once(
    database: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        (store,) = await replica_stores(database, tmp_path, count=1)
        try:
            await store.put_credential(
                StoredCredential("acme", "crm", "crm", b"x", CredentialStatus.ACTIVE, 1.0)
            )
            reauth = CredentialStatus.NEEDS_REAUTH
            first = notice("credential.needs_reauth")
            assert await store.mark_credential("acme", "crm", reauth, "invalid_grant", 2.0, [first])
            again = notice("credential.needs_reauth")
            assert not await store.mark_credential("acme", "crm", reauth, "revoked", 3.0, [again])
            listed = await store.list_notifications(NotificationQuery())
            assert [n.id for n in listed] == [first.id]
            row = await store.get_credential("acme", "crm")
            assert row is not None and row.error == "revoked"  # the reason is still updated
        finally:
            await store.close()

    asyncio.run(scenario())


# -- delivery end to end -------------------------------------------------------------------


def notify_project(tmp_path: Path, receiver_url: str, events: str | None = None) -> Path:
    project = copy_project(tmp_path)
    settings = project / "environments" / "test" / "environment.yaml"
    block = (
        "notify:\n"
        '  url: "${NOTIFY_URL}"\n'
        '  secret: "${NOTIFY_SECRET}"\n'
        f"  retry: {FAST_RETRY}\n" + (f"  events: {events}\n" if events else "")
    )
    settings.write_text(settings.read_text() + block)
    return project


def live_with(tmp_path: Path, receiver: Receiver, secret: str, **kw: Any) -> LiveEnvironment:
    live = LiveEnvironment(tmp_path, project=notify_project(tmp_path, receiver.url, **kw))
    live.environ.update({"NOTIFY_URL": receiver.url, "NOTIFY_SECRET": secret})
    return live


def test_a_finished_run_is_told_to_the_partner_signed(tmp_path: Path) -> None:
    secret = new_secret()
    receiver = Receiver(secret).start()
    try:
        with live_with(tmp_path, receiver, secret) as live:
            live.push("acme", {"order_id": 7, "total": 19.5}, event_id="ord-7")
            (run,) = live.wait_for_runs(1)
            (delivery,) = receiver.wait_for(count=1)
    finally:
        receiver.stop()
    assert receiver.rejected == []
    assert delivery.id.startswith("msg_")
    assert delivery.payload["type"] == "run.finished"
    told = delivery.payload["data"]["run"]
    assert told["id"] == run["id"] and told["status"] == run["status"] == "succeeded"
    assert (told["consumer"], told["automation"]) == ("acme", run["automation"])
    assert told["event"]["key"] == "ord-7" and told["event"]["trigger"] == "order-created"
    assert told["attempt_count"] == 1 and told["error"] is None


def test_every_notification_arrives_after_the_receiver_was_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = new_secret()
    receiver = Receiver(secret)  # down: its port refuses connections
    emitted: list[str | None] = []
    try:
        with live_with(tmp_path, receiver, secret) as live:
            went_down = time.monotonic()
            for n in range(5):
                live.push("acme", {"order_id": 100 + n, "total": 20}, event_id=f"down-{n}")
            for kind in (
                "automation.created",
                "automation.updated",
                "automation.deleted",
                "automation.invalid",
            ):
                data = {"consumer": "acme", "automation": {"key": "orders-to-sink"}}
                emitted.append(
                    live.call(
                        lambda kind=kind, data=data: live.runtime.notifications.emit(kind, data)
                    )
                )
            live.wait_for_runs(5)
            with live.client(admin=True) as client:
                deadline = time.monotonic() + 20
                while True:  # several attempts fail while it is down
                    listed = client.get("/admin/v1/notifications", params={"limit": 100}).json()
                    rows = listed["notifications"]
                    if len(rows) == 9 and all(r["attempts"] >= 2 for r in rows):
                        break
                    assert time.monotonic() < deadline, rows
                    time.sleep(0.1)
                assert {r["status"] for r in rows} == {"failing"}
                metrics = client.get("/metrics").text
                assert "rollout_notifications_undelivered 9.0" in metrics
                assert 'rollout_notifications_sent_total{outcome="failed"' in metrics
                assert all("connect" in (r["last_error"] or "").lower() for r in rows), rows
                ids = {r["id"] for r in rows}
                assert set(emitted) <= ids
                time.sleep(max(0.0, DOWN - (time.monotonic() - went_down)))

                receiver.start()  # back up: everything arrives
                back_up = time.monotonic()
                got = receiver.wait_for(ids, timeout=30)
                logging.getLogger("drill").info(
                    "down %.1fs; all %d arrived %.2fs after the receiver came back",
                    back_up - went_down,
                    len(ids),
                    time.monotonic() - back_up,
                )
                deadline = time.monotonic() + 10
                while True:
                    rows = client.get("/admin/v1/notifications", params={"limit": 100}).json()[
                        "notifications"
                    ]
                    if all(r["status"] == "delivered" for r in rows):
                        break
                    assert time.monotonic() < deadline, rows
                    time.sleep(0.05)
                deadline = time.monotonic() + 10
                while "rollout_notifications_undelivered 0.0" not in client.get("/metrics").text:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            project = live.project
    finally:
        receiver.stop()
    assert receiver.rejected == []
    assert {d.id for d in got} == ids  # each id at least once, none missing, nothing else
    kinds = sorted(d.payload["type"] for d in got if d.id in ids)
    assert kinds.count("run.finished") >= 5
    assert {d.payload["type"] for d in got} == {
        "run.finished",
        "automation.created",
        "automation.updated",
        "automation.deleted",
        "automation.invalid",
    }
    # the secret (or its key) is in no log line and no byte of the database
    key = secret.removeprefix("whsec_")
    assert key not in caplog.text
    db_files = list((project / "environments" / "test").rglob("state.db*"))  # after closing
    assert db_files
    for path in db_files:
        assert key.encode() not in path.read_bytes(), path


def test_the_admin_list_pages_and_filters(tmp_path: Path) -> None:
    secret = new_secret()
    receiver = Receiver(secret).start()
    try:
        with live_with(tmp_path, receiver, secret, events="[automation.created]") as live:
            live.push("acme", {"order_id": 1, "total": 20})  # run.finished is not asked for
            made = [
                live.call(
                    lambda n=n: live.runtime.notifications.emit(
                        "automation.created", {"consumer": "acme", "automation": {"key": f"a{n}"}}
                    )
                )
                for n in range(5)
            ]
            receiver.wait_for(set(filter(None, made)))
            live.wait_for_runs(1)
            with httpx.Client(base_url=live.url, timeout=10) as anonymous:
                assert anonymous.get("/admin/v1/notifications").status_code == 401
            with live.client(admin=True) as client:
                deadline = time.monotonic() + 10
                while True:
                    first = client.get("/admin/v1/notifications", params={"limit": 2})
                    assert first.status_code == 200, first.text
                    body = first.json()
                    if all(r["status"] == "delivered" for r in body["notifications"]):
                        break
                    assert time.monotonic() < deadline, body
                    time.sleep(0.05)
                pages = [body]
                while pages[-1]["next_cursor"]:
                    pages.append(
                        client.get(
                            "/admin/v1/notifications",
                            params={"limit": 2, "cursor": pages[-1]["next_cursor"]},
                        ).json()
                    )
                listed = [r for page in pages for r in page["notifications"]]
                delivered = client.get(
                    "/admin/v1/notifications", params={"status": "delivered"}
                ).json()["notifications"]
                failing = client.get(
                    "/admin/v1/notifications", params={"status": "failing"}
                ).json()["notifications"]
                bad = client.get("/admin/v1/notifications", params={"status": "lost"})
    finally:
        receiver.stop()
    assert [r["id"] for r in listed] == sorted(filter(None, made), reverse=True)
    assert [len(p["notifications"]) for p in pages] == [2, 2, 1]
    row = listed[0]
    assert row["type"] == "automation.created" and row["attempts"] == 1
    assert row["delivered_at"] and row["last_error"] is None
    assert row["payload"]["data"]["automation"]["key"] == "a4"
    assert len(delivered) == 5 and failing == []
    assert bad.status_code == 422, bad.text
    assert ADMIN_TOKEN not in str(listed)


def test_two_replicas_on_postgresql_send_each_notification_once(
    pg_database: str, tmp_path: Path
) -> None:
    secret = new_secret()
    receiver = Receiver(secret).start()
    project = notify_project(tmp_path, receiver.url)
    environ = {
        **secrets_environ("http://127.0.0.1:9"),
        "NOTIFY_URL": receiver.url,
        "NOTIFY_SECRET": secret,
    }
    env, diagnostics = load_and_compile(Layout(project), "test", environ=environ)
    assert env is not None, diagnostics

    async def scenario() -> list[str]:
        stores = await replica_stores(pg_database, tmp_path)
        clients = [AppClients(), AppClients()]
        replicas = [
            Notifications(LiveConfig(env), store, client, owner=f"replica-{n}")
            for n, (store, client) in enumerate(zip(stores, clients, strict=True))
        ]
        try:
            made = [
                note
                for n in range(60)
                for note in replicas[n % 2].prepare("automation.created", {"n": n})
            ]
            await stores[0].add_notifications(made)
            loops = [asyncio.create_task(r.run()) for r in replicas]
            deadline = time.monotonic() + 20
            while len({d.id for d in receiver.deliveries()}) < len(made):
                assert time.monotonic() < deadline, len(receiver.deliveries())
                await asyncio.sleep(0.05)
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            return [note.id for note in made]
        finally:
            for client in clients:
                await client.close()
            await close_stores(stores)

    try:
        ids = asyncio.run(scenario())
    finally:
        receiver.stop()
    delivered = [d.id for d in receiver.deliveries()]
    assert sorted(delivered) == sorted(ids)  # every one, and none twice
    assert receiver.rejected == []


def test_deliveries_follow_the_egress_rules(tmp_path: Path) -> None:
    secret = new_secret()
    receiver = Receiver(secret).start()
    try:
        live = live_with(tmp_path, receiver, secret)
        settings = live.project / "environments" / "test" / "environment.yaml"
        text = settings.read_text().replace(
            "runtime:\n", "runtime:\n  egress: { allow_private: false }\n"
        )
        settings.write_text(text)
        with live:
            made = live.call(
                lambda: live.runtime.notifications.emit("automation.deleted", {"consumer": "acme"})
            )
            with live.client(admin=True) as client:
                deadline = time.monotonic() + 10
                while True:
                    (row,) = client.get("/admin/v1/notifications").json()["notifications"]
                    if row["attempts"] >= 1:
                        break
                    assert time.monotonic() < deadline, row
                    time.sleep(0.05)
    finally:
        receiver.stop()
    assert row["id"] == made and row["status"] == "failing"
    assert row["last_error"].startswith("egress: ") and "loopback" in row["last_error"]
    assert receiver.deliveries() == [] and receiver.rejected == []


def test_a_retry_sends_the_same_id_and_body_signed_anew(tmp_path: Path) -> None:
    secret = new_secret()
    receiver = Receiver(secret).start()
    receiver.refuse(2)  # busy twice: 503, 503, then 204
    try:
        with live_with(tmp_path, receiver, secret) as live:
            made = live.call(
                lambda: live.runtime.notifications.emit(
                    "automation.updated", {"consumer": "acme", "key": "orders", "version": 2}
                )
            )
            (delivery,) = receiver.wait_for(count=1)
            with live.client(admin=True) as client:
                deadline = time.monotonic() + 10
                while True:
                    (row,) = client.get("/admin/v1/notifications").json()["notifications"]
                    if row["status"] == "delivered":
                        break
                    assert time.monotonic() < deadline, row
                    time.sleep(0.05)
    finally:
        receiver.stop()
    assert delivery.id == made and row["attempts"] == 3 and row["last_error"] is None
    refused_bodies = [body for _, body in receiver.refused]
    assert len(refused_bodies) == 2 and len(set(refused_bodies)) == 1  # the same bytes each time
    assert [headers["webhook-id"] for headers, _ in receiver.refused] == [made, made]
    assert json.loads(refused_bodies[0]) == delivery.payload
    # each attempt signs its own timestamp; the signature verifies for its own
    for headers, body in receiver.refused:
        Webhook(secret).verify(body, headers)


def test_while_rotating_every_delivery_is_signed_with_each_secret(tmp_path: Path) -> None:
    new, old = new_secret(), new_secret()
    receiver = Receiver(old).start()  # the partner still checks with the old one
    receiver.refuse(1)  # keep the first attempt's bytes and headers
    try:
        with live_with(tmp_path, receiver, f"{new},{old}") as live:
            live.call(
                lambda: live.runtime.notifications.emit(
                    "automation.created", {"consumer": "acme", "key": "orders", "version": 1}
                )
            )
            receiver.wait_for(count=1)
    finally:
        receiver.stop()
    ((headers, body),) = receiver.refused
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):  # either secret verifies it: the partner can switch at any time
        assert Webhook(secret).verify(body, headers)["type"] == "automation.created"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
