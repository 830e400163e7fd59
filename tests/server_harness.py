"""A real environment for the server and CLI tests: the runner fixture project copied to a
temporary folder, its Runtime over a SQLite file, the real app served by uvicorn on 127.0.0.1,
and a stub of the `sink` App that the actions call, all in one background event loop."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rollout_yaml.config.project import Layout
from rollout_yaml.engine.runtime import Runtime
from rollout_yaml.expr.compiler import load_and_compile
from rollout_yaml.server.app import create_app
from rollout_yaml.server.auth import make_token
from rollout_yaml.store.factory import open_store

T = TypeVar("T")
FIXTURE = Path(__file__).parent / "fixtures" / "runner_project"
JWT_SECRET = "jwt-secret-" + "k" * 64
ADMIN_TOKEN = "admin-token-0123456789abcdef"
ACME_TOKEN = "acme-sink-token-s3cr3t"
GLOBEX_TOKEN = "globex-sink-token-s3cr3t"
TERMINAL = {"succeeded", "failed", "filtered", "dry_run"}


def secrets_environ(sink_url: str) -> dict[str, str]:
    return {
        "ROLLOUT_JWT_SECRET": JWT_SECRET,
        "ROLLOUT_ADMIN_TOKEN": ADMIN_TOKEN,
        "ACME_SINK_TOKEN": ACME_TOKEN,
        "GLOBEX_SINK_TOKEN": GLOBEX_TOKEN,
        "SINK_URL": sink_url,
    }


def copy_project(tmp: Path) -> Path:
    target = tmp / "project"
    shutil.copytree(FIXTURE, target)
    return target


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def sink_app(received: list[dict[str, Any]]) -> Starlette:
    """The `sink` App: order 400 is refused with a 400 (a user error); others succeed."""

    async def order(request: Request) -> JSONResponse:
        body = await request.json()
        received.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
        if request.path_params["order_id"] == "400":
            return JSONResponse({"error": {"message": "order 400 is refused"}}, 400)
        return JSONResponse({"received": True})

    async def chat(request: Request) -> JSONResponse:
        received.append({"path": request.url.path, "body": await request.json()})
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/orders/{order_id}", order, methods=["POST"]),
            Route("/chat.postMessage", chat, methods=["POST"]),
        ]
    )


def _server(app: Any) -> uvicorn.Server:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    return uvicorn.Server(config)


class LiveEnvironment:
    """`with LiveEnvironment(tmp_path) as live:` — the daemon's HTTP side, for real."""

    def __init__(
        self,
        tmp: Path,
        *,
        serve_api: bool = True,
        database: str | None = None,
        project: Path | None = None,
    ) -> None:
        """`project`: an existing copy (a restart of the same environment), else a new one."""
        self.project = project if project is not None else copy_project(tmp)
        if database is not None and project is None:  # the `database` fixture's file or URL
            settings = self.project / "environments" / "test" / "environment.yaml"
            text = settings.read_text().replace("database: sqlite", f"database: {database}")
            settings.write_text(text)
        self.serve_api = serve_api
        self.sink_received: list[dict[str, Any]] = []
        self._api_socket = listening_socket()
        self._sink_socket = listening_socket()
        self.url = f"http://127.0.0.1:{self._api_socket.getsockname()[1]}"
        self.sink_url = f"http://127.0.0.1:{self._sink_socket.getsockname()[1]}"
        self.environ = secrets_environ(self.sink_url)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[uvicorn.Server] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.runtime: Runtime

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> LiveEnvironment:
        self._thread.start()
        self.call(self._start)
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.call(self._stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _start(self) -> None:
        layout = Layout(self.project)
        env, diagnostics = load_and_compile(layout, "test", environ=self.environ)
        assert env is not None, [d.message for d in diagnostics]
        store = open_store(env.settings.database, layout.env_dir("test"))
        await store.open()
        self.runtime = Runtime(env, store)
        await self.runtime.start()
        pairs = [(sink_app(self.sink_received), self._sink_socket)]
        if self.serve_api:
            self.app = create_app(self.runtime)
            pairs.append((self.app, self._api_socket))
        for app, sock in pairs:
            server = _server(app)
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not all(s.started for s in self._servers):
            await asyncio.sleep(0.01)

    async def _stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runtime.stop(grace=2)
        await self.runtime.store.close()

    def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the environment's loop, from the test's thread."""

        async def run() -> T:
            return await make()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(30)

    # -- a client's view -----------------------------------------------------------------

    def token(self, consumer: str = "acme", ttl: float = 600) -> str:
        return make_token(JWT_SECRET, consumer, ttl)

    def client(self, consumer: str | None = "acme", *, admin: bool = False) -> httpx.Client:
        headers = {}
        if admin:
            headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        elif consumer is not None:
            headers["Authorization"] = f"Bearer {self.token(consumer)}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def push(self, consumer: str, payload: dict[str, Any], event_id: str | None = None) -> Any:
        body: dict[str, Any] = {"app": "partner", "trigger": "order-created", "payload": payload}
        if event_id is not None:
            body["id"] = event_id
        with self.client(consumer) as client:
            answer = client.post("/v1/events", json=body)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def wait_for_runs(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every run (admin view) once `count` of them have finished."""
        deadline = time.monotonic() + timeout
        with self.client(admin=True) as client:
            while True:
                runs: list[dict[str, Any]] = client.get(
                    "/admin/v1/runs", params={"limit": 500}
                ).json()["runs"]
                done = [r for r in runs if r["status"] in TERMINAL]
                if len(done) >= count:
                    return runs
                if time.monotonic() > deadline:
                    raise AssertionError(f"runs did not finish: {json.dumps(runs)[:2000]}")
                time.sleep(0.05)
