"""Where a running daemon's API listens, so the command line finds it even when `run` was
started with `--host`/`--port` instead of the environment's `server:` settings.

The daemon writes `environments/<env>/.rollout/daemon.json` once it serves and removes it on
exit; a file left by a crashed daemon is ignored because its process is gone. Replicas sharing
the folder on one host (PostgreSQL) each write it; it names the last one started.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

FILE_NAME = "daemon.json"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def local_url(host: str, port: int) -> str:
    """The URL to reach a server listening on `host:port` from this machine."""
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def address_file(env_dir: Path) -> Path:
    return env_dir / ".rollout" / FILE_NAME


def write_address(env_dir: Path, url: str) -> None:
    path = address_file(env_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own: replicas sharing the folder on one host may write at the same moment
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    temporary.replace(path)  # readers never see half a file


def clear_address(env_dir: Path) -> None:
    path = address_file(env_dir)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@contextlib.contextmanager
def published(env_dir: Path, host: str, port: int) -> Iterator[None]:
    """`with published(env_dir, host, port):` around serving: the CLI can find this daemon."""
    write_address(env_dir, local_url(host, port))
    try:
        yield
    finally:
        clear_address(env_dir)


def read_address(env_dir: Path) -> str | None:
    """The URL of the daemon running this environment, if one is."""
    try:
        data = json.loads(address_file(env_dir).read_text())
        url, pid = data["url"], int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(url, str) or not _alive(pid):
        return None
    return url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
