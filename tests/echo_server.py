"""A real HTTP server on 127.0.0.1 whose answers a test writes as a function of the request:
echo what was sent, compress the answer, repeat headers, send a body nested 10,000 deep.
Every request is recorded."""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: list[tuple[str, str]] = field(default_factory=list)
    encoding: str | None = None  # gzip | deflate | br: the body is sent compressed


Respond = Callable[[Seen], Reply]


def compress(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        return bytes(brotli.compress(body))
    return body


class EchoServer:
    def __init__(self, respond: Respond | None = None) -> None:
        self.respond: Respond = respond or (lambda seen: Reply())
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    dict(self.headers),
                    self.rfile.read(length) if length else b"",
                    time.time(),
                )
                with server._lock:
                    server.requests.append(seen)
                reply = server.respond(seen)
                raw = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                payload = compress(raw, reply.encoding)
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if reply.encoding:
                    self.send_header("Content-Encoding", reply.encoding)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll interval: stopping waits for it (0.5 s by default, at every teardown)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> EchoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
