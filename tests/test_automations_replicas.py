"""Two replicas of one PostgreSQL environment (real daemons): an automation created, changed or
deleted over one is applied by the other as the write commits (LISTEN/NOTIFY, with a periodic
version check behind it)."""

from __future__ import annotations

import time
from pathlib import Path

from app_server import AppServer
from daemon_proc import Daemon
from test_automations_daemon import CREATE, chat_texts, project_for, push, wait_until


def test_created_on_one_replica_a_push_to_the_other_runs_it(
    tmp_path: Path, pg_database: str, sink: AppServer
) -> None:
    project = project_for(tmp_path, pg_database)
    first = Daemon(project, sink.url).start()
    second = Daemon(project, sink.url).start()
    try:
        with first.client("acme") as one, second.client("acme") as other:
            assert one.post("/v1/automations", json=CREATE).status_code == 201
            created = time.monotonic()
            number = iter(range(100, 10_000))
            wait_until(lambda: push(other, next(number))["runs_queued"] == 1, timeout=10)
            print(f"active on the other replica {time.monotonic() - created:.3f} s after the 201")
            assert wait_until(lambda: any(t.startswith("New order") for t in chat_texts(sink)))

            paused = one.patch("/v1/automations/chat-orders", json={"enabled": False})
            assert paused.status_code == 200
            wait_until(lambda: push(other, next(number))["runs_queued"] == 0, timeout=10)
            shown = other.get("/v1/automations/chat-orders").json()
            assert shown["version"] == 2 and shown["enabled"] is False

            assert (
                one.patch("/v1/automations/chat-orders", json={"enabled": True}).status_code == 200
            )
            wait_until(lambda: push(other, next(number))["runs_queued"] == 1, timeout=10)
            assert one.delete("/v1/automations/chat-orders").status_code == 204
            wait_until(lambda: push(other, next(number))["runs_queued"] == 0, timeout=10)
    finally:
        first.stop()
        second.stop()
