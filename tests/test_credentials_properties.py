"""Stateful property-based tests of run-time credentials (`/v1/credentials`): hypothesis
drives two consumers through random sequences of creates and updates (random secret-looking
values: quotes, backslashes, `%`, `+`, `/`, `=`), deletes, `auth.test` runs against an App
that echoes the secret back (in the label's field too), automations that use a credential and
pushed events that send it, against the real API, the real runtime and a real SQLite file.
After every step:

- no answer is a 5xx, and each status is the one the model predicts;
- no secret ever given, in any encoding (raw, base64 in both alphabets, hex, percent-encoded,
  JSON-escaped), is in any API answer, nor in any byte of the database files;
- deleting a credential an automation uses is a 409 that lists it, and leaves it;
- the lists show exactly the credentials the model holds.

Fixed seeds (`derandomize`), bounded examples and steps: this runs in `make test`.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import hypothesis.strategies as st
import pytest
from cryptography.fernet import Fernet
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from machines import CHAT_BLUEPRINT, NO_SHRINKING, run_machine
from server_harness import LiveEnvironment

CONSUMERS = ("acme", "globex")
KEYS = ("c1", "c2")
AUTH = """\
auth:
  type: bearer
  test:
    request: { path: /me }
    success: ok
  label: account.name
"""
# Secret-looking values, with the characters each encoding changes.
SECRETS = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(["sk_live_", "ghp_", "xoxb-", ""]),
    st.text(
        st.sampled_from('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"\\/+=%&~'),
        min_size=16,
        max_size=24,
    ),
)


class EchoApp:
    """The App: answers every request with `ok` and an account name; `echo` set, it sends the
    bearer token it was given back, in the body (`body`) or as the account's name (`label`)."""

    def __init__(self) -> None:
        self.echo = "none"
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sent = self.headers.get("Authorization", "")
                token = sent.removeprefix("Bearer ")
                body: dict[str, Any] = {"ok": True, "account": {"name": "Acme"}}
                if app.echo == "label":
                    body["account"]["name"] = f"Acct {token}"
                elif app.echo == "body":
                    body["you_sent"] = sent
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def encodings(secret: str) -> set[bytes]:
    raw = secret.encode()
    return {
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
        # a JSON text inside JSON (a recorded body in a stored record): escaped twice
        json.dumps(json.dumps(secret)[1:-1])[1:-1].encode(),
    }


