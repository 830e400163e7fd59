"""OAuth2 and stored credentials end to end: the real daemon, a real OAuth 2.0 authorization
server (Authlib) that is also the App's API, real redirects followed by an HTTP client the way a
browser follows them, and the real SQLite file read back byte by byte."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from app_server import Answer, AppServer
from cryptography.fernet import Fernet
from daemon_proc import Daemon, free_port
from oauth_provider import CLIENT_SECRET, Provider
from runner_env import environ

FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"
ENCRYPTION_KEY = Fernet.generate_key().decode()
VAULT_KEY = "vault-api-key-3b9d1f7e5a"


@pytest.fixture
def provider() -> Iterator[Provider]:
    running = Provider().start()
    yield running
    running.stop()


@pytest.fixture
def sink() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"ok": True})
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path, provider: Provider) -> Path:
    target = tmp_path / "project"
    shutil.copytree(FIXTURE, target)
    for connector in (target / "connectors").glob("*.yaml"):
        connector.write_text(connector.read_text().replace("PROVIDER_URL", provider.url))
    return target


@pytest.fixture
def daemon(project: Path, provider: Provider, sink: AppServer) -> Iterator[Daemon]:
    port = free_port()
    extra = {
        "ROLLOUT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "PROVIDER_URL": provider.url,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    running = Daemon(project, sink.url, port=port, extra_env=extra).start()
    yield running
    running.stop()


def connect(daemon: Daemon, landing: AppServer, consumer: str = "acme") -> httpx.Response:
    """The connect flow as a browser does it: every redirect followed."""
    with daemon.client(consumer) as client:
        answer = client.get(
            "/v1/connect/crm",
            params={"credential": "crm", "redirect": f"{landing.url}/connected"},
            follow_redirects=True,
        )
    assert answer.status_code == 200, answer.text
    return answer


def push(daemon: Daemon, trigger: str, emails: list[str]) -> list[str]:
    events = [{"app": "partner", "trigger": trigger, "payload": {"email": e}} for e in emails]
    with daemon.client("acme") as client:
        answer = client.post("/v1/events", json={"events": events})
    assert answer.status_code == 202, answer.text
    return list(answer.json()["event_ids"])


def runs_of(daemon: Daemon, automation: str, count: int, timeout: float = 30) -> list[dict]:
    """The automation's runs once `count` of them have finished."""
    done = ("succeeded", "failed")
    deadline = time.time() + timeout
    with daemon.client("acme") as client:
        while time.time() < deadline:
            found = client.get("/v1/runs", params={"automation": automation, "limit": 500}).json()[
                "runs"
            ]
            finished = [r for r in found if r["status"] in done]
            if len(finished) >= count:
                return [client.get(f"/v1/runs/{r['id']}").json() for r in finished]
            time.sleep(0.1)
    raise AssertionError(f"{automation}: fewer than {count} finished runs: {found}")


def credential(daemon: Daemon, key: str, consumer: str = "acme") -> dict:
    with daemon.client(consumer) as client:
        views = client.get("/v1/credentials").json()["credentials"]
    return next(v for v in views if v["key"] == key)


def database_bytes(project: Path) -> bytes:
    folder = project / "environments" / "test" / ".rollout"
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


# -- the connect flow ----------------------------------------------------------------------


