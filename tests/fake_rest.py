"""json-server (npm), a stock fake REST API nobody here wrote, standing in for an App: it pages
with `_page`/`_limit` and `_start`/`_limit`, sends `first`, `next` and `last` in a Link header,
and compresses its answers (br when asked). Installed once into `tests/.node/` (git-ignored)
and started on a port the OS chose; without node and npm the tests that need it skip, except
under CI=true."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from daemon_proc import free_port
from octokit import FOLDER, npm_package

PACKAGE = "json-server@0.17.4"
BIN = FOLDER / "node_modules" / "json-server" / "lib" / "cli" / "bin.js"


class FakeRest:
    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        npm_package(PACKAGE, BIN)
        db = folder / "db.json"
        db.write_text(json.dumps(data))
        self.port = free_port()
        self.process = subprocess.Popen(
            ["node", str(BIN), "--host", "127.0.0.1", "--port", str(self.port), str(db)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/db", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("json-server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
