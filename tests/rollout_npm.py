"""Rollout's published npm packages for the drop-in tests, installed once into a git-ignored
folder under `tests/.node/` and kept between runs (a marker file records what was installed).
Without node or npm, or with the registry unreachable, the tests skip with the reason, except
under CI=true, where that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parent / ".node"


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@cache
def _install(folder: Path, packages: tuple[str, ...], overrides: str) -> str | None:
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        return "node and npm are not installed"
    marker = folder / "installed.json"
    wanted = {"packages": list(packages), "overrides": json.loads(overrides)}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"private": True, "overrides": wanted["overrides"]}
    (folder / "package.json").write_text(json.dumps(manifest))
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--silent", "--legacy-peer-deps", *packages],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return f"npm could not install {', '.join(packages)}: {done.stderr.strip()[-500:]}"
    marker.write_text(json.dumps(wanted))
    return None


def require(name: str, packages: tuple[str, ...], overrides: dict[str, str] | None = None) -> Path:
    """`tests/.node/<name>/node_modules` with `packages` installed (skips or fails without)."""
    folder = ROOT / name
    reason = _install(folder, packages, json.dumps(overrides or {}, sort_keys=True))
    if reason is not None:
        unavailable(reason)
    return folder / "node_modules"
