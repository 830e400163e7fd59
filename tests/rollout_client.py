"""A tRPC v10 client as `@trpc/client`'s `httpBatchLink` speaks it (for the Python tests; the
node test uses the real one), and the dropin fixture project."""

from __future__ import annotations

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from runner_env import SECRETS

FIXTURE = Path(__file__).parent / "fixtures" / "dropin_project"
CRM_TOKEN = "crm-consumer-api-token-0c9d8e"
SINK_ACCOUNT_TOKEN = "sink-account-token-4b1a"


def copy_dropin_project(tmp: Path) -> Path:
    target = tmp / "dropin"
    shutil.copytree(FIXTURE, target)
    return target


def batch_query(client: httpx.Client, *calls: tuple[str, Any]) -> httpx.Response:
    """`GET /api/trpc/a.b,c.d?batch=1&input={"0": …}` (an input of None is left out)."""
    paths = ",".join(name for name, _ in calls)
    inputs = {str(i): given for i, (_, given) in enumerate(calls) if given is not None}
    return client.get(f"/api/trpc/{paths}", params={"batch": "1", "input": json.dumps(inputs)})


def batch_mutation(client: httpx.Client, *calls: tuple[str, Any]) -> httpx.Response:
    paths = ",".join(name for name, _ in calls)
    inputs = {str(i): given for i, (_, given) in enumerate(calls) if given is not None}
    return client.post(f"/api/trpc/{paths}", params={"batch": "1"}, json=inputs)


def data(response: httpx.Response) -> list[Any]:
    """Each call's `result.data`, after checking that every call succeeded."""
    assert response.status_code == 200, response.text
    answers = response.json()
    assert all("result" in a for a in answers), answers
    return [a["result"]["data"] for a in answers]


def query(client: httpx.Client, name: str, given: Any = None) -> Any:
    return data(batch_query(client, (name, given)))[0]


def mutate(client: httpx.Client, name: str, given: Any = None) -> Any:
    return data(batch_mutation(client, (name, given)))[0]


class Sink:
    """The sink and CRM Apps on 127.0.0.1: order 422 is refused with a 422 (the consumer's
    input), anything else is received."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # the sink's auth.test
                good = self.headers.get("Authorization") == f"Bearer {SINK_ACCOUNT_TOKEN}"
                sink.received.append({"path": self.path, "headers": dict(self.headers)})
                payload = json.dumps({"name": "Sink account"} if good else {}).encode()
                self.send_response(200 if good else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                refused = self.path.endswith("/422")
                answer = {"error": {"message": "order 422 is invalid"}} if refused else {}
                payload = json.dumps(answer or {"received": True}).encode()
                self.send_response(422 if refused else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Sink:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def sample_token(consumer: str, auth_data: Any) -> str:
    """Minted as Rollout's samples mint a consumer token: HS512, `{iss, sub, iat, exp,
    "rollout.com": {authData}}`."""
    now = int(time.time())
    claims = {
        "iss": "partner-backend",
        "sub": consumer,
        "iat": now,
        "exp": now + 3600,
        "rollout.com": {"authData": auth_data},
    }
    return jwt.encode(claims, SECRETS["ROLLOUT_JWT_SECRET"], algorithm="HS512")
