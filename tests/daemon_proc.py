"""The real daemon, started as a user starts it: `rollout-yaml run --env test` in a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from runner_env import SECRETS, environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consumer_token(consumer: str, *, ttl: int = 600, **overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": consumer, "iat": now, "exp": now + ttl, **overrides}
    return jwt.encode(claims, SECRETS["ROLLOUT_JWT_SECRET"], algorithm="HS512")


class Daemon:
    def __init__(
        self,
        project: Path,
        sink_url: str,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        env_name: str = "test",
    ) -> None:
        self.project = project
        self.env_name = env_name
        self.port = port or free_port()
        self.env = {**os.environ, **environ(sink_url), **(extra_env or {})}
        self.env.pop("CI", None)
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the daemon
            prefix="rollout-daemon-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Daemon:
        """Wait for `/readyz`. The bound is generous: three replicas importing and compiling
        at once on a loaded 2-core machine took 20 s; a daemon that fails exits and is caught
        at once, so only a hang costs the whole wait."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rollout_yaml",
                "run",
                "--env",
                self.env_name,
                "--project",
                str(self.project),
                "--port",
                str(self.port),
                "--log-format",
                "json",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def client(self, consumer: str | None = None, token: str | None = None) -> httpx.Client:
        headers = {}
        if token or consumer:
            headers["Authorization"] = f"Bearer {token or consumer_token(consumer or '')}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {SECRETS['ROLLOUT_ADMIN_TOKEN']}"},
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rollout_yaml", *args, "--project", str(self.project)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
