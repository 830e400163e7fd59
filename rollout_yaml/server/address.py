"""Where a running daemon's API listens, and which daemon it is, so that the command line talks
to this environment's daemon and no other process.

The daemon writes `environments/<env>/.rollout/daemon.json` once it serves: its URL, its pid,
the environment's name and a random instance id, which it also answers at `/healthz`. It
removes the file on exit; a file left by a crashed daemon is ignored because its process is
gone. The CLI reads the file, checks that the process at the URL answers with the same
instance id, and only then sends the admin token (`cli/daemon_link.py`); it never guesses an
address from `server.port`, where on a shared host another environment's daemon may listen.
Replicas sharing the folder on one host (PostgreSQL) each write it; it names the last started.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "daemon.json"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class DaemonAddress:
    url: str
    pid: int
    environment: str
    instance: str


def local_url(host: str, port: int) -> str:
    """The URL to reach a server listening on `host:port` from this machine."""
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def address_file(env_dir: Path) -> Path:
    return env_dir / ".rollout" / FILE_NAME


def write_address(env_dir: Path, address: DaemonAddress) -> None:
    path = address_file(env_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: replicas sharing the folder on one host may write at the same moment
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    data = {
        "url": address.url,
        "pid": address.pid,
        "environment": address.environment,
        "instance": address.instance,
    }
    temporary.write_text(json.dumps(data))
    temporary.replace(path)  # readers never see half a file


def clear_address(env_dir: Path) -> None:
    path = address_file(env_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@contextlib.contextmanager
def published(
    env_dir: Path, host: str, port: int, environment: str, instance: str
) -> Iterator[None]:
    """`with published(...):` around serving: the CLI can find and recognise this daemon."""
    write_address(env_dir, DaemonAddress(local_url(host, port), os.getpid(), environment, instance))
    try:
        yield
    finally:
        clear_address(env_dir)


def read_address(env_dir: Path, environment: str) -> DaemonAddress | None:
    """The daemon running `environment` from this folder, if one is."""
    try:
        data = json.loads(address_file(env_dir).read_text())
        found = DaemonAddress(
            str(data["url"]), int(data["pid"]), str(data["environment"]), str(data["instance"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if found.environment != environment or not _alive(found.pid):
        return None
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
