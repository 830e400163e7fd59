"""Credentials created at run time, end to end: the real daemon, a local App serving the
connector's `auth.test` and an action (tests/app_server.py), an automation written over the
API that uses the new credential (and keeps it from being deleted), the real OAuth 2.0
authorization server (tests/oauth_provider.py) for a connect flow that makes up a new key, and
the SQLite file and the daemon's log read back for the secrets in every encoding."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from app_server import Answer, AppServer
from cryptography.fernet import Fernet
from daemon_proc import Daemon, consumer_token, free_port
from oauth_provider import CLIENT_SECRET, Provider
from pg_env import fetch, fresh_database

FIXTURE = Path(__file__).parent / "fixtures" / "oauth_project"
ENCRYPTION_KEY = Fernet.generate_key().decode()
LEDGER_TOKEN = "ledger-token-4f1e9a2c7b"
ME = {"ok": True, "account": {"name": "Acme Books", "id": 42}}

# A bearer App whose `auth.test` is `GET /me`, labelled by the account's name.
LEDGER = """\
app: ledger
name: Ledger
version: 1.0.0
base_url: SINK_URL
auth:
  type: bearer
  fields:
    workspace: { type: integer }
  test:
    request: { path: /me }
    success: ok
  label: account.name
defaults:
  error: error
actions:
  record:
    name: Record
    input_schema: { type: object, required: [email], properties: { email: { type: string } } }
    request: { method: POST, path: /entries, json: { email: "{{ input.email }}" } }
"""
CRM_TEST = """\
  token_auth: body
  test:
    request: { path: /contacts }
    success: "results != null"
