"""Sending actions: the bytes that reach a real HTTP server, and every way a send can fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from app_server import Answer, AppServer
from daemon_proc import free_port

from rollout_yaml.http.client import AppClients
from rollout_yaml.http.errors import ConnectFailed, SendError, SendTimeout, TooLarge
from rollout_yaml.http.request import PreparedRequest


@pytest.fixture
def app() -> Iterator[AppServer]:
    server = AppServer().start()
    yield server
    server.stop()


def _request(url: str, **kwargs: object) -> PreparedRequest:
    fields: dict[str, object] = {
        "method": "POST",
        "url": url,
        "path": "",
        "query": [],
        "headers": {"X-Test": "1"},
        "json_body": {"a": 1},
        "has_json": True,
        "timeout": 2.0,
    }
    fields.update(kwargs)
    return PreparedRequest(**fields)  # type: ignore[arg-type]


def _send(request: PreparedRequest, max_bytes: int = 1_000_000) -> object:
    async def go() -> object:
        clients = AppClients()
        try:
            return await clients.send("app", request, max_bytes)
        finally:
            await clients.close()

    return asyncio.run(go())


def test_encoded_path_and_repeated_query_arrive_as_built(app: AppServer) -> None:
    request = _request(f"{app.url}/files/a%2Fb%20c", query=[("tag", "x"), ("tag", "y")])
    answer = _send(request)
    assert answer.status == 200  # type: ignore[attr-defined]
    got = app.requests[0]
    assert got.path == "/files/a%2Fb%20c?tag=x&tag=y"
    assert got.json() == {"a": 1}
    assert got.headers["x-test"] == "1"


def test_no_cookie_is_kept_between_requests(app: AppServer) -> None:
    app.answer(Answer(200, {"ok": True}, {"Set-Cookie": "session=consumer-a; Path=/"}))

    async def go() -> None:
        clients = AppClients()
        await clients.send("app", _request(f"{app.url}/one"), 1000)
        await clients.send("app", _request(f"{app.url}/two"), 1000)
        await clients.close()

    asyncio.run(go())
    assert "cookie" not in app.requests[1].headers


def test_response_over_the_limit_fails_the_attempt(app: AppServer) -> None:
    app.answer(Answer(200, {"data": "x" * 5000}))
    with pytest.raises(SendError) as failed:
        _send(_request(f"{app.url}/big"), max_bytes=1000)
    assert isinstance(failed.value, TooLarge)


def test_a_slow_app_times_out(app: AppServer) -> None:
    app.answer(Answer(200, {"ok": True}, delay=1.5))
    with pytest.raises(SendError) as failed:
        _send(_request(f"{app.url}/slow", timeout=0.3))
    assert isinstance(failed.value, SendTimeout) and failed.value.transient


def test_nobody_listening_is_a_connection_error() -> None:
    with pytest.raises(SendError) as failed:
        _send(_request(f"http://127.0.0.1:{free_port()}/x"))
    assert isinstance(failed.value, ConnectFailed) and failed.value.transient


def test_redirects_are_not_followed(app: AppServer) -> None:
    app.answer(Answer(302, {}, {"Location": "http://169.254.169.254/latest/meta-data"}))
    answer = _send(_request(f"{app.url}/moved"))
    assert answer.status == 302  # type: ignore[attr-defined]
    assert len(app.requests) == 1
