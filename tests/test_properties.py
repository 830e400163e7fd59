"""Stateful property-based tests of the whole engine: hypothesis drives the real API, a real
store (SQLite and PostgreSQL) and a real App server through random sequences of pushes
(single, batches, duplicates, odd but valid JSON, hostile bodies), App behaviours (success,
4xx, 5xx, 429, hangs, hostile bodies), configuration reloads and restarts, and checks after
every step what must always hold:

- one run per (automation, event dedupe key), replays aside;
- every terminal run has `finished_at`;
- no request, accepted or refused, is answered with a 5xx;
- every stored run is readable, from the store and over the API;
- no run is queued past its retry budget;
- no secret in any record, in any encoding.

Fixed seeds (`derandomize`), bounded examples and steps: this runs in `make test`.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import hypothesis.strategies as st
import pytest
from app_server import Answer, AppServer
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from machines import CHAT_BLUEPRINT, run_machine
from server_harness import ACME_TOKEN, GLOBEX_TOKEN, JWT_SECRET, LiveEnvironment
from strategies import ODD_JSON

from rollout_yaml import json_codec

MAX_ATTEMPTS = 3
TERMINAL = {"succeeded", "failed", "filtered", "dry_run"}
SECRETS = (ACME_TOKEN, GLOBEX_TOKEN, JWT_SECRET)

CONNECTOR_DEFAULTS = (
    "  timeout: 300ms\n"
    f"  retry: {{ max_attempts: {MAX_ATTEMPTS}, on_status: [429, 500, 502, 503, 504], "
    "backoff: exponential, base: 20ms, max: 100ms }\n"
)
ACME = """\
consumer: acme
credentials:
  sink: { app: sink, values: { token: "${ACME_SINK_TOKEN}" } }
automations:
  plain:
    trigger: { app: partner, trigger: order-created }
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: "{{ payload.order_id }}", text: "Order {{ payload.order_id }}" }
  picky:
    trigger: { app: partner, trigger: order-created }
    filter: "payload.total >= `50`"
    enabled: PICKY
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: "{{ payload.order_id }}", text: "Big {{ payload.total }}" }
  raising:
    trigger: { app: partner, trigger: order-created }
    filter: "contains(payload.blob || 'none', 'vip')"
    action:
      app: sink
      action: post-message
      credential: sink
      input: { text: "VIP {{ payload.order_id }}" }
  from-blueprint:
    blueprint: order-to-chat
    params: { channel: C42 }
    credentials: { action: sink }
"""

EVENT_IDS = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 3))
PAYLOADS = st.fixed_dictionaries(
    {"order_id": st.integers(1, 10**6), "total": st.sampled_from([1, 20, 50, 500])},
    optional={"blob": st.sampled_from([5, "vip", "plain", None]), "extra": ODD_JSON},
)
HOSTILE_BODIES = [
    b'{"app": "partner", "trigger": "order-created", "payload": {"order_id": 1, "total": NaN}}',
    b'{"app": "partner", "trigger": "order-created", "payload": {"order_id": 1, "total": 1e999}}',
    b'{"app": "partner", "trigger": "order-created", "payload": {"n": "\\ud800"}}',
    b'{"app": "partner", "trigger": "order-created", "payload": ' + b"[" * 5000 + b"]" * 5000,
    b'{"app": "partner", "trigger": "order-created", "id": "", "payload": {}}',
    b'{"app": "partner", "trigger": "order-created", "id": "' + b"x" * 600 + b'", "payload": {}}',
    b'{"events": []}',
    b"\xff\xfe",
    b"[1, 2",
]
APP_ANSWERS = {
    "ok": Answer(200, {"received": True, "ok": True}),
    "refused": Answer(400, {"error": {"message": "no"}}),
    "broken": Answer(500, {"error": {"message": "down"}}),
    "busy": Answer(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
    "hangs": Answer(200, {"ok": True}, delay=0.5),
    "not-json": Answer(200, b"<html>\x00\xff"),
    "nan": Answer(200, b'{"ok": true, "received": NaN, "n": 1e999}'),
    "surrogate": Answer(200, b'{"ok": true, "received": "\\udc00"}'),
    "echoes-the-token": Answer(
        200, {"ok": True, "received": f"Bearer {ACME_TOKEN}", "again": json.dumps(GLOBEX_TOKEN)}
    ),
}


def spellings(secret: str) -> set[str]:
    """A secret as raw text, percent- and form-encoded, base64 and JSON-escaped."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        json.dumps(secret)[1:-1],
    }


def project_for(environment: LiveEnvironment) -> None:
    root = environment.project
    sink = root / "connectors" / "sink.yaml"
    text = sink.read_text()
    start = text.index("  timeout:")
    end = text.index("  error:")
    sink.write_text(text[:start] + CONNECTOR_DEFAULTS + text[end:])
    (root / "automations").mkdir(exist_ok=True)
    (root / "automations" / "order-to-chat.yaml").write_text(CHAT_BLUEPRINT)
    (root / "environments" / "test" / "consumers" / "acme.yaml").write_text(
        ACME.replace("PICKY", "true")
    )


