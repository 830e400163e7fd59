"""`token`, `events send`, `runs list|show|replay` and `db migrate` as a user runs them:
against a running daemon (the real app on 127.0.0.1), and against the database file when no
daemon runs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from app_server import Answer, AppServer
from click.testing import CliRunner, Result
from daemon_proc import free_port
from server_harness import (
    ACME_TOKEN,
    ADMIN_TOKEN,
    JWT_SECRET,
    LiveEnvironment,
    copy_project,
    secrets_environ,
)

from rollout_yaml.cli.db import db
from rollout_yaml.cli.events import events
from rollout_yaml.cli.runs import runs
from rollout_yaml.cli.tokens import token
from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.server.address import (
    DaemonAddress,
    address_file,
    local_url,
    published,
    read_address,
    write_address,
)
from rollout_yaml.server.auth import verify_consumer_token


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def invoke(command: click.Command, project: Path, environ: dict[str, str], *args: str) -> Result:
    return CliRunner(env=environ).invoke(command, [*args, "--project", str(project)])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path) as environment:
        yield environment


def cli(live: LiveEnvironment, command: click.Command, *args: str) -> Result:
    return invoke(command, live.project, live.environ, *args)


# -- token -----------------------------------------------------------------------------------


def test_token_prints_a_jwt_the_api_accepts(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    environ = secrets_environ("http://127.0.0.1:9")
    result = invoke(token, project, environ, "--env", "test", "--consumer", "acme", "--ttl", "2h")
    assert result.exit_code == 0, result.output
    claims = verify_consumer_token(result.stdout.strip(), AuthSettings(jwt_secret=JWT_SECRET))
    assert claims.key == "acme"
    assert claims.claims["exp"] - claims.claims["iat"] == 7200


def test_token_refusals(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    environ = secrets_environ("http://127.0.0.1:9")
    unknown = invoke(token, project, environ, "--env", "test", "--consumer", "acmee")
    assert unknown.exit_code == 2 and "did you mean `acme`" in unknown.stderr
    too_long = invoke(token, project, environ, "--env", "test", "--consumer", "acme", "--ttl", "2d")
    assert too_long.exit_code == 2
    no_unit = invoke(token, project, environ, "--env", "test", "--consumer", "acme", "--ttl", "60")
    assert no_unit.exit_code == 2
    no_secret = {**environ, "ROLLOUT_JWT_SECRET": ""}
    unset = invoke(token, project, no_secret, "--env", "test", "--consumer", "acme")
    assert unset.exit_code == 2 and "jwt_secret" in unset.stderr


# -- with the daemon running -----------------------------------------------------------------


def write_payload(live: LiveEnvironment, data: Any, name: str = "payload.json") -> str:
    path = live.project / name
    path.write_text(json.dumps(data))
    return str(path)


def send(live: LiveEnvironment, payload: Any, *extra: str) -> Result:
    return cli(
        live,
        events,
        "send",
        "--env",
        "test",
        "--consumer",
        "acme",
        "--app",
        "partner",
        "--trigger",
        "order-created",
        "--payload",
        write_payload(live, payload),
        "--url",
        live.url,
        *extra,
    )


def test_events_send_then_runs_list_show_replay(live: LiveEnvironment) -> None:
    sent = send(live, {"order_id": 11, "total": 30, "note": f"secret {ACME_TOKEN}"}, "--id", "e1")
    assert sent.exit_code == 0, sent.output
    assert "1 run(s) queued" in sent.stdout
    again = send(live, {"order_id": 11, "total": 30}, "--id", "e1", "--format", "json")
    assert json.loads(again.stdout)["runs_queued"] == 0
    [run] = live.wait_for_runs(1)

    listed = cli(live, runs, "list", "--env", "test", "--url", live.url)
    assert listed.exit_code == 0, listed.output
    assert run["id"][-8:] in listed.stdout and "succeeded" in listed.stdout
    assert run["id"] not in listed.stdout  # short ids; --wide shows them whole
    wide = cli(live, runs, "list", "--env", "test", "--url", live.url, "--wide")
    assert run["id"] in wide.stdout and run["created_at"][:10] in wide.stdout
    as_json = cli(live, runs, "list", "--env", "test", "--url", live.url, "--format", "json")
    page = json.loads(as_json.stdout)
    assert [r["id"] for r in page["runs"]] == [run["id"]] and page["next_cursor"] is None
    for args in (["--consumer", "globex"], ["--status", "failed"], ["--automation", "x"]):
        empty = cli(live, runs, "list", "--env", "test", "--url", live.url, *args)
        assert empty.exit_code == 0 and "no runs" in empty.stdout
    recent = cli(
        live, runs, "list", "--env", "test", "--url", live.url, "--since", "1h", "--format", "json"
    )
    assert len(json.loads(recent.stdout)["runs"]) == 1

    shown = cli(live, runs, "show", "--env", "test", run["id"], "--url", live.url)
    assert shown.exit_code == 0, shown.output
    assert "attempt 1" in shown.stdout and "POST" in shown.stdout
    assert ACME_TOKEN not in shown.stdout and "***" in shown.stdout
    detail = json.loads(
        cli(
            live, runs, "show", "--env", "test", run["id"], "--url", live.url, "--format", "json"
        ).stdout
    )
    assert detail["attempts"][0]["response"]["status"] == 200
    assert ACME_TOKEN not in json.dumps(detail)

    replayed = cli(live, runs, "replay", "--env", "test", run["id"], "--url", live.url)
    assert replayed.exit_code == 0, replayed.output
    assert f"(replay of {run['id']})" in replayed.stdout
    assert len(live.wait_for_runs(2)) == 2


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_runs_list_fits_80_columns_and_its_short_ids_work(live: LiveEnvironment) -> None:
    for number in range(3):
        live.push("acme", {"order_id": number, "total": 30})
    live.push("globex", {"order_id": 9, "total": 30})
    finished = live.wait_for_runs(4)
    terminal = {**live.environ, "FORCE_COLOR": "1", "COLUMNS": "80"}
    listed = invoke(runs, live.project, terminal, "list", "--env", "test", "--url", live.url)
    assert listed.exit_code == 0, listed.output
    lines = [ANSI.sub("", line) for line in listed.stdout.splitlines()]
    assert lines and all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert lines[0].split() == ["id", "automation", "status", "tries", "age", "took"]
    rows = [line.split() for line in lines[2:]]
    assert len(rows) == 4
    for row in rows:
        assert len(row[0]) == 8
        assert row[2] == "succeeded" and row[3] == "1"
        assert re.fullmatch(r"\d+s", row[4]) and row[5] == "ago", row  # the age, "3s ago"
        assert re.fullmatch(r"\d+ms|\d+\.\ds", row[6]), row  # how long the run took
    assert {row[0] for row in rows} == {r["id"][-8:] for r in finished}
    assert "\x1b[" in listed.stdout  # the status in colour on a terminal
    # a short id is as good as the whole one for show and replay
    short = rows[-1][0]
    shown = cli(live, runs, "show", "--env", "test", short.lower(), "--url", live.url)
    assert shown.exit_code == 0, shown.output
    assert next(r["id"] for r in finished if r["id"].endswith(short)) in shown.stdout
    wide = invoke(
        runs, live.project, terminal, "list", "--env", "test", "--url", live.url, "--wide"
    )
    assert all(r["id"] in ANSI.sub("", wide.stdout) for r in finished)


def test_events_send_refused_payload_exits_1_with_paths(live: LiveEnvironment) -> None:
    result = send(live, {"order_id": "seven"})
    assert result.exit_code == 1
    assert "$.payload.order_id" in result.stderr


def test_missing_runs_exit_1(live: LiveEnvironment) -> None:
    shown = cli(live, runs, "show", "--env", "test", "run_nope", "--url", live.url)
    assert shown.exit_code == 1 and "no run" in shown.stderr
    replayed = cli(live, runs, "replay", "--env", "test", "run_nope", "--url", live.url)
    assert replayed.exit_code == 1


def test_the_database_is_not_ours_while_the_daemon_runs(live: LiveEnvironment) -> None:
    """A daemon holds the SQLite file; if its API does not answer, say so instead of waiting."""
    result = cli(live, runs, "list", "--env", "test", "--url", dead_url())
    assert result.exit_code == 2 and "in use by another rollout-yaml process" in result.stderr
    migrated = cli(live, db, "migrate", "--env", "test")
    assert migrated.exit_code == 2 and "is running" in migrated.stderr


# -- without a daemon ------------------------------------------------------------------------


def test_without_a_daemon_reads_come_from_the_database(tmp_path: Path) -> None:
    with LiveEnvironment(tmp_path) as live:
        live.push("acme", {"order_id": 1, "total": 20, "note": f"see {ACME_TOKEN}"})
        live.push("globex", {"order_id": 2, "total": 20})
        live.wait_for_runs(2)
    url = dead_url()
    listed = cli(live, runs, "list", "--env", "test", "--url", url, "--format", "json")
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.stdout)["runs"]
    assert {r["consumer"] for r in found} == {"acme", "globex"}
    acme = next(r for r in found if r["consumer"] == "acme")
    shown = cli(live, runs, "show", "--env", "test", acme["id"], "--url", url, "--format", "json")
    detail = json.loads(shown.stdout)
    assert detail["event"]["payload"]["note"] == "see ***"
    assert ACME_TOKEN not in shown.stdout
    paged = cli(
        live, runs, "list", "--env", "test", "--url", url, "--limit", "1", "--format", "json"
    )
    assert json.loads(paged.stdout)["next_cursor"] == found[0]["id"]
    missing = cli(live, runs, "show", "--env", "test", "run_nope", "--url", url)
    assert missing.exit_code == 1
    replay = cli(live, runs, "replay", "--env", "test", acme["id"], "--url", url)
    assert replay.exit_code == 2 and "rollout-yaml run --env test" in replay.stderr
    sent = send(live, {"order_id": 1, "total": 20}, "--url", url)
    assert sent.exit_code == 2


def test_runs_list_before_any_database_exists(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    environ = secrets_environ("http://127.0.0.1:9")
    result = invoke(runs, project, environ, "list", "--env", "test", "--url", dead_url())
    assert result.exit_code == 0 and "no runs" in result.stdout
    assert not (project / "environments/test/.rollout/state.db").exists()


def test_db_migrate(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    environ = secrets_environ("http://127.0.0.1:9")
    first = invoke(db, project, environ, "migrate", "--env", "test")
    assert first.exit_code == 0 and "applied migration(s) 1" in first.stdout
    assert (project / "environments/test/.rollout/state.db").is_file()
    second = invoke(db, project, environ, "migrate", "--env", "test")
    assert second.exit_code == 0 and "up to date" in second.stdout
    unknown = invoke(db, project, environ, "migrate", "--env", "nope")
    assert unknown.exit_code == 2


def _database_from_environ(project: Path) -> None:
    env_file = project / "environments/test/environment.yaml"
    env_file.write_text(
        env_file.read_text().replace("database: sqlite", 'database: "${DATABASE_URL}"')
    )


def test_db_migrate_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    project = copy_project(tmp_path)
    _database_from_environ(project)
    environ = {**secrets_environ("http://127.0.0.1:9"), "DATABASE_URL": pg_database}
    first = invoke(db, project, environ, "migrate", "--env", "test")
    assert first.exit_code == 0 and "applied migration(s) 1" in first.stdout, first.output
    second = invoke(db, project, environ, "migrate", "--env", "test")
    assert second.exit_code == 0 and "up to date" in second.stdout
    assert not (project / "environments/test/.rollout/state.db").exists()


def test_db_migrate_names_an_unreachable_postgresql_without_its_password(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    _database_from_environ(project)
    url = "postgresql://rollout:pw-3f9a1c@127.0.0.1:1/prod"
    environ = {**secrets_environ("http://127.0.0.1:9"), "DATABASE_URL": url}
    result = invoke(db, project, environ, "migrate", "--env", "test")
    assert result.exit_code == 2
    assert "127.0.0.1:1/prod" in result.stderr and "pw-3f9a1c" not in result.output


# -- finding the daemon ----------------------------------------------------------------------


def test_the_cli_finds_a_daemon_by_its_published_address(live: LiveEnvironment) -> None:
    """A daemon publishes its URL and instance id; no --url is needed then."""
    env_dir = live.project / "environments" / "test"
    live.push("acme", {"order_id": 1, "total": 20})
    [run] = live.wait_for_runs(1)
    host, port = live.url.removeprefix("http://").split(":")
    with published(env_dir, host, int(port), "test", live.runtime.instance):
        listed = cli(live, runs, "list", "--env", "test", "--format", "json")
        assert listed.exit_code == 0, listed.output
        assert [r["id"] for r in json.loads(listed.stdout)["runs"]] == [run["id"]]
        assert cli(live, runs, "replay", "--env", "test", run["id"]).exit_code == 0
    assert read_address(env_dir, "test") is None  # removed on exit


@pytest.fixture
def impostor() -> Iterator[AppServer]:
    """Another process on this host answering HTTP: another environment's daemon, say."""
    server = AppServer().start()
    server.default = Answer(200, {"status": "ok", "environment": "test", "instance": "daemon_X"})
    yield server
    server.stop()


