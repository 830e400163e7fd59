"""A real browser for the page tests: Debian's chromium driven by Playwright for Python.

Never `playwright install`: the browser is the system's `/usr/bin/chromium` (`.ci/run` installs
it with apt). Without it the page tests skip with a message, except under `CI=true`, where a
missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("ROLLOUT_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "ui"


def require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"no chromium at {CHROMIUM}: `apt-get install -y chromium` to run the page tests"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)  # called at import, for the whole file


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)


def screenshot(page: Any, name: str) -> None:
    """Write docs/ui/<name>.png when ROLLOUT_UI_SCREENSHOTS=1 asks for it (so that ordinary
    runs leave the tracked pictures alone)."""
    if os.environ.get("ROLLOUT_UI_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(target.with_suffix(".tmp.png")), full_page=True)
    shutil.move(target.with_suffix(".tmp.png"), target)