class Engine(RuleBasedStateMachine):
    """One environment per example, on `DATABASE` (set by the test functions below)."""

    database: str | None = None  # None: the project's own SQLite file
    tmp: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.app = AppServer().start()
        self.app.default = APP_ANSWERS["ok"]
        self.live = self._start(None)
        self.readable: set[str] = set()  # terminal runs already checked

    def _start(self, project: Path | None) -> LiveEnvironment:
        environment = LiveEnvironment(self.tmp, database=self.database, project=project)
        if project is None:
            project_for(environment)
        environment.environ["SINK_URL"] = self.app.url
        return environment.__enter__()

    def teardown(self) -> None:
        self.live.__exit__(None, None, None)
        self.app.stop()

    # -- requests -------------------------------------------------------------------------

    def _answered(self, response: Any) -> Any:
        assert response.status_code < 500, response.text
        return response

    @rule(
        consumer=st.sampled_from(["acme", "globex"]),
        events=st.lists(st.tuples(EVENT_IDS, PAYLOADS), min_size=1, max_size=4),
        way=st.sampled_from(["single", "batch", "rollout", "admin"]),
    )
    def push(self, consumer: str, events: list[tuple[Any, dict[str, Any]]], way: str) -> None:
        def event(item: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
            found = {"app": "partner", "trigger": "order-created", "payload": item[1]}
            return found if item[0] is None else {**found, "id": item[0]}

        with self.live.client(consumer) as client, self.live.client(admin=True) as admin:
            if way == "single":
                answer = client.post("/v1/events", json=event(events[0]))
            elif way == "batch":
                answer = client.post("/v1/events", json={"events": [event(e) for e in events]})
            elif way == "admin":
                answer = admin.post(
                    "/admin/v1/events", json={**event(events[0]), "consumer": consumer}
                )
            else:
                found = event(events[0])
                rollout = {
                    "appKey": "partner",
                    "triggerKey": "order-created",
                    "payload": found["payload"],
                }
                answer = client.post(
                    "/api/trigger-push-event",
                    json={**rollout, **({"id": found["id"]} if "id" in found else {})},
                )
        self._answered(answer)
        assert answer.status_code == 202, answer.text

    @rule(
        body=st.sampled_from(HOSTILE_BODIES),
        path=st.sampled_from(
            [
                "/v1/events",
                "/admin/v1/events",
                "/api/trigger-push-event",
                "/webhooks/partner/order-created/nope",
            ]
        ),
    )
    def push_hostile(self, body: bytes, path: str) -> None:
        with self.live.client(admin=path.startswith("/admin")) as client:
            answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
        self._answered(answer)
        assert 400 <= answer.status_code < 500

    @rule(kind=st.sampled_from(sorted(APP_ANSWERS)))
    def app_answers(self, kind: str) -> None:
        self.app.default = APP_ANSWERS[kind]

    @rule()
    def replay_latest(self) -> None:
        with self.live.client(admin=True) as admin:
            runs = admin.get("/admin/v1/runs", params={"limit": 1}).json()["runs"]
            if runs:
                self._answered(admin.post(f"/admin/v1/runs/{runs[0]['id']}/replay"))

    @rule(picky=st.booleans())
    def reload(self, picky: bool) -> None:
        """A consumer file edited while running: `picky` switched on or off."""
        from rollout_yaml.config.project import Layout
        from rollout_yaml.expr.compiler import load_and_compile

        acme = self.live.project / "environments" / "test" / "consumers" / "acme.yaml"
        acme.write_text(ACME.replace("PICKY", "true" if picky else "false"))
        env, _ = load_and_compile(Layout(self.live.project), "test", environ=self.live.environ)
        assert env is not None
        self.live.runtime.swap(env)

    @rule()
    def restart(self) -> None:
        project = self.live.project
        self.live.__exit__(None, None, None)
        self.live = self._start(project)

    @rule()
    def let_work_happen(self) -> None:
        time.sleep(0.3)

    # -- what always holds ------------------------------------------------------------------

    def _all_runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        cursor = None
        with self.live.client(admin=True) as admin:
            while True:
                params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
                page = self._answered(admin.get("/admin/v1/runs", params=params)).json()
                runs += page["runs"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return runs

    @invariant()
    def every_run_is_consistent_and_readable(self) -> None:
        runs = self._all_runs()
        keys = [
            (r["consumer"], r["automation"], r["event"]["key"])
            for r in runs
            if r["replay_of"] is None
        ]
        assert len(keys) == len(set(keys)), "two runs for one (automation, event)"
        for run in runs:
            if run["status"] in TERMINAL:
                assert run["finished_at"] is not None, run
            else:
                assert run["attempt_count"] < MAX_ATTEMPTS, run  # queued past its budget
        with self.live.client(admin=True) as admin:
            for run in runs:
                if run["id"] in self.readable:
                    continue
                shown = admin.get(f"/admin/v1/runs/{run['id']}")
                assert shown.status_code == 200, shown.text
                stored = self.live.call(lambda rid=run["id"]: self.live.runtime.store.get_run(rid))
                assert stored is not None
                text = json_codec.dumps(
                    {
                        "event": stored.event.payload,
                        "input": stored.input,
                        "output": stored.output,
                        "error": stored.error,
                        "attempts": [[a.request, a.response, a.error] for a in stored.attempt_log],
                    }
                ).decode()
                for secret in SECRETS:
                    for spelling in spellings(secret):
                        assert spelling not in text, f"a secret is stored in run {run['id']}"
                if run["status"] in TERMINAL:
                    self.readable.add(run["id"])


def test_engine_invariants_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> None:
    run_machine(Engine, tmp_path_factory, examples=4, steps=8)


def test_engine_invariants_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> None:
    run_machine(Engine, tmp_path_factory, examples=3, steps=8, postgres=True)
