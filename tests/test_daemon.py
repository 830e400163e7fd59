"""The runner as users run it: the real daemon process, a real HTTP server as the App, real
files edited while it runs (issue: the runner executes automations end to end)."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from app_server import Answer, AppServer
from daemon_proc import Daemon, consumer_token, free_port
from runner_env import SECRETS, copy_project

ORDER = {"order_id": 7, "total": 25.5, "customer": {"name": "Ada", "email": "ada@example.com"}}


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    server.default = Answer(200, {"received": True, "ok": True})
    yield server
    server.stop()


@pytest.fixture
def processes(request: pytest.FixtureRequest) -> int:
    """`runtime.processes` of the test project: 1 unless a test is parametrized with more."""
    return int(getattr(request, "param", 1))


# the guarantees that must hold however many processes the daemon runs
PROCESSES = pytest.mark.parametrize("processes", [1, 2], indirect=True, ids=["1p", "2p"])


@pytest.fixture
def project(tmp_path: Path, processes: int) -> Path:
    project = copy_project(tmp_path)
    if processes != 1:
        with_processes(project, processes)
    return project


def serving(daemon: Daemon, processes: int) -> Daemon:
    """The daemon, started, and (with more than one) running that many processes."""
    daemon.start()
    if processes > 1:
        assert f"daemon started {processes} processes" in daemon.logs()
    return daemon


def with_processes(project: Path, count: int) -> None:
    env_file = project / "environments/test/environment.yaml"
    text = env_file.read_text()
    assert "  workers: 16\n" in text
    env_file.write_text(text.replace("  workers: 16\n", f"  workers: 16\n  processes: {count}\n"))


@pytest.fixture
def daemon(project: Path, app: AppServer, processes: int) -> Iterator[Daemon]:
    running = serving(Daemon(project, app.url), processes)
    yield running
    running.stop()


def wait_run(
    client: httpx.Client,
    run_id: str,
    *,
    done: tuple[str, ...] = ("succeeded", "failed", "filtered", "dry_run"),
    timeout: float = 20,
) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        answer = client.get(f"/v1/runs/{run_id}")
        if answer.status_code == 200 and answer.json()["status"] in done:
            return answer.json()
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} not finished: {client.get(f'/v1/runs/{run_id}').text}")


def only_run(client: httpx.Client, automation: str) -> dict:
    deadline = time.time() + 10
    while time.time() < deadline:
        runs = client.get("/v1/runs", params={"automation": automation}).json()["runs"]
        if runs:
            return wait_run(client, runs[0]["id"])
        time.sleep(0.05)
    raise AssertionError("no run")


def push(client: httpx.Client, payload: dict, event_id: str | None = None) -> httpx.Response:
    body = {"app": "partner", "trigger": "order-created", "payload": payload}
    if event_id:
        body["id"] = event_id
    return client.post("/v1/events", json=body)


# -- delivery ------------------------------------------------------------------------------


def test_pushed_event_reaches_the_app_and_the_run_shows_it_redacted(
    daemon: Daemon, app: AppServer
) -> None:
    with daemon.client("acme") as client:
        answer = push(client, ORDER)
        assert answer.status_code == 202, answer.text
        assert answer.json()["runs_queued"] == 1
        received = app.wait_for(1)[0]
        assert received.method == "POST" and received.path == "/orders/7"
        assert received.json() == {"text": "Order 7 by Ada: 25.5"}
        assert received.headers["Authorization"] == f"Bearer {SECRETS['ACME_SINK_TOKEN']}"
        run = only_run(client, "orders-to-sink")
    assert run["status"] == "succeeded"
    assert run["output"] == {"received": True}
    attempt = run["attempts"][0]
    assert attempt["request"]["headers"]["Authorization"] == "Bearer ***"
    assert attempt["response"]["status"] == 200
    shown = daemon.cli("runs", "show", "--env", "test", run["id"])
    assert shown.returncode == 0, shown.stderr
    assert "/orders/7" in shown.stdout and "Bearer ***" in shown.stdout
    assert SECRETS["ACME_SINK_TOKEN"] not in shown.stdout + json.dumps(run)


@PROCESSES
def test_same_event_id_three_times_is_one_run(daemon: Daemon, app: AppServer) -> None:
    def push_once(_: int) -> httpx.Response:
        with daemon.client("acme") as client:  # a connection each: any of the processes
            return push(client, ORDER, event_id="order-7")

    first = push_once(0)
    with ThreadPoolExecutor(4) as pool:  # and the same id again, at the same time
        again = list(pool.map(push_once, range(4)))
    answers = [first, *again]
    assert [a.status_code for a in answers] == [202] * 5
    assert [a.json()["runs_queued"] for a in answers] == [1, 0, 0, 0, 0]
    assert len({a.json()["event_ids"][0] for a in answers}) == 1
    app.wait_for(1)
    time.sleep(0.5)
    assert len(app.requests) == 1
    with daemon.client("acme") as client:
        assert len(client.get("/v1/runs").json()["runs"]) == 1


def test_a_filter_that_says_no_sends_nothing(daemon: Daemon, app: AppServer) -> None:
    with daemon.client("acme") as client:
        assert push(client, {**ORDER, "total": 3}).json()["runs_queued"] == 0
        run = only_run(client, "orders-to-sink")
    assert run["status"] == "filtered"
    time.sleep(0.3)
    assert app.requests == []


# -- failures and retries ------------------------------------------------------------------


def test_503_twice_then_200_succeeds_after_three_attempts(daemon: Daemon, app: AppServer) -> None:
    app.answer(
        Answer(503, {"error": {"message": "busy"}}), Answer(503, {"error": {"message": "busy"}})
    )
    with daemon.client("acme") as client:
        push(client, ORDER)
        run = only_run(client, "orders-to-sink")
    assert run["status"] == "succeeded"
    assert [a["response"]["status"] for a in run["attempts"]] == [503, 503, 200]
    assert {r.headers["Idempotency-Key"] for r in app.requests} == {run["id"]}


def test_429_with_retry_after_waits_at_least_that_long(daemon: Daemon, app: AppServer) -> None:
    app.answer(Answer(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"}))
    with daemon.client("acme") as client:
        push(client, ORDER)
        app.wait_for(2, timeout=15)
        run = only_run(client, "orders-to-sink")
    assert run["status"] == "succeeded"
    first, second = app.requests[0].at, app.requests[1].at
    assert second - first >= 2.0


def test_400_fails_at_once_with_the_apps_message(daemon: Daemon, app: AppServer) -> None:
    app.answer(Answer(400, {"error": {"message": "order 7 is archived"}}))
    with daemon.client("acme") as client:
        push(client, ORDER)
        run = only_run(client, "orders-to-sink")
    assert run["status"] == "failed"
    assert run["error"] == "order 7 is archived"
    assert len(run["attempts"]) == 1
    time.sleep(0.5)
    assert len(app.requests) == 1


def test_slack_style_ok_false_fails_with_the_apps_error_and_is_not_retried(
    daemon: Daemon, app: AppServer
) -> None:
    app.answer(Answer(200, {"ok": False, "error": "channel_not_found"}))
    with daemon.client("globex") as client:
        push(client, ORDER)
        run = only_run(client, "orders-to-chat")
    assert run["status"] == "failed"
    assert run["error"] == "channel_not_found"
    assert len(run["attempts"]) == 1


# -- crash ---------------------------------------------------------------------------------


@PROCESSES
def test_kill_9_loses_no_acknowledged_event(project: Path, app: AppServer, processes: int) -> None:
    # While the App is down, runs fail to connect and wait to retry; then the daemon dies.
    sink = project / "connectors" / "sink.yaml"
    sink.write_text(
        sink.read_text()
        .replace("max_attempts: 4", "max_attempts: 20")
        .replace("base: 100ms", "base: 2s")
    )
    down = f"http://127.0.0.1:{free_port()}"
    first = serving(Daemon(project, down), processes)
    with first.client("acme") as client:
        for batch in range(5):
            events = [
                {
                    "app": "partner",
                    "trigger": "order-created",
                    "id": f"o-{batch}-{i}",
                    "payload": {"order_id": batch * 100 + i, "total": 20},
                }
                for i in range(100)
            ]
            answer = client.post("/v1/events", json={"events": events})
            assert answer.status_code == 202, answer.text
            assert answer.json()["runs_queued"] == 100
    first.kill()

    second = serving(Daemon(project, app.url, port=first.port), processes)
    try:
        app.wait_for(500, timeout=60)
        with second.client("acme") as client:
            deadline = time.time() + 30
            while time.time() < deadline:
                runs = client.get("/v1/runs", params={"status": "succeeded", "limit": 500})
                if len(runs.json()["runs"]) == 500:
                    break
                time.sleep(0.2)
            assert len(runs.json()["runs"]) == 500
        keys = [r.headers["Idempotency-Key"] for r in app.requests]
        assert len(keys) == 500 and len(set(keys)) == 500
        paths = sorted(int(r.path.rsplit("/", 1)[1]) for r in app.requests)
        assert paths == list(range(500))
    finally:
        second.stop()


# -- hot reload ----------------------------------------------------------------------------


NEW_AUTOMATION = """
  big-orders:
    trigger: { app: partner, trigger: order-created }
    filter: "payload.total >= `100`"
    action:
      app: sink
      action: deliver
      credential: sink
      input: { order_id: "{{ payload.order_id }}", text: "BIG {{ payload.total }}" }