def test_connect_flow_follows_real_redirects_and_the_action_uses_the_token(
    daemon: Daemon, provider: Provider, sink: AppServer
) -> None:
    assert credential(daemon, "crm")["status"] == "not_connected"
    answer = connect(daemon, sink)

    hops = [str(r.url) for r in answer.history]
    assert hops[0].startswith(daemon.url + "/v1/connect/crm")
    assert hops[1].startswith(provider.url + "/oauth/authorize")
    assert hops[2].startswith(daemon.url + "/oauth/callback")
    landed = sink.wait_for(1)[0]
    assert parse_qs(urlsplit(landed.path).query) == {
        "credential": ["crm"],
        "app": ["crm"],
        "status": ["connected"],
    }
    # the code was exchanged with the client secret and the PKCE verifier
    exchange = provider.token_requests[0]["form"]
    assert exchange["grant_type"] == "authorization_code"
    assert exchange["client_secret"] == CLIENT_SECRET and exchange["code_verifier"]
    assert exchange["redirect_uri"] == daemon.url + "/oauth/callback"

    view = credential(daemon, "crm")
    assert view["status"] == "active" and view["expires_at"] is not None
    (issued,) = provider.live_access_tokens()
    assert issued not in json.dumps(view)

    push(daemon, "signup", ["ada@example.com"])
    (run,) = runs_of(daemon, "signups-to-crm", 1)
    assert run["status"] == "succeeded", run
    assert provider.api_calls[-1].token == issued
    assert run["attempts"][0]["request"]["headers"]["Authorization"] == "Bearer ***"
    assert issued not in json.dumps(run)
    assert issued not in daemon.logs()


def test_state_tampering_and_reuse_are_refused(daemon: Daemon, provider: Provider) -> None:
    with daemon.client("acme") as client:
        start = client.get("/v1/connect/crm", params={"credential": "crm"})
    assert start.status_code == 302
    authorize = httpx.get(start.headers["location"])
    assert authorize.status_code == 302
    callback = httpx.URL(authorize.headers["location"])
    assert str(callback).startswith(daemon.url + "/oauth/callback")
    state = callback.params["state"]

    middle = len(state) // 2
    forged = state[:middle] + ("A" if state[middle] != "A" else "B") + state[middle + 1 :]
    tampered = httpx.get(str(callback.copy_set_param("state", forged)))
    assert tampered.status_code == 400
    assert tampered.json()["error"]["code"] == "invalid_state"
    missing = httpx.get(str(callback.copy_remove_param("state")))
    assert missing.status_code == 400
    assert credential(daemon, "crm")["status"] == "not_connected"

    first = httpx.get(str(callback))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "credential": "crm",
        "app": "crm",
        "status": "connected",
        "consumer": "acme",
    }
    again = httpx.get(str(callback))
    assert again.status_code == 400
    assert "already used" in again.json()["error"]["message"]
    assert provider.grants["authorization_code"] == 1  # the replay never reached the provider


def test_connect_refuses_what_cannot_be_connected(daemon: Daemon) -> None:
    with daemon.client("acme") as client:
        wrong_kind = client.get("/v1/connect/vault", params={"credential": "vault"})
        assert wrong_kind.status_code == 422
        assert "authorization_code" in wrong_kind.json()["error"]["message"]
        unknown = client.get("/v1/connect/crm", params={"credential": "nope"})
        assert unknown.status_code == 404
        bad_redirect = client.get(
            "/v1/connect/crm", params={"credential": "crm", "redirect": "javascript:alert(1)"}
        )
        assert bad_redirect.status_code == 422
        as_json = client.get(
            "/v1/connect/crm", headers={"Accept": "application/json"}
        )  # without `credential`: a new one, its key made up
        assert as_json.status_code == 200
        assert as_json.json()["authorize_url"].startswith("http://127.0.0.1")
        assert as_json.json()["credential"].startswith("crm-")
    with httpx.Client(base_url=daemon.url) as anonymous:
        assert anonymous.get("/v1/connect/crm").status_code == 401


# -- refresh -------------------------------------------------------------------------------


