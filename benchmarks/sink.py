"""A fast local App for benchmarks: a bare asyncio HTTP/1.1 server (keep-alive) that answers
200 to everything and notes when each order arrived. Run as its own process:

    python -m benchmarks.sink PORT RESULT_FILE

It writes `{order_id: arrival_time}` and counts per idempotency key to RESULT_FILE on SIGTERM.
`GET /count` answers how many orders have arrived so far (a benchmark waits on it for a
backlog to drain before its next phase).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from typing import Any

BODY = b'{"ok":true,"received":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class SinkProtocol(asyncio.Protocol):
    def __init__(self, arrivals: dict[str, float], keys: Counter[str]) -> None:
        self.arrivals = arrivals
        self.keys = keys
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            key = None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                lowered = name.strip().lower()
                if lowered == "content-length":
                    length = int(value.strip())
                elif lowered == "idempotency-key":
                    key = value.strip()
            total = head_end + 4 + length
            if len(self.buffer) < total:
                return
            method, path = head.split(" ", 2)[:2]
            self.buffer = self.buffer[total:]
            if method == "GET" and path == "/count":
                count = str(len(self.arrivals)).encode()
                assert self.transport is not None
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                    + str(len(count)).encode()
                    + b"\r\n\r\n"
                    + count
                )
                continue
            self.arrivals.setdefault(path.rsplit("/", 1)[-1], time.time())
            if key:
                self.keys[key] += 1
            assert self.transport is not None
            self.transport.write(RESPONSE)


async def serve(port: int, result_file: str) -> None:
    arrivals: dict[str, float] = {}
    keys: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(arrivals, keys), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    result: dict[str, Any] = {
        "arrivals": arrivals,
        "duplicates": sum(1 for c in keys.values() if c > 1),
        "requests": sum(keys.values()) or len(arrivals),
    }
    with open(result_file, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
