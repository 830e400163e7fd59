"""The response middleware: a secret never leaves, however the body spells it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from rollout_yaml.server.redaction import RedactMiddleware, redact_data

SECRETS = frozenset({"plain-secret-1234", 'quote"and\\slash', "caf\u00e9-secret"})


async def json_echo(_request: Request) -> Response:
    return JSONResponse({"values": sorted(SECRETS), "ok": "fine"})


async def ascii_json(_request: Request) -> Response:
    body = json.dumps({"values": sorted(SECRETS)}, ensure_ascii=True)
    return Response(body, media_type="application/json")


async def text(_request: Request) -> Response:
    return PlainTextResponse("token plain-secret-1234 here")


async def streamed(_request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        yield b"plain-sec"
        yield b"ret-1234 end"

    return StreamingResponse(parts(), media_type="text/plain")


def fetch(path: str) -> httpx.Response:
    app = Starlette(
        routes=[
            Route("/json", json_echo),
            Route("/ascii", ascii_json),
            Route("/text", text),
            Route("/stream", streamed),
        ]
    )
    wrapped = RedactMiddleware(app, lambda: SECRETS)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)

    return asyncio.run(go())


def test_secrets_are_redacted_in_every_spelling() -> None:
    for path in ("/json", "/ascii", "/text", "/stream"):
        response = fetch(path)
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        for secret in SECRETS:
            assert secret not in response.text, (path, secret)
            assert json.dumps(secret)[1:-1] not in response.text, (path, secret)
            assert json.dumps(secret, ensure_ascii=False)[1:-1] not in response.text
        assert "***" in response.text
    assert fetch("/json").json() == {"values": ["***", "***", "***"], "ok": "fine"}
    assert fetch("/stream").text == "*** end"


def test_redact_data_for_the_command_line() -> None:
    data = {"a": ["x plain-secret-1234 y", {"b": 'quote"and\\slash'}], "n": 3}
    assert redact_data(data, SECRETS) == {"a": ["x *** y", {"b": "***"}], "n": 3}