def test_fifty_concurrent_runs_with_an_expired_token_refresh_it_once(
    daemon: Daemon, provider: Provider, sink: AppServer
) -> None:
    provider.expires_in = 30  # within the 60 s margin: the stored token counts as expired
    connect(daemon, sink)
    (old,) = provider.live_access_tokens()
    provider.expires_in = 3600

    push(daemon, "signup", [f"user{i}@example.com" for i in range(50)])
    runs = runs_of(daemon, "signups-to-crm", 50)

    assert [r["status"] for r in runs] == ["succeeded"] * 50
    assert provider.grants["refresh_token"] == 1
    tokens = {call.token for call in provider.api_calls}
    assert len(tokens) == 1 and old not in tokens
    assert credential(daemon, "crm")["status"] == "active"
    metrics = httpx.get(daemon.url + "/metrics").text
    refreshed = 'rollout_oauth_token_requests_total{app="crm",grant="refresh_token",outcome="ok"}'
    assert f"{refreshed} 1.0" in metrics


def test_a_401_refreshes_once_and_sends_again(
    daemon: Daemon, provider: Provider, sink: AppServer
) -> None:
    connect(daemon, sink)
    provider.revoke_access_tokens()  # the stored expiry says fresh; the App says no

    push(daemon, "signup", [f"user{i}@example.com" for i in range(5)])
    runs = runs_of(daemon, "signups-to-crm", 5)

    assert [r["status"] for r in runs] == ["succeeded"] * 5
    assert provider.grants["refresh_token"] == 1
    assert all(r["attempt_count"] == 1 for r in runs)
    (fresh,) = provider.live_access_tokens()
    assert provider.api_calls and all(call.token == fresh for call in provider.api_calls)


def test_a_poll_uses_the_stored_token_and_refreshes_it_once_on_a_401(
    daemon: Daemon, provider: Provider, sink: AppServer, project: Path
) -> None:
    connect(daemon, sink)
    with daemon.client("acme") as client:
        saved = client.post(
            "/v1/credentials",
            json={"key": "vault", "values": {"account": "acct-7", "api_key": VAULT_KEY}},
        )
        assert saved.status_code < 300, saved.text
    push(daemon, "signup", ["a@example.com", "b@example.com"])
    runs_of(daemon, "signups-to-crm", 2)
    provider.revoke_access_tokens()  # the stored expiry says fresh; the App says no

    consumer = project / "environments" / "test" / "consumers" / "acme.yaml"
    consumer.write_text(
        consumer.read_text()
        + "  contacts-to-vault:\n"
        + "    trigger: { app: crm, trigger: contact-created, credential: crm }\n"
        + "    action: { app: vault, action: store-signup, credential: vault,"
        + ' input: { email: "{{ payload.email }}" } }\n'
    )
    runs = runs_of(daemon, "contacts-to-vault", 2)

    assert [r["status"] for r in runs] == ["succeeded"] * 2
    assert sorted(r["event"]["payload"]["email"] for r in runs) == [
        "a@example.com",
        "b@example.com",
    ]
    stored = [r.path for r in sink.requests if r.path.startswith("/accounts/")]
    assert stored == ["/accounts/acct-7/signups"] * 2
    assert provider.grants["refresh_token"] == 1
    (fresh,) = provider.live_access_tokens()
    assert provider.listed and set(provider.listed) == {fresh}  # refused pages are not listed


def test_a_refused_refresh_marks_the_credential_needs_reauth(
    daemon: Daemon, provider: Provider, sink: AppServer
) -> None:
    connect(daemon, sink)
    provider.revoke_refresh_tokens()
    provider.revoke_access_tokens()

    push(daemon, "signup", ["ada@example.com"])
    (run,) = runs_of(daemon, "signups-to-crm", 1)
    assert run["status"] == "failed"
    assert run["error_kind"] == "credential"
    assert "needs_reauth" in run["error"] and "invalid_grant" in run["error"]
    assert run["attempt_count"] == 1  # not retried

    view = credential(daemon, "crm")
    assert view["status"] == "needs_reauth" and "invalid_grant" in view["error"]

    refreshes = provider.grants["refresh_token"]
    calls = len(provider.api_calls)
    push(daemon, "signup", ["bob@example.com"])
    later = runs_of(daemon, "signups-to-crm", 2)
    assert all(r["status"] == "failed" for r in later)
    assert provider.grants["refresh_token"] == refreshes  # no refresh storm
    assert len(provider.api_calls) == calls

    connect(daemon, sink)  # connecting again brings it back
    assert credential(daemon, "crm")["status"] == "active"
    push(daemon, "signup", ["cy@example.com"])
    assert sorted(r["status"] for r in runs_of(daemon, "signups-to-crm", 3)) == [
        "failed",
        "failed",
        "succeeded",
    ]


