"""GitHub's own webhook signing library, `@octokit/webhooks-methods` from npm, run with node:
installed once into `tests/.node/` (git-ignored) and asked to sign and verify in one node
process per batch. Without node or npm the tests that need it skip, except under CI=true,
where they fail (CI installs node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "@octokit/webhooks-methods@6"
FOLDER = Path(__file__).parent / ".node"

SCRIPT = """
import { sign, verifyWithFallback } from "@octokit/webhooks-methods";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const job of JSON.parse(input)) {
  out.push(job.signature === undefined
    ? await sign(job.secret, job.payload)
    : await verifyWithFallback(job.secret, job.payload, job.signature, job.others));
}
process.stdout.write(JSON.stringify(out));
"""


def npm_package(package: str, installed: Path) -> None:
    """`npm install` `package` into `tests/.node/` unless `installed` (a path inside it) is
    there already. Without node and npm: skip, or fail under CI=true."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"node and npm are needed for {package}")
        pytest.skip("node and npm are not installed")
    if not installed.exists():
        FOLDER.mkdir(exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
                str(FOLDER),
                package,
            ],
            check=True,
            timeout=300,
        )


@cache
def require() -> Path:
    npm_package(PACKAGE, FOLDER / "node_modules" / "@octokit" / "webhooks-methods")
    return FOLDER


def run(jobs: list[dict[str, Any]]) -> list[Any]:
    folder = require()
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SCRIPT],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        cwd=folder,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout))


def sign(secret: str, payload: str) -> str:
    """`X-Hub-Signature-256` as octokit computes it."""
    return str(run([{"secret": secret, "payload": payload}])[0])


def verify_with_fallback(secret: str, payload: str, signature: str, others: list[str]) -> bool:
    """octokit's own verdict with a secret and its fallbacks (rotation)."""
    job = {"secret": secret, "payload": payload, "signature": signature, "others": others}
    return bool(run([job])[0])