def test_the_admin_token_goes_only_to_the_daemon_that_published_the_address(
    tmp_path: Path, impostor: AppServer
) -> None:
    project = copy_project(tmp_path)
    environ = secrets_environ("http://127.0.0.1:9")
    env_dir = project / "environments" / "test"
    port = impostor.url.rsplit(":", 1)[1]
    # the address file names this environment and a live process, but the process now at that
    # address is another one (its instance id differs): nothing may be sent to it
    write_address(env_dir, DaemonAddress(impostor.url, os.getpid(), "test", "daemon_mine"))
    replay = invoke(runs, project, environ, "replay", "--env", "test", "run_x")
    assert replay.exit_code != 0
    assert "is not the daemon of environment `test`" in replay.output
    payload = project / "payload.json"
    payload.write_text(json.dumps({"order_id": 1, "total": 20}))
    args = ["--consumer", "acme", "--app", "partner", "--trigger", "order-created"]
    sent = invoke(
        events, project, environ, "send", "--env", "test", *args, "--payload", str(payload)
    )
    assert sent.exit_code != 0
    # an address file of another environment is not this one's daemon either
    write_address(env_dir, DaemonAddress(impostor.url, os.getpid(), "prod", "daemon_X"))
    assert read_address(env_dir, "test") is None
    # without an address file, the configured server.port is not tried
    address_file(env_dir).unlink()
    settings = env_dir / "environment.yaml"
    settings.write_text(settings.read_text().replace("port: 0", f"port: {port}"))
    unpublished = invoke(runs, project, environ, "replay", "--env", "test", "run_x")
    assert unpublished.exit_code != 0 and "no rollout-yaml daemon runs" in unpublished.output
    assert all(r.path == "/healthz" for r in impostor.requests), impostor.requests
    assert not any("authorization" in r.headers for r in impostor.requests)
    assert ADMIN_TOKEN not in "".join(str(r.headers) for r in impostor.requests)


def test_a_stale_address_is_ignored(tmp_path: Path) -> None:
    path = address_file(tmp_path)
    path.parent.mkdir(parents=True)
    stale = {"url": "http://127.0.0.1:1", "pid": 2**22 + 12345, "environment": "test"}
    path.write_text(json.dumps({**stale, "instance": "daemon_gone"}))
    assert read_address(tmp_path, "test") is None
    path.write_text("{half")
    assert read_address(tmp_path, "test") is None
    mine = DaemonAddress("http://127.0.0.1:9999", os.getpid(), "test", "daemon_1")
    write_address(tmp_path, mine)
    assert read_address(tmp_path, "test") == mine
    assert local_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert local_url("::1", 80) == "http://[::1]:80"