def test_client_credentials_grant(daemon: Daemon, provider: Provider) -> None:
    push(daemon, "stock", ["a@example.com", "b@example.com"])
    runs = runs_of(daemon, "stock-to-warehouse", 2)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert provider.grants["client_credentials"] == 1
    request = provider.token_requests[0]
    assert request["authorization"] is not None  # token_auth: basic
    assert "client_secret" not in request["form"]
    (token,) = provider.live_access_tokens()
    assert [call.token for call in provider.api_calls] == [token, token]
    assert credential(daemon, "warehouse")["status"] == "active"

    provider.revoke_access_tokens()  # a 401 gets a new token, once
    push(daemon, "stock", ["c@example.com"])
    assert [r["status"] for r in runs_of(daemon, "stock-to-warehouse", 3)] == ["succeeded"] * 3
    assert provider.grants["client_credentials"] == 2
    (renewed,) = provider.live_access_tokens()
    assert provider.api_calls[-1].token == renewed != token


# -- stored credentials are secret ---------------------------------------------------------


def test_stored_credentials_are_encrypted_and_never_shown(
    daemon: Daemon, provider: Provider, sink: AppServer, project: Path
) -> None:
    with daemon.client("acme") as client:
        stored = client.post(
            "/v1/credentials",
            json={"key": "vault", "values": {"account": "acct-7", "api_key": VAULT_KEY}},
        )
        assert stored.status_code == 201, stored.text
        assert stored.json()["status"] == "active"
        unknown = client.post("/v1/credentials", json={"key": "vault", "values": {"pin": "1"}})
        assert unknown.status_code == 422
        listed = client.get("/v1/credentials").text
        compat = client.get("/api/credentials").text
    with daemon.client("globex") as other:
        assert other.delete("/v1/credentials/vault").status_code == 404  # not theirs
    connect(daemon, sink)

    push(daemon, "archive", ["ada@example.com"])
    (run,) = runs_of(daemon, "archive-to-vault", 1)
    assert run["status"] == "succeeded", run
    received = next(r for r in sink.requests if r.path == "/accounts/acct-7/signups")
    assert received.headers["X-Api-Key"] == VAULT_KEY
    assert run["attempts"][0]["request"]["headers"]["X-Api-Key"] == "***"

    shown = daemon.cli("credentials", "list", "--env", "test", "--consumer", "acme")
    assert shown.returncode == 0, shown.stderr
    assert "vault" in shown.stdout and "active" in shown.stdout
    new_key = VAULT_KEY + "-rotated"
    command = ("credentials", "set", "vault", "--env", "test", "--consumer", "acme")
    fields = ("--value", "account=acct-7", "--secret", "api_key")
    reset = subprocess.run(  # through the running daemon's admin API
        [sys.executable, "-m", "rollout_yaml", *command, *fields, "--project", str(project)],
        env=daemon.env,
        input=new_key + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    rotated = daemon.cli("credentials", "rotate", "--env", "test")
    assert rotated.returncode == 0 and "re-encrypted 2" in rotated.stdout, rotated.stderr
    push(daemon, "archive", ["bob@example.com"])
    runs_of(daemon, "archive-to-vault", 2)
    assert sink.requests[-1].headers["X-Api-Key"] == new_key
    (token,) = provider.live_access_tokens()
    refresh = provider.by_refresh
    secrets = [VAULT_KEY, new_key, token, *refresh]
    shown_texts = (shown.stdout, shown.stderr, reset.stdout, reset.stderr, rotated.stdout)
    for text in (stored.text, listed, compat, json.dumps(run), *shown_texts):
        assert not [s for s in secrets if s in text]

    assert daemon.stop() == 0
    assert not [s for s in secrets if s in daemon.logs()]
    raw = database_bytes(project)
    assert not [s for s in secrets if s.encode() in raw]
    db = sqlite3.connect(project / "environments" / "test" / ".rollout" / "state.db")
    rows = dict(db.execute("select key, ciphertext from credentials where consumer = 'acme'"))
    db.close()
    assert set(rows) == {"vault", "crm"}
    assert b"acct-7" not in rows["vault"]  # the whole credential is encrypted, not only secrets
    assert Fernet(ENCRYPTION_KEY.encode()).decrypt(rows["vault"])  # and with the key, it opens


def test_cli_sets_lists_and_deletes_without_a_daemon(project: Path, sink: AppServer) -> None:
    env = {
        **os.environ,
        **environ(sink.url),
        "ROLLOUT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "PROVIDER_URL": "http://127.0.0.1:9",
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": "http://127.0.0.1:9",
    }

    common = ("--env", "test", "--project", str(project), "--url", "http://127.0.0.1:9")

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rollout_yaml", "credentials", *args, *common],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    set_it = cli(
        "set",
        "--consumer",
        "acme",
        "vault",
        "--value",
        "account=acct-9",
        "--secret",
        "api_key",
        stdin=VAULT_KEY + "\n",
    )
    assert set_it.returncode == 0, set_it.stderr
    assert "stored credential `vault`" in set_it.stdout
    listed = cli("list", "--consumer", "acme", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    views = {v["key"]: v for v in json.loads(listed.stdout)["credentials"]}
    assert views["vault"]["status"] == "active"
    assert views["crm"]["status"] == "not_connected"
    table = cli("list", "--consumer", "acme")
    assert "vault" in table.stdout and "active" in table.stdout
    shown = set_it.stdout + set_it.stderr + listed.stdout + table.stdout
    assert VAULT_KEY not in shown and "acct-9" not in shown
    assert VAULT_KEY.encode() not in database_bytes(project)

    undeclared = cli("set", "--consumer", "acme", "nope", "--value", "a=b")
    assert undeclared.returncode == 1 and "not declared" in undeclared.stderr
    assert cli("delete", "--consumer", "acme", "vault").returncode == 0
    again = cli("delete", "--consumer", "acme", "vault")
    assert again.returncode == 1
    listed = cli("list", "--consumer", "acme", "--format", "json")
    views = {v["key"]: v for v in json.loads(listed.stdout)["credentials"]}
    assert views["vault"]["status"] == "not_connected"


def test_a_declined_consent_goes_back_with_the_error(
    daemon: Daemon, provider: Provider, sink: AppServer
) -> None:
    provider.deny = True
    connect(daemon, sink)
    landed = sink.wait_for(1)[0]
    assert parse_qs(urlsplit(landed.path).query) == {
        "credential": ["crm"],
        "app": ["crm"],
        "error": ["access_denied"],
    }
    assert credential(daemon, "crm")["status"] == "not_connected"
    assert provider.grants["authorization_code"] == 0


def test_the_runner_refuses_to_start_with_a_malformed_key(project: Path, sink: AppServer) -> None:
    passphrase = "my-passphrase-is-not-a-key"
    env = {
        **os.environ,
        **environ(sink.url),
        "ROLLOUT_ENCRYPTION_KEY": passphrase,
        "PROVIDER_URL": "http://127.0.0.1:9",
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-m", "rollout_yaml", "run", "--env", "test"]
    ran = subprocess.run(
        [*command, "--project", str(project), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert "not a Fernet key" in ran.stderr + ran.stdout
    assert passphrase not in ran.stderr + ran.stdout