"""


def _generation(client: httpx.Client) -> int:
    return int(client.get("/status").json()["generation"])


@PROCESSES
def test_saved_consumer_file_is_active_within_a_second(
    daemon: Daemon, project: Path, app: AppServer
) -> None:
    consumer = project / "environments/test/consumers/acme.yaml"
    with daemon.client("acme") as client:
        before = _generation(client)
        consumer.write_text(consumer.read_text() + NEW_AUTOMATION)
        written = time.monotonic()
        while _generation(client) == before:
            assert time.monotonic() - written < 1.0, "reload took over 1 s"
            time.sleep(0.01)
        keys = [a["key"] for a in client.get("/v1/automations").json()["automations"]]
        assert "big-orders" in keys
        push(client, {**ORDER, "total": 150})
        app.wait_for(2)
    assert sorted(r.json()["text"] for r in app.requests)[0] == "BIG 150"
    # every process reloaded: 20 connections in a row (spread over the processes by the
    # kernel) are each answered with the new automation
    deadline, seen = time.monotonic() + 10, 0
    while seen < 20:
        with daemon.client("acme") as fresh:
            automations = fresh.get("/v1/automations").json()["automations"]
        seen = seen + 1 if "big-orders" in [a["key"] for a in automations] else 0
        assert seen or time.monotonic() < deadline, (
            f"a process still runs the old configuration:\n{daemon.logs()}"
        )


def test_a_reload_does_not_trigger_another(daemon: Daemon, project: Path) -> None:
    # Reloading reads every file; reading must not count as a change (no reload loop).
    consumer = project / "environments/test/consumers/acme.yaml"
    with daemon.client("acme") as client:
        before = _generation(client)
        consumer.write_text(consumer.read_text())
        deadline = time.time() + 5
        while _generation(client) == before:
            assert time.time() < deadline, "the save was not picked up"
            time.sleep(0.02)
        time.sleep(0.3)
        settled = _generation(client)
        time.sleep(1.5)
        assert _generation(client) == settled, "the daemon keeps reloading by itself"


def test_a_broken_save_keeps_the_old_configuration_and_status_names_it(
    daemon: Daemon, project: Path, app: AppServer
) -> None:
    consumer = project / "environments/test/consumers/acme.yaml"
    good = consumer.read_text()
    with daemon.client("acme") as client:
        before = _generation(client)
        consumer.write_text(good.replace("filter:", "filtr:"))
        deadline = time.time() + 5
        while client.get("/status").json()["last_reload_error"] is None:
            assert time.time() < deadline, "the broken save was not reported"
            time.sleep(0.02)
        error = client.get("/status").json()["last_reload_error"]
        problem = error["diagnostics"][0]
        assert problem["file"] == "environments/test/consumers/acme.yaml"
        assert (problem["line"], problem["col"], problem["code"]) == (9, 5, "RY101")
        assert _generation(client) == before
        assert push(client, ORDER).json()["runs_queued"] == 1  # the old one still runs
        app.wait_for(1)
        consumer.write_text(good)
        deadline = time.time() + 5
        while _generation(client) == before:
            assert time.time() < deadline, "fixing the file did not reload"
            time.sleep(0.02)
        assert client.get("/status").json()["last_reload_error"] is None


# -- authentication ------------------------------------------------------------------------


def _forged(claims: dict, key: str, alg: str) -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_bad_tokens_get_401(daemon: Daemon) -> None:
    now = int(time.time())
    good = {"sub": "acme", "iat": now, "exp": now + 600}
    secret = SECRETS["ROLLOUT_JWT_SECRET"]
    header = json.dumps({"alg": "none", "typ": "JWT"}).encode()
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    unsigned = f"{b64(header)}.{b64(json.dumps(good).encode())}."
    tokens = {
        "alg none": unsigned,
        "HS256 with the secret": _forged(good, secret, "HS256"),
        "wrong key": _forged(
            good, "another-secret-another-secret-another-secret-another-secret-xyz0", "HS512"
        ),
        "expired": _forged({**good, "iat": now - 7200, "exp": now - 3600}, secret, "HS512"),
        "no sub": _forged({"iat": now, "exp": now + 600}, secret, "HS512"),
        "garbage": "not-a-jwt",
    }
    for name, token in tokens.items():
        with daemon.client(token=token) as client:
            answer = client.get("/v1/runs")
            assert answer.status_code == 401, name
            assert answer.json()["error"]["code"] == "unauthorized", name
    with daemon.client() as client:
        assert client.get("/v1/runs").status_code == 401


def test_another_consumers_run_is_404(daemon: Daemon, app: AppServer) -> None:
    with daemon.client("acme") as acme, daemon.client("globex") as globex:
        push(acme, ORDER)
        run = only_run(acme, "orders-to-sink")
        answer = globex.get(f"/v1/runs/{run['id']}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
        assert globex.post(f"/v1/runs/{run['id']}/replay").status_code == 404


# -- secrets -------------------------------------------------------------------------------


def test_no_secret_appears_in_logs_records_answers_or_cli_output(
    daemon: Daemon, app: AppServer
) -> None:
    app.answer(Answer(500, {"error": {"message": f"bad token {SECRETS['ACME_SINK_TOKEN']}"}}))
    seen: list[str] = []
    with daemon.client("acme") as client:
        push(client, ORDER)
        run = only_run(client, "orders-to-sink")
        seen.append(json.dumps(run))
        seen.append(client.get("/v1/runs").text)
        seen.append(client.get("/v1/automations").text)
        seen.append(client.get("/v1/apps").text)
        seen.append(client.post(f"/v1/runs/{run['id']}/replay").text)
        seen.append(client.get("/status").text)
    with daemon.admin() as admin:
        seen.append(admin.get("/admin/v1/runs").text)
    seen.extend(ui_pages(daemon, run["id"]))
    for args in (
        ("runs", "list", "--env", "test"),
        ("runs", "show", "--env", "test", run["id"]),
        ("runs", "list", "--env", "test", "--format", "json"),
        ("token", "--env", "test", "--consumer", "acme"),
    ):
        result = daemon.cli(*args)
        seen.append(result.stdout + result.stderr)
    daemon.stop()
    seen.append(daemon.logs())
    assert run["attempts"][0]["response"]["status"] == 500
    everything = "\n".join(seen)
    assert "***" in everything
    for name, value in SECRETS.items():
        if name == "ROLLOUT_JWT_SECRET":
            continue  # the token command prints a token, signed with it but not containing it
        assert value not in everything, f"{name} leaked"
    assert SECRETS["ROLLOUT_JWT_SECRET"] not in everything


def ui_pages(daemon: Daemon, run_id: str) -> list[str]:
    """Every page of /ui an operator and a consumer see, and a replay made through its form."""
    sides = {
        "/ui": (SECRETS["ROLLOUT_ADMIN_TOKEN"], ["/runs", "/automations", "/consumers", "/status"]),
        "/ui/embed": (consumer_token("acme"), ["", "/runs", "/credentials"]),
    }
    pages = []
    for base, (token, paths) in sides.items():
        with httpx.Client(base_url=daemon.url, follow_redirects=True) as browser:
            signed = browser.post("/ui/session", data={"token": token, "next": base + paths[0]})
            assert signed.status_code == 200 and 'name="csrf"' in signed.text, signed.text
            for path in [*paths, f"/runs/{run_id}"]:
                page = browser.get(base + path)
                assert page.status_code == 200, (base + path, page.text)
                pages.append(page.text)
            csrf = re.search(r'name="csrf" value="([^"]+)"', pages[-1])
            assert csrf is not None
            replay = browser.post(f"{base}/runs/{run_id}/replay", data={"csrf": csrf[1]})
            assert replay.status_code == 200, replay.text
            pages.append(replay.text)
    assert sum("Bearer ***" in page for page in pages) >= 2  # both sides show the request
    return pages


@PROCESSES
def test_sigterm_drains_and_exits_zero(project: Path, app: AppServer, processes: int) -> None:
    running = serving(Daemon(project, app.url), processes)
    app.default = Answer(200, {"received": True}, delay=0.5)
    with running.client("acme") as client:
        push(client, ORDER)
        app.wait_for(1)  # the action is in flight when the signal comes
    assert running.stop() == 0
    assert "stopped" in running.logs()
    listed = running.cli("runs", "list", "--env", "test", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    runs = runs["runs"] if isinstance(runs, dict) else runs
    assert [r["status"] for r in runs] == ["succeeded"]  # it finished before the exit


@PROCESSES
def test_run_once_executes_what_is_due_and_exits(
    project: Path, app: AppServer, processes: int
) -> None:
    sink = project / "connectors" / "sink.yaml"
    sink.write_text(
        sink.read_text()
        .replace("max_attempts: 4", "max_attempts: 20")
        .replace("base: 100ms", "base: 1s")
    )
    down = serving(Daemon(project, f"http://127.0.0.1:{free_port()}"), processes)
    with down.client("acme") as client:
        for order in (1, 2, 3):
            assert push(client, {**ORDER, "order_id": order}).status_code == 202
    assert down.stop() == 0  # the retries wait in the database
    once = Daemon(project, app.url)
    result = once.cli("run", "--env", "test", "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(r.path for r in app.requests) == ["/orders/1", "/orders/2", "/orders/3"]


@pytest.mark.parametrize("processes", [2], indirect=True, ids=["2p"])
def test_a_process_that_dies_stops_the_daemon_and_every_other_process(
    daemon: Daemon, processes: int
) -> None:
    # A supervisor (systemd, Kubernetes) restarts a daemon that exits; one left half running
    # would keep serving with fewer processes and nobody would know.
    assert daemon.process is not None
    pid = daemon.process.pid
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(children) == processes
    os.kill(children[0], signal.SIGKILL)
    assert daemon.process.wait(30) != 0
    assert "exited with code -9: stopping the others" in daemon.logs()
    for child in children:
        assert not Path(f"/proc/{child}").exists() or "Z" in _state(child)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