class Credentials(RuleBasedStateMachine):
    tmp: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.app = EchoApp()
        environment = LiveEnvironment(self.tmp)
        root = environment.project
        sink = root / "connectors" / "sink.yaml"
        sink.write_text(sink.read_text().replace("auth: { type: bearer }\n", AUTH))
        (root / "automations").mkdir(exist_ok=True)
        (root / "automations" / "order-to-chat.yaml").write_text(CHAT_BLUEPRINT)
        settings_file = root / "environments" / "test" / "environment.yaml"
        key = Fernet.generate_key().decode()
        settings_file.write_text(settings_file.read_text() + f'encryption_key: "{key}"\n')
        environment.environ["SINK_URL"] = self.app.url
        self.live = environment.__enter__()
        self.clients = {c: self.live.client(c) for c in CONSUMERS}
        self.admin = self.live.client(admin=True)
        self.stored: dict[str, dict[str, str]] = {c: {} for c in CONSUMERS}  # key → secret
        self.users: dict[str, dict[str, set[str]]] = {c: {} for c in CONSUMERS}  # key → autos
        self.secrets: set[str] = set()  # every secret ever given
        self.answers: list[str] = []  # every answer since the last check
        self.events = itertools.count()

    def teardown(self) -> None:
        for client in [*self.clients.values(), self.admin]:
            client.close()
        self.live.__exit__(None, None, None)
        self.app.stop()

    def _answered(self, answer: Any, status: int) -> Any:
        assert answer.status_code < 500, answer.text
        self.answers.append(answer.text + json.dumps(dict(answer.headers)))
        assert answer.status_code == status, (status, answer.status_code, answer.text)
        return answer

    @initialize(secret=SECRETS)
    def one_in_use(self, secret: str) -> None:
        """Acme starts with credential c1, used by an automation: its delete must be a 409."""
        self.put("acme", "c1", secret, "consumer")
        self.use("acme", "c1")

    # -- rules ------------------------------------------------------------------------------

    @rule(
        consumer=st.sampled_from(CONSUMERS),
        key=st.none() | st.sampled_from(KEYS),
        secret=SECRETS,
        way=st.sampled_from(["consumer", "admin"]),
    )
    def put(self, consumer: str, key: str | None, secret: str, way: str) -> None:
        self.secrets.add(secret)
        body: dict[str, Any] = {"app": "sink", "values": {"token": secret}}
        if key is not None:
            body["key"] = key
        if way == "admin":
            answer = self.admin.post("/admin/v1/credentials", json={**body, "consumer": consumer})
            if answer.status_code in (404, 405):  # no admin create: the consumer's route
                answer = self.clients[consumer].post("/v1/credentials", json=body)
        else:
            answer = self.clients[consumer].post("/v1/credentials", json=body)
        view = self._answered(answer, 201).json()
        assert view["app"] == "sink" and view["source"] == "api", view
        self.stored[consumer][view["key"]] = secret

    @rule(consumer=st.sampled_from(CONSUMERS), echo=st.sampled_from(["none", "label", "body"]))
    def test(self, consumer: str, echo: str) -> None:
        if not self.stored[consumer]:
            return
        key = sorted(self.stored[consumer])[0]
        self.app.echo = echo
        self._answered(self.clients[consumer].post(f"/v1/credentials/{key}/test"), 200)

    @rule(consumer=st.sampled_from(CONSUMERS), key=st.sampled_from(KEYS))
    def use(self, consumer: str, key: str) -> None:
        """An automation that sends the credential's secret to the App."""
        if key not in self.stored[consumer]:  # else one that is stored, made-up keys too
            if not self.stored[consumer]:
                return
            key = min(self.stored[consumer])
        name = f"uses-{key}-{next(self.events)}"
        body = {
            "consumer": consumer,
            "key": name,
            "blueprint": "order-to-chat",
            "params": {"channel": "C1"},
            "credentials": {"action": key},
        }
        self._answered(self.admin.post("/admin/v1/automations", json=body), 201)
        self.users[consumer].setdefault(key, set()).add(name)

    @rule(consumer=st.sampled_from(CONSUMERS), key=st.sampled_from(KEYS))
    def stop_using(self, consumer: str, key: str) -> None:
        for name in sorted(self.users[consumer].pop(key, set())):
            self._answered(self.admin.delete(f"/admin/v1/automations/{consumer}/{name}"), 204)

    @rule(consumer=st.sampled_from(CONSUMERS), key=st.sampled_from(["used", "used", *KEYS]))
    def delete(self, consumer: str, key: str) -> None:
        if key == "used":  # mostly one that automations use: the 409 must keep it
            key = min((k for k, users in self.users[consumer].items() if users), default="c1")
        answer = self.clients[consumer].delete(f"/v1/credentials/{key}")
        if self.users[consumer].get(key):
            self._answered(answer, 409)
            for name in self.users[consumer][key]:
                assert name in answer.text, answer.text  # the 409 names its users
        elif key in self.stored[consumer]:
            self._answered(answer, 204)
            del self.stored[consumer][key]
        else:
            self._answered(answer, 404)

    @rule(consumer=st.sampled_from(CONSUMERS), echo=st.sampled_from(["none", "label", "body"]))
    def push(self, consumer: str, echo: str) -> None:
        """Runs that send the stored secrets, to an App that may echo them back."""
        self.app.echo = echo
        event = {
            "app": "partner",
            "trigger": "order-created",
            "payload": {"order_id": 1, "total": 20},
        }
        self._answered(self.clients[consumer].post("/v1/events", json=event), 202)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the runs are done (their records written)
            runs = self._answered(self.admin.get("/admin/v1/runs", params={"limit": 500}), 200)
            if all(r["status"] not in ("queued", "running") for r in runs.json()["runs"]):
                break
            time.sleep(0.05)

    # -- what always holds ------------------------------------------------------------------

    @invariant()
    def the_lists_are_the_model(self) -> None:
        for consumer in CONSUMERS:
            answer = self._answered(self.clients[consumer].get("/v1/credentials"), 200)
            api = {v["key"] for v in answer.json()["credentials"] if v["source"] == "api"}
            assert api == set(self.stored[consumer]), (api, self.stored[consumer])
            self._answered(self.clients[consumer].get("/v1/automations"), 200)
            self._answered(self.clients[consumer].get("/v1/runs"), 200)
        self._answered(self.admin.get("/admin/v1/credentials"), 200)

    @invariant()
    def no_secret_anywhere(self) -> None:
        folder = self.live.project / "environments" / "test" / ".rollout"
        files = b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
        texts = [a.encode() for a in self.answers]
        self.answers = []
        for secret in self.secrets:
            for form in encodings(secret):
                for text in texts:
                    assert form not in text, f"secret {secret!r} as {form!r} in {text[:300]!r}"
                assert form not in files, f"secret {secret!r} as {form!r} in the database"


def test_no_secret_leaves_and_used_credentials_stay(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_machine(Credentials, tmp_path_factory, examples=12, steps=12, phases=NO_SHRINKING)
