"""The fast lane (`server/fast_lane.py`) answers pushes and webhook deliveries itself with the
router's own rules: the same size limit, the same token cache, and each request handled once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from server_harness import JWT_SECRET, LiveEnvironment

from rollout_yaml.config.models.environment import AuthSettings
from rollout_yaml.server.auth import Unauthorized, VerifiedTokens

LIMIT = 1_048_576
VALID_BUT_TOO_BIG = {
    "app": "partner",
    "trigger": "order-created",
    "payload": {"order_id": 1, "total": 20, "note": "x" * (LIMIT + 10)},
}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEnvironment]:
    with LiveEnvironment(tmp_path) as environment:
        yield environment


def chunked(body: bytes) -> Iterator[bytes]:
    """No Content-Length: only the bytes read can tell the size."""
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


def counted(live: LiveEnvironment, name: str) -> list[Any]:
    """Replace `live.runtime.<name>` by a wrapper recording each call."""
    calls: list[Any] = []
    original = getattr(live.runtime, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await original(*args, **kwargs)

    setattr(live.runtime, name, wrapper)
    return calls


@pytest.mark.parametrize("path", ["/v1/events", "/webhooks/partner/order-created/hook_x"])
def test_a_valid_body_over_the_limit_is_413_in_the_fast_lane(
    live: LiveEnvironment, path: str
) -> None:
    body = json.dumps(VALID_BUT_TOO_BIG).encode()
    pushes = counted(live, "push")
    with live.client() as client:
        for content in (body, chunked(body)):
            answer = client.post(path, content=content)
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"]["code"] == "payload_too_large"
    assert pushes == []
    assert live.wait_for_runs(0) == []


def test_a_refused_push_is_handled_once(live: LiveEnvironment) -> None:
    pushes = counted(live, "push")
    with live.client() as client:
        answer = client.post(
            "/v1/events", json={"app": "partner", "trigger": "order-created", "payload": {}}
        )
    assert answer.status_code == 422
    assert len(pushes) == 1  # the refusal is answered where it was found, not replayed


def test_a_refused_webhook_delivery_is_handled_once(live: LiveEnvironment) -> None:
    deliveries = counted(live, "receive_webhook")
    with live.client(None) as client:
        answer = client.post("/webhooks/partner/order-created/no-such-hook", json={"a": 1})
    assert answer.status_code == 404
    assert len(deliveries) == 1


def test_one_token_cache_serves_both_lanes(live: LiveEnvironment) -> None:
    tokens: VerifiedTokens = live.app.state.tokens
    token = live.token("acme")
    headers = {"Authorization": f"Bearer {token}"}
    with live.client(None) as client:
        assert client.get("/v1/runs", headers=headers).status_code == 200
        assert len(tokens._known) == 1
        pushed = client.post(
            "/v1/events",
            headers=headers,
            json={
                "app": "partner",
                "trigger": "order-created",
                "payload": {"order_id": 1, "total": 1},
            },
        )
    assert pushed.status_code == 202
    assert [key[0] for key in tokens._known] == [token]


def test_a_cached_token_is_refused_once_it_expires() -> None:
    now = [1_700_000_000.0]
    tokens = VerifiedTokens(clock=lambda: now[0])
    auth = AuthSettings(jwt_secret=JWT_SECRET)
    claims = {"sub": "acme", "iat": int(now[0]), "exp": int(now[0]) + 60}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS512")
    assert tokens.verify(token, auth).key == "acme"
    now[0] += 59
    assert tokens.verify(token, auth).key == "acme"  # cached, still valid
    now[0] += 1
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token, auth)
    # a reload with another secret verifies afresh instead of trusting the cache
    now[0] -= 30
    with pytest.raises(Unauthorized, match="signature"):
        tokens.verify(token, AuthSettings(jwt_secret=JWT_SECRET + "-rotated"))