"""


def encodings(secret: str) -> list[bytes]:
    """The forms a secret could be written in: as is, base64 (both alphabets), hex, quoted."""
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        quote(secret, safe="").encode(),
        json.dumps(secret).encode(),
    ]


def leaked(secret: str, *texts: str | bytes) -> list[bytes]:
    blobs = [t if isinstance(t, bytes) else t.encode() for t in texts]
    return [form for form in encodings(secret) for blob in blobs if form in blob]


@pytest.fixture(scope="module")
def provider(database: str) -> Iterator[Provider]:
    """One per backend: the connect test counts the tokens it issued."""
    running = Provider().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, ME)
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The environment's `database:`: the SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider, app: AppServer, database: str
) -> Path:
    target = tmp_path_factory.mktemp("runtime-credentials") / "project"
    shutil.copytree(FIXTURE, target)
    settings = target / "environments" / "test" / "environment.yaml"
    settings.write_text(settings.read_text().replace("database: sqlite", f'database: "{database}"'))
    connectors = target / "connectors"
    for connector in connectors.glob("*.yaml"):
        connector.write_text(connector.read_text().replace("PROVIDER_URL", provider.url))
    crm = connectors / "crm.yaml"
    crm.write_text(crm.read_text().replace("  token_auth: body\n", CRM_TEST))
    (connectors / "ledger.yaml").write_text(LEDGER.replace("SINK_URL", app.url))
    return target


@pytest.fixture(scope="module")
def daemon(project: Path, provider: Provider, app: AppServer) -> Iterator[Daemon]:
    port = free_port()
    extra = {
        "ROLLOUT_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "PROVIDER_URL": provider.url,
        "PROVIDER_CLIENT_SECRET": CLIENT_SECRET,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    running = Daemon(project, app.url, port=port, extra_env=extra).start()
    yield running
    running.stop()


def database_bytes(project: Path, database: str) -> bytes:
    """Everything the environment's database holds: the SQLite files byte by byte, or every
    row of every PostgreSQL table as text."""
    if database == "sqlite":
        folder = project / "environments" / "test" / ".rollout"
        return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())
    tables = fetch(database, "select tablename from pg_tables where schemaname = 'public'")
    rows = [fetch(database, f'select t::text from "{name}" t') for (name,) in tables]
    return "\n".join(str(row[0]) for table in rows for row in table).encode()


def once(database: str) -> None:
    """Checks of the API alone run once, on SQLite; those that store something on both."""
    if database != "sqlite":
        pytest.skip("checks of the API, run on SQLite: nothing here depends on the database")


def views_of(client: httpx.Client) -> dict[str, dict]:
    answer = client.get("/v1/credentials")
    assert answer.status_code == 200, answer.text
    return {v["key"]: v for v in answer.json()["credentials"]}


def detail_of(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    [detail] = answer.json()["error"]["details"]
    assert set(detail) == {"code", "message", "path", "help"}
    return dict(detail)


# -- created, tested, listed -----------------------------------------------------------------


def test_a_credential_created_at_run_time_is_tested_labelled_and_listed(
    daemon: Daemon, app: AppServer, project: Path, database: str
) -> None:
    values = {"token": LEDGER_TOKEN, "workspace": 7}
    with daemon.client("acme") as client:
        created = client.post("/v1/credentials", json={"app": "ledger", "values": values})
        assert created.status_code == 201, created.text
        view = created.json()
        key = view["key"]
        assert re.fullmatch(r"ledger-[0-9a-f]{8}", key), key  # made up: none was given
        assert (view["app"], view["source"], view["status"]) == ("ledger", "api", "active")
        assert view["label"] is None and view["tested_at"] is None

        before = len(app.requests)
        tested = client.post(f"/v1/credentials/{key}/test")
        assert tested.status_code == 200, tested.text
        result = tested.json()
        assert result["test"]["ok"] is True and result["test"]["status"] == 200
        assert result["test"]["label"] == "Acme Books" == result["label"]
        [sent] = app.requests[before:]
        assert (sent.method, sent.path) == ("GET", "/me")
        assert sent.headers["authorization"] == f"Bearer {LEDGER_TOKEN}"

        listed = views_of(client)[key]
        assert listed["label"] == "Acme Books" and listed["tested_at"] is not None
        assert listed["source"] == "api" and listed["declared"] is False
        assert views_of(client)["vault"]["source"] == "file"  # declared ones, as before

        # a failing test says why, and keeps the label of the last one that passed
        app.answer(Answer(200, {"ok": False, "error": "invalid_auth"}))
        failed = client.post(f"/v1/credentials/{key}/test").json()
        assert failed["test"]["ok"] is False and failed["test"]["error"] == "invalid_auth"
        assert failed["label"] == "Acme Books"
        answers = [created.text, tested.text, json.dumps(listed), json.dumps(failed)]

    with daemon.client("globex") as other:  # another consumer's key is not there for them
        assert other.post(f"/v1/credentials/{key}/test").status_code == 404
        assert key not in views_of(other)
    with daemon.admin() as admin:
        everyone = admin.get("/admin/v1/credentials").json()["credentials"]
        assert {"consumer": "acme", "key": key, "label": "Acme Books"}.items() <= next(
            v for v in everyone if v["key"] == key
        ).items()
        answers.append(json.dumps(everyone))

    assert not leaked(LEDGER_TOKEN, *answers, daemon.logs(), database_bytes(project, database))


def test_the_values_are_checked_against_the_apps_fields(daemon: Daemon, database: str) -> None:
    once(database)

    def post(body: dict) -> httpx.Response:
        with daemon.client("acme") as client:
            return client.post("/v1/credentials", json=body)

    token = {"token": "t-1"}
    unknown = detail_of(post({"app": "ledger", "values": {**token, "tokn": "x"}}), 422)
    assert unknown["path"] == "$.values.tokn" and unknown["code"] == "RY504"
    missing = detail_of(post({"app": "ledger", "values": {"workspace": 1}}), 422)
    assert missing["path"] == "$.values.token" and "token" in missing["message"]
    typed = detail_of(post({"app": "ledger", "values": {**token, "workspace": "seven"}}), 422)
    assert typed["path"] == "$.values.workspace" and "integer" in typed["message"]
    assert "seven" not in typed["message"]  # a value is never quoted back: it may be a secret
    app = detail_of(post({"app": "ledgr", "values": token}), 422)
    assert app["path"] == "$.app" and app["code"] == "RY201" and "`ledger`" in app["help"]
    oauth = detail_of(post({"app": "crm", "values": token}), 422)
    assert oauth["path"] == "$.app" and "/v1/connect/crm" in oauth["message"]
    no_app = detail_of(post({"key": "books", "values": token}), 422)
    assert no_app["path"] == "$.app"
    bad_key = detail_of(post({"key": "Books!", "app": "ledger", "values": token}), 422)
    assert bad_key["path"] == "$.key"
    long_key = detail_of(post({"key": "b" * 101, "app": "ledger", "values": token}), 422)
    assert long_key["path"] == "$.key" and "up to 100" in long_key["message"]
    assert post({"key": "vault", "app": "ledger", "values": token}).status_code == 422  # vault's

    assert post({"key": "books", "app": "ledger", "values": token}).status_code == 201
    again = post({"key": "books", "app": "ledger", "values": {"token": "t-2"}})
    assert again.status_code == 201 and again.json()["key"] == "books"  # its values replaced
    taken = detail_of(post({"key": "books", "app": "vault", "values": {"x": 1}}), 409)
    assert taken["path"] == "$.key" and "`ledger`" in taken["message"]
    with daemon.client("acme") as client:
        keys = set(views_of(client))
    assert "books" in keys and not {"Books!"} & keys


def test_admins_create_them_for_any_consumer(daemon: Daemon, database: str) -> None:
    once(database)
    with daemon.admin() as admin:
        made = admin.post(
            "/admin/v1/credentials",
            json={"consumer": "newco", "key": "books", "app": "ledger", "values": {"token": "n"}},
        )
        assert made.status_code == 201, made.text
        assert made.json()["consumer"] == "newco" and made.json()["source"] == "api"
        nobody = admin.post(
            "/admin/v1/credentials",
            json={"consumer": "n" * 201, "app": "ledger", "values": {"token": "n"}},
        )
        assert nobody.status_code == 422 and nobody.json()["error"]["details"][0]["path"] == (
            "$.consumer"
        )
        tested = admin.post("/admin/v1/credentials/newco/books/test")
        assert tested.status_code == 200 and tested.json()["label"] == "Acme Books"
        # a consumer with no file, listed by its stored credentials
        listed = admin.get("/admin/v1/credentials", params={"consumer": "newco"}).json()
        assert [v["key"] for v in listed["credentials"]] == ["books"]
        assert admin.delete("/admin/v1/credentials/newco/books").status_code == 204
        assert admin.get("/admin/v1/credentials", params={"consumer": "newco"}).status_code == 404
    with daemon.client("newco") as client:
        assert views_of(client) == {}


def test_an_app_without_auth_test_says_so(daemon: Daemon, database: str) -> None:
    once(database)
    with daemon.client("acme") as client:
        made = client.post(
            "/v1/credentials",
            json={"key": "vault", "values": {"account": "a-1", "api_key": "vault-key-1"}},
        )
        assert made.status_code == 201, made.text
        refused = detail_of(client.post("/v1/credentials/vault/test"), 422)
        assert "auth.test" in refused["message"]
        assert client.post("/v1/credentials/nope/test").status_code == 404


def test_the_portal_shows_and_sets_a_runtime_credential(
    daemon: Daemon, app: AppServer, database: str
) -> None:
    once(database)
    with daemon.client("initech") as client:
        made = client.post(
            "/v1/credentials", json={"key": "books", "app": "ledger", "values": {"token": "p-1"}}
        )
        assert made.status_code == 201, made.text
        assert client.post("/v1/credentials/books/test").json()["label"] == "Acme Books"
    with httpx.Client(base_url=daemon.url, timeout=30) as browser:
        token = consumer_token("initech")
        page = browser.get(
            "/ui/session",
            params={"token": token, "next": "/ui/embed/credentials"},
            follow_redirects=True,
        )
        assert page.status_code == 200, page.text
        assert "Account: <strong>Acme Books</strong>" in page.text
        assert 'action="/ui/embed/credentials/books"' in page.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        saved = browser.post(
            "/ui/embed/credentials/books",
            data={"csrf": csrf.group(1), "values.token": "p-2"},
        )
        assert saved.status_code == 303, saved.text
    before = len(app.requests)
    with daemon.client("initech") as client:
        client.post("/v1/credentials/books/test")
    assert app.requests[before].headers["authorization"] == "Bearer p-2"  # the portal's value


# -- OAuth2: connect a new key ---------------------------------------------------------------


def test_a_connect_flow_without_a_key_creates_a_new_credential(
    daemon: Daemon, provider: Provider, app: AppServer, project: Path, database: str
) -> None:
    landing = f"{app.url}/connected"
    with daemon.client("acme") as client:
        as_json = client.get(
            "/v1/connect/crm", params={"redirect": landing}, headers={"Accept": "application/json"}
        )
        assert as_json.status_code == 200, as_json.text
        new_key = as_json.json()["credential"]
        assert re.fullmatch(r"crm-[0-9a-f]{8}", new_key) and new_key not in views_of(client)
        # the browser's way: every redirect followed, through the authorization server
        answer = client.get("/v1/connect/crm", params={"redirect": landing}, follow_redirects=True)
        assert answer.status_code == 200, answer.text
    hops = [str(r.url) for r in answer.history]
    assert hops[1].startswith(provider.url + "/oauth/authorize")
    assert hops[2].startswith(daemon.url + "/oauth/callback")
    back = parse_qs(urlsplit(str(answer.url)).query)
    assert back["status"] == ["connected"] and back["app"] == ["crm"]
    (key,) = back["credential"]
    assert re.fullmatch(r"crm-[0-9a-f]{8}", key) and key != new_key  # each flow its own key

    with daemon.client("acme") as client:
        views = views_of(client)
        assert new_key not in views  # a flow never finished stores nothing
        view = views[key]
        assert (view["source"], view["status"], view["app"]) == ("api", "active", "crm")
        assert views["crm"]["status"] == "not_connected"  # the declared one is untouched
        tested = client.post(f"/v1/credentials/{key}/test")
    assert tested.status_code == 200 and tested.json()["test"]["ok"] is True, tested.text
    (token,) = provider.live_access_tokens()  # the one flow finished so far
    assert provider.listed[-1] == token  # the test went out with the new credential's token

    # connecting it again by its key (reauthorizing) keeps the key
    with daemon.client("acme") as client:
        again = client.get(
            "/v1/connect/crm",
            params={"credential": key, "redirect": landing},
            follow_redirects=True,
        )
    assert parse_qs(urlsplit(str(again.url)).query)["credential"] == [key]
    secrets = [*provider.live_access_tokens(), *provider.by_refresh]
    texts = (tested.text, json.dumps(views), daemon.logs(), database_bytes(project, database))
    assert not [s for s in secrets if leaked(s, *texts)]


# -- used by an automation -------------------------------------------------------------------


def test_an_automation_written_over_the_api_uses_a_runtime_credential(
    daemon: Daemon, app: AppServer, project: Path, database: str
) -> None:
    token = "ledger-token-for-automations-8d2e"
    with daemon.client("acme") as client:
        created = client.post("/v1/credentials", json={"app": "ledger", "values": {"token": token}})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        assert client.post(f"/v1/credentials/{key}/test").json()["label"] == "Acme Books"
    definition = {
        "consumer": "acme",
        "key": "signups-to-ledger",
        "trigger": {"app": "partner", "trigger": "signup"},
        "action": {
            "app": "ledger",
            "action": "record",
            "credential": key,
            "input": {"email": "{{ payload.email }}"},
        },
    }
    with daemon.admin() as admin:
        made = admin.post("/admin/v1/automations", json=definition)
        assert made.status_code == 201, made.text
        wrong = admin.post(
            "/admin/v1/automations",
            json={
                **definition,
                "key": "typo",
                "action": {**definition["action"], "credential": "ledger-0"},
            },
        )
        assert wrong.status_code == 422, wrong.text  # a key neither declared nor stored

    before = len(app.requests)
    with daemon.client("acme") as client:
        pushed = client.post(
            "/v1/events",
            json={"app": "partner", "trigger": "signup", "payload": {"email": "ada@example.com"}},
        )
        assert pushed.status_code == 202, pushed.text
    [entry] = [r for r in app.wait_for(before + 1)[before:] if r.path == "/entries"]
    assert entry.headers["authorization"] == f"Bearer {token}"
    assert entry.json() == {"email": "ada@example.com"}

    with daemon.client("acme") as client:
        refused = client.delete(f"/v1/credentials/{key}")
        assert refused.status_code == 409, refused.text
        [detail] = refused.json()["error"]["details"]
        assert detail["path"] == "automations.signups-to-ledger" and detail["code"] == "in_use"
        assert key in views_of(client)  # nothing deleted
        runs = client.get("/v1/runs", params={"automation": "signups-to-ledger"}).text
    with daemon.admin() as admin:
        assert admin.delete("/admin/v1/automations/acme/signups-to-ledger").status_code == 204
    with daemon.client("acme") as client:
        assert client.delete(f"/v1/credentials/{key}").status_code == 204
        assert key not in views_of(client)
    assert not leaked(
        token, created.text, runs, refused.text, daemon.logs(), database_bytes(project, database)
    )


# -- the command line ------------------------------------------------------------------------


def cli(project: Path, env: dict[str, str], *args: str, stdin: str = "") -> CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rollout_yaml", "credentials", *args, "--env", "test",
         "--project", str(project)],
        env=env, input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("daemon_runs", [True, False], ids=["through-the-daemon", "offline"])
def test_the_cli_creates_tests_and_lists_one(
    daemon_runs: bool, daemon: Daemon, app: AppServer, tmp_path: Path, database: str
) -> None:
    once(database)
    project, env = daemon.project, daemon.env
    if not daemon_runs:  # another copy of the project, whose database no daemon holds
        project = tmp_path / "project"
        shutil.copytree(daemon.project, project, ignore=shutil.ignore_patterns(".rollout"))
    key = f"cli-{'daemon' if daemon_runs else 'offline'}"
    secret = f"cli-token-{key}-77"
    acme = ("--consumer", "acme")
    made = cli(project, env, "set", key, *acme, "--app", "ledger", "--secret", "token",
               stdin=secret + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    tested = cli(project, env, "test", key, *acme)
    assert tested.returncode == 0, tested.stderr
    assert "works as Acme Books" in tested.stdout
    with daemon.client("acme") as client:  # the daemon's database, or not
        assert (key in views_of(client)) is daemon_runs
    shown = made.stdout + made.stderr + tested.stdout
    if daemon_runs:  # the rest is the same either way
        listed = cli(project, env, "list", *acme, "--format", "json")
        views = {v["key"]: v for v in json.loads(listed.stdout)["credentials"]}
        assert (views[key]["label"], views[key]["source"]) == ("Acme Books", "api")
        app.answer(Answer(401, {"ok": False, "error": "invalid_auth"}))
        failed = cli(project, env, "test", key, *acme)
        assert failed.returncode == 1 and "HTTP 401: invalid_auth" in failed.stderr
        shown += listed.stdout + failed.stderr
    assert not leaked(secret, shown)
