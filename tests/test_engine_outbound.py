"""The outbound path (engine/outbound.py) through the real runtime on a SQLite file, against a
real HTTP server on 127.0.0.1: compressed answers read as text, repeated headers kept, an
answer that cannot be read ending its attempt under the retry policy, and secrets redacted in
every spelling they are sent and echoed in, checked in the stored records."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from echo_server import EchoServer, Reply, Seen
from outbound_env import (
    ECHO_KEY,
    ECHO_PASSWORD,
    compile_echo,
    echo_project,
    order,
    run_actions,
    runtime_for,
)

from rollout_yaml.engine.outbound import Outbound, RateLimited
from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import ConnectFailed, TooLarge
from rollout_yaml.http.rate_limit import Quota, RateLimiter
from rollout_yaml.store.records import RunStatus


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    yield server
    server.stop()


# -- compressed answers ----------------------------------------------------------------------

THINGS = {"items": [{"id": n, "name": f"thing {n}" * 20} for n in range(200)]}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_an_actions_output_and_error_come_from_compressed_answers(
    tmp_path: Path, echo: EchoServer, encoding: str
) -> None:
    def respond(seen: Seen) -> Reply:
        if seen.path == "/things":
            return Reply(200, THINGS, encoding=encoding)
        return Reply(422, {"error": {"message": "the thing is locked"}}, encoding=encoding)

    echo.respond = respond
    ok, refused = run_actions(tmp_path, echo.url, {"a-read": "read", "b-check": "check"})
    assert "br" in echo.requests[0].headers["Accept-Encoding"]
    assert ok.status is RunStatus.SUCCEEDED
    assert ok.output == {"count": 200, "first": THINGS["items"][0]}
    recorded = ok.attempt_log[0].response
    assert recorded is not None and json.loads(recorded["body"]) == THINGS  # the decoded text
    assert recorded["headers"]["content-encoding"] == encoding
    assert refused.status is RunStatus.FAILED and refused.error_kind == "app_refused"
    assert refused.error == "the thing is locked"  # `error.message` of the decoded answer


def test_a_small_gzip_bomb_fails_the_attempt_as_too_large(tmp_path: Path, echo: EchoServer) -> None:
    # 16 MiB of JSON in about 16 KiB of gzip; the default limit is 10 MiB
    bomb = gzip.compress(b"".join([b"[", b"0," * (8 * 1024 * 1024), b"0]"]), 9)
    echo.respond = lambda seen: Reply(200, bomb, headers=[("Content-Encoding", "gzip")])
    (run,) = run_actions(tmp_path, echo.url, {"read": "read"})
    assert run.status is RunStatus.FAILED
    assert run.attempts == 1  # too large is not a passing problem: not retried
    assert run.error is not None and "larger than 10485760 bytes (decoded)" in run.error
    assert run.attempt_log[0].response is None


def test_repeated_response_headers_are_recorded_each(tmp_path: Path, echo: EchoServer) -> None:
    links = ['<https://x.test/a?page=2>; rel="next"', '<https://x.test/a?page=9>; rel="last"']
    echo.respond = lambda seen: Reply(
        200,
        THINGS,
        headers=[
            ("Link", links[0]),
            ("Link", links[1]),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
    )
    (run,) = run_actions(tmp_path, echo.url, {"read": "read"})
    headers = run.attempt_log[0].response["headers"]  # type: ignore[index]
    assert headers["link"] == links
    assert headers["set-cookie"] == ["***", "***"]  # masked, each


# -- the outbound object on its own --------------------------------------------------------


def test_one_call_builds_the_context_once_and_sends_signed(
    tmp_path: Path, echo: EchoServer
) -> None:
    env = compile_echo(echo_project(tmp_path, {}), echo.url)
    echo.respond = lambda seen: Reply(200, {"ok": True})

    async def scenario() -> None:
        clients = AppClients()
        try:
            outbound = Outbound(clients)
            call = await outbound.open(
                env, env.apps["echo"], "acme", "echo", input={"x": 1}, run={"id": "run_1"}
            )
            assert call.context["credential"]["key"] == ECHO_KEY
            assert call.context["input"] == {"x": 1} and call.context["run"] == {"id": "run_1"}
            assert {ECHO_KEY, ECHO_PASSWORD} <= call.secrets
            exchange = await call.send(call.build(env.apps["echo"].actions["read"].request))
            assert exchange.status == 200 and exchange.body() == {"ok": True}
            assert echo.requests[-1].headers["Authorization"].startswith("Basic ")
            assert exchange.request_record["headers"]["Authorization"] == "Basic ***"
        finally:
            await clients.close()

    asyncio.run(scenario())


def test_a_send_error_comes_back_with_its_record_and_a_slot_too_far_is_kept(
    tmp_path: Path,
) -> None:
    env = compile_echo(echo_project(tmp_path, {}), "http://127.0.0.1:9")  # nothing listens

    async def scenario() -> None:
        clients = AppClients()
        limiter = RateLimiter()
        try:
            outbound = Outbound(clients, limiter=limiter)
            call = await outbound.open(env, env.apps["echo"], "acme", "echo", input={})
            request = call.build(env.apps["echo"].actions["send"].request)
            exchange = await call.send(request)
            assert isinstance(exchange.error, ConnectFailed) and exchange.answer is None
            assert "***" in exchange.request_record["url"]
            assert ECHO_KEY not in json.dumps(exchange.request_record)
            quota = Quota(("echo", "acme", "echo"), 1, 60.0)
            call.quota = quota
            assert limiter.reserve(quota) == 0  # the one slot of the minute is taken
            with pytest.raises(RateLimited) as limited:
                await call.send(request, ticket="run_x", hold=1.0)
            assert 58 < limited.value.wait <= 60
            assert limiter.reserve(quota, ticket="run_x") == pytest.approx(limited.value.wait, 0.01)
        finally:
            await clients.close()

    asyncio.run(scenario())


def test_too_large_is_a_send_error_of_its_own(tmp_path: Path, echo: EchoServer) -> None:
    env = compile_echo(echo_project(tmp_path, {}), echo.url)
    echo.respond = lambda seen: Reply(200, b"x" * 2000)
    limits = env.settings.runtime.limits
    object.__setattr__(limits, "max_response_bytes", 1000)

    async def scenario() -> None:
        clients = AppClients()
        try:
            call = await Outbound(clients).open(env, env.apps["echo"], "acme", "echo", input={})
            exchange = await call.send(call.build(env.apps["echo"].actions["read"].request))
            assert isinstance(exchange.error, TooLarge) and not exchange.error.transient
        finally:
            await clients.close()

    asyncio.run(scenario())


def test_actions_polls_and_subscriptions_all_go_through_the_outbound_path(
    tmp_path: Path, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The three call sites open their calls here: one context builder, one redaction set,
    one renewal after a 401 — each call's context says which site it came from."""
    opened: list[dict[str, Any]] = []
    real_open = Outbound.open

    async def spy(self: Outbound, *args: Any, **kwargs: Any) -> Any:
        call = await real_open(self, *args, **kwargs)
        opened.append(dict(call.context))
        return call

    monkeypatch.setattr(Outbound, "open", spy)
    answers = {"/hooks": (201, {"hook": {"id": 5}}), "/list": (200, {"items": [{"id": 1}]})}
    echo.respond = lambda seen: Reply(
        *answers.get(seen.path.split("?")[0], (200, THINGS)), encoding="gzip"
    )
    project = echo_project(tmp_path, {"send": "read"}, {"polled": "listing", "hooked": "hooked"})

    async def scenario() -> None:
        runtime = await runtime_for(project, echo.url)
        try:
            await runtime.push("acme", [order()])
            assert await runtime.poller.poll_due() == 1
            await runtime.subscriptions.sync()
            (hook,) = [h for h in await runtime.store.list_hooks() if h.automation == "hooked"]
            assert hook.subscription == {"id": "5"}  # read from the decoded answer
        finally:
            await runtime.stop(grace=2)
            await runtime.store.close()

    asyncio.run(scenario())
    paths = sorted({seen.path.split("?")[0] for seen in echo.requests})
    assert paths == ["/hooks", "/list", "/things"]
    assert all(context["credential"]["key"] == ECHO_KEY for context in opened)
    sites = {
        "action": [c for c in opened if c["run"]["id"] is not None],
        "poll": [c for c in opened if c["page"] == 1],
        "subscription": [c for c in opened if c["webhook"]["url"]],
    }
    assert all(sites.values()), sites
