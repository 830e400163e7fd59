"""A partner's notification endpoint on 127.0.0.1: it checks every delivery with the
`standardwebhooks` library (the reference verifier), answers 204 to a valid one and 401 to
any other, and records both. It can start "down": its port is reserved but nothing listens,
so deliveries are refused at connect, as with a receiver that is not running."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Delivery:
    id: str
    timestamp: str
    payload: Any
    at: float


class Receiver:
    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.verified: list[Delivery] = []
        self.rejected: list[str] = []
        self.refused: list[tuple[dict[str, str], bytes]] = []
        """Valid deliveries answered 503 (see `refuse`), with their headers and body."""
        self._refusals = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name: value for name, value in self.headers.items()}
                try:
                    payload = receiver.verifier.verify(body, headers)
                except WebhookVerificationError as exc:
                    with receiver._lock:
                        receiver.rejected.append(str(exc))
                    status = 401
                else:
                    with receiver._lock:
                        refuse = receiver._refusals > 0
                        if refuse:
                            receiver._refusals -= 1
                            receiver.refused.append((headers, body))
                    if refuse:
                        self._answer(503, b"busy, try later")
                        return
                    delivery = Delivery(
                        headers.get("webhook-id", ""),
                        headers.get("webhook-timestamp", ""),
                        payload,
                        time.time(),
                    )
                    with receiver._lock:
                        receiver.verified.append(delivery)
                    status = 204
                self._answer(status, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self._server.server_bind()  # the port is ours; nothing listens until `start`
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> Receiver:
        self._server.server_activate()
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def refuse(self, count: int) -> None:
        """Answer the next `count` valid deliveries with a 503 (a receiver that is busy)."""
        with self._lock:
            self._refusals += count

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self.verified)

    def wait_for(
        self, ids: set[str] | None = None, count: int = 1, timeout: float = 20.0
    ) -> list[Delivery]:
        """Every verified delivery, once `ids` (or `count` distinct ids) have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.deliveries()
            seen = {d.id for d in got}
            if (ids is not None and ids <= seen) or (ids is None and len(seen) >= count):
                return got
            if time.monotonic() > deadline:
                shown = json.dumps([d.payload for d in got])[:2000]
                raise AssertionError(f"{len(seen)} notification(s) arrived: {shown}")
            time.sleep(0.02)
