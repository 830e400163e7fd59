"""A small, fast HTTP/1.1 load generator (raw asyncio, keep-alive), so the benchmark measures
the runner and not the client library."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, bytes] | tuple[str, str, bytes, dict[str, str]]
"""(key, path, body) or (key, path, body, extra headers) of one request."""


@dataclass
class LoadResult:
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    send_times: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    """Seconds from each request's send to its answer (every answer, refusals included)."""
    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)


def request_bytes(
    host: str,
    port: int,
    path: str,
    body: bytes,
    token: str | None,
    headers: dict[str, str] | None = None,
) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def run_load(
    host: str,
    port: int,
    make: Callable[[int], Request],
    *,
    concurrency: int,
    duration: float | None = None,
    total: int | None = None,
    rate: float | None = None,
    token: str | None = None,
    ok_status: int = 202,
) -> LoadResult:
    """Send requests from `concurrency` connections; `make(i)` gives (key, path, body) and
    optionally extra headers (a webhook signature).

    With `rate`, request i is sent no earlier than start + i / rate (an open-loop schedule, so
    a slow server shows up as latency, not as fewer requests).
    """
    result = LoadResult(started=time.time())
    counter = iter(range(10**9))
    deadline = result.started + duration if duration else None

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                i = next(counter)
                if total is not None and i >= total:
                    return
                if rate is not None:
                    due = result.started + i / rate
                    wait = due - time.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                now = time.time()
                if deadline is not None and now >= deadline:
                    return
                made = make(i)
                key, path, body = made[0], made[1], made[2]
                headers = made[3] if len(made) > 3 else None
                result.send_times[key] = now
                writer.write(request_bytes(host, port, path, body, token, headers))
                result.sent += 1
                status = await _read_status(reader)
                result.latencies.append(time.time() - now)
                if status == ok_status:
                    result.accepted += 1
                else:
                    result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    result.finished = time.time()
    return result


def event_body(i: int) -> bytes:
    return json.dumps(
        {
            "app": "partner",
            "trigger": "order-created",
            "id": f"e{i}",
            "payload": {"order_id": i, "total": 42.5, "customer": {"name": "Ada"}},
        }
    ).encode()
