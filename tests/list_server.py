"""A real HTTP server on 127.0.0.1 standing in for an App with a paginated list API, in every
pagination style a connector can declare. Items are `{"id": n, "name": "item n"}`, ascending;
`since_id` filters like Shopify's. It records each request and can fail or slow down on cue.

- `/link/items?since_id&limit` — RFC 8288 `Link: <…?page_info=T&limit=N>; rel="next"`
  (Shopify: the next URL carries everything, page_info alone with limit)
- `/cursor/items?since_id&limit&after=T` — `{"results": [...], "paging": {"next": {"after": T}}}`
  (HubSpot)
- `/next/items?since_id&limit&page=P` — `{"data": [...], "links": {"next": absolute URL | null}}`
- `/page/items?since_id&page=P&per_page=N` — a bare list; a short page is the last
- `/offset/items?since_id&offset=O&limit=N` — `{"items": [...]}`; a short page is the last

`encoding` sends every answer compressed; `several_links` sends each link of `/link` in a
`Link` header of its own (`first`, `next`, `last`: the next one neither first nor last).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from echo_server import compress


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float


def _token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _untoken(text: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))


class ListServer:
    def __init__(self, count: int = 0) -> None:
        self.items: list[dict[str, Any]] = []
        self.requests: list[Seen] = []
        self.delay = 0.0
        self.fail_on: dict[int, int] = {}  # request number (1-based) → status to answer
        self.loop_cursor = False  # /cursor answers the same token forever
        self.foreign_next = False  # /next links to another host
        self.encoding: str | None = None  # gzip | deflate | br: answers are sent compressed
        self.several_links = False  # /link sends `first`, `next` and `last` as separate headers
        self._lock = threading.Lock()
        self.add(count)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append(Seen(parts.path, query, dict(self.headers), time.time()))
                    number = len(server.requests)
                    failing = server.fail_on.get(number)
                    items = list(server.items)
                if server.delay:
                    time.sleep(server.delay)
                if failing:
                    key = self.headers.get("X-Api-Key")
                    message = f"failing on purpose (key {key} refused)"
                    return self._send(failing, {"error": {"message": message}})
                status, body, headers = server.answer(parts.path, query, items)
                self._send(status, body, headers)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                payload = compress(json.dumps(body).encode(), server.encoding)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if server.encoding:
                    self.send_header("Content-Encoding", server.encoding)
                for name, value in (headers or {}).items():
                    if name == "Link" and server.several_links:
                        for link in value.split(", "):
                            self.send_header(name, link)
                    else:
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ListServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, count: int) -> None:
        with self._lock:
            start = len(self.items) + 1
            self.items.extend({"id": n, "name": f"item {n}"} for n in range(start, start + count))

    def pages_of(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return
            time.sleep(0.01)
        raise AssertionError(f"the list App got {len(self.requests)} requests, not {count}")

    # -- the styles ------------------------------------------------------------------------

    def answer(
        self, path: str, query: dict[str, str], items: list[dict[str, Any]]
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/link/items":
            if "page_info" in query:
                state = _untoken(query["page_info"])
                since, offset = state["since"], state["offset"]
            else:
                since, offset = int(query.get("since_id") or 0), 0
            limit = int(query.get("limit") or 50)
            rest = [i for i in items if i["id"] > since]
            page = rest[offset : offset + limit]
            headers = {}
            if offset + limit < len(rest):
                token = _token({"since": since, "offset": offset + limit})
                link = f"{self.url}/link/items?{urlencode({'limit': limit, 'page_info': token})}"
                headers["Link"] = f'<{link}>; rel="next"'
                if self.several_links:  # RFC 8288 allows one Link header per link
                    first = f"{self.url}/link/items?limit={limit}"
                    headers["Link"] = (
                        f'<{first}>; rel="first", {headers["Link"]}, <{first}>; rel="last"'
                    )
            return 200, {"items": page}, headers
        since = int(query.get("since_id") or 0)
        rest = [i for i in items if i["id"] > since]
        if path == "/cursor/items":
            limit = int(query.get("limit") or 50)
            offset = _untoken(query["after"])["offset"] if "after" in query else 0
            page = rest[offset : offset + limit]
            paging = None
            if self.loop_cursor:
                paging = {"next": {"after": _token({"offset": 0})}}
            elif offset + limit < len(rest):
                paging = {"next": {"after": _token({"offset": offset + limit})}}
            return 200, {"results": page, **({"paging": paging} if paging else {})}, {}
        if path == "/next/items":
            limit = int(query.get("limit") or 50)
            number = int(query.get("page") or 1)
            page = rest[(number - 1) * limit : number * limit]
            following = None
            if number * limit < len(rest):
                host = "http://localhost:9" if self.foreign_next else self.url
                following = f"{host}/next/items?" + urlencode(
                    {"since_id": since, "limit": limit, "page": number + 1}
                )
            return 200, {"data": page, "links": {"next": following}}, {}
        if path == "/page/items":
            size = int(query.get("per_page") or 50)
            number = int(query.get("page") or 1)
            return 200, rest[(number - 1) * size : number * size], {}
        if path == "/offset/items":
            limit = min(int(query.get("limit") or 50), 100)  # caps the size like real APIs
            offset = int(query.get("offset") or 0)
            return 200, {"items": rest[offset : offset + limit]}, {}
        return 404, {"error": {"message": f"no route {path}"}}, {}
