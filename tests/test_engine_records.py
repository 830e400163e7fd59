"""What a run records when the App's answer is hostile or echoes secrets, through the real
runtime on a SQLite file against a real HTTP server on 127.0.0.1: an answer that cannot be read
ends its attempt as a recorded failure under the retry policy (never a run sent again at every
lease expiry), and secrets are in no stored record in any spelling they were sent or echoed in
(raw, percent-encoded, form-encoded, JSON-escaped, base64 of basic auth)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from echo_server import EchoServer, Reply, Seen
from outbound_env import ECHO_KEY, ECHO_PASSWORD, run_actions

from rollout_yaml.store.records import RunStatus


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


# -- an answer that cannot be read (a failure under the retry policy, recorded) -------------

DEEP = b"[" * 10_000 + b"]" * 10_000


@pytest.mark.parametrize(("status", "attempts"), [(200, 1), (503, 3)])
def test_an_answer_nested_too_deeply_ends_the_attempt_as_a_recorded_failure(
    tmp_path: Path, echo: EchoServer, status: int, attempts: int
) -> None:
    """200 is not a status the policy retries: failed at once. 503 is: retried to
    `max_attempts` (3), then failed. Never left queued to be sent at every lease expiry."""
    echo.respond = lambda seen: Reply(status, DEEP)
    (run,) = run_actions(tmp_path, echo.url, {"read": "read"})
    assert run.status is RunStatus.FAILED
    assert run.attempts == attempts and len(run.attempt_log) == attempts
    assert len(echo.requests) == attempts
    assert run.error_kind == "response"
    assert run.error is not None and "nested too deeply" in run.error
    last = run.attempt_log[-1]
    assert last.response is not None and last.response["status"] == status
    assert last.error == run.error


def test_an_expression_that_raises_on_the_answer_fails_the_attempt(
    tmp_path: Path, echo: EchoServer
) -> None:
    echo.respond = lambda seen: Reply(200, {"status": 5})  # `contains(status, 'ok')` raises
    (run,) = run_actions(tmp_path, echo.url, {"check": "check"})
    assert run.status is RunStatus.FAILED and run.attempts == 1
    assert run.error is not None and "could not be read" in run.error
    assert run.attempt_log[0].response is not None


# -- secrets in every spelling, checked where the records are written ----------------------


def spellings() -> list[str]:
    """The secrets as the App receives and echoes them, computed with the standard library."""
    token = base64.b64encode(f"ada:{ECHO_PASSWORD}".encode()).decode()
    found = [token]
    for secret in (ECHO_KEY, ECHO_PASSWORD):
        found += [
            secret,
            quote(secret, safe=""),
            re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
        ]
    return found


def echoing(status: int) -> Any:
    def respond(seen: Seen) -> Reply:
        echoed = {
            "path": seen.path,
            "form": seen.body.decode(),
            "authorization": seen.headers.get("Authorization"),
            "escaped": json.dumps(seen.body.decode()),
        }
        return Reply(status, {"echo": echoed})

    return respond


@pytest.mark.parametrize("status", [200, 400])
def test_secrets_sent_in_every_encoding_are_in_no_stored_record(
    tmp_path: Path, echo: EchoServer, status: int
) -> None:
    """The key goes out in the path and the query (percent-encoded), in a form body (`+`),
    the password in the form and in basic auth (base64); the App echoes all of it back, as
    output (200) or as the run's error (400)."""
    echo.respond = echoing(status)
    (run,) = run_actions(tmp_path, echo.url, {"send": "send"})
    sent = echo.requests[0]
    assert quote(ECHO_KEY, safe="") in sent.path and quote_plus(ECHO_KEY) in sent.body.decode()
    stored = json.dumps(
        {
            "output": run.output,
            "error": run.error,
            "input": run.input,
            "attempts": [[a.request, a.response, a.error] for a in run.attempt_log],
        },
        ensure_ascii=False,
    )
    assert ("***" in json.dumps(run.output)) if status == 200 else ("***" in (run.error or ""))
    for spelling in spellings():
        assert spelling not in stored, spelling
