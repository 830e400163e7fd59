"""A newcomer's first minutes: `make run` to a healthy `/healthz`, and `make test`'s install,
each from a fresh `git clone` of this repository (HEAD), timed with a wall clock.

`make run` installs only the runtime dependencies (`pip install -e .`); `make test` installs the
`dev` extra too. The ratio of the two installs is the figure to compare across machines.
Both use the machine's pip cache and package index as they are (a first install ever on a new
machine also downloads every wheel). The daemon runs on a free port (`RUN_ARGS`), not 8080.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

NAME = "fresh_clone"
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clone(workdir: Path, name: str) -> Path:
    target = workdir / name
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    return target


def _environment() -> dict[str, str]:
    """The caller's environment without its virtualenv (a newcomer has none active)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "ROLLOUT_"))}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
    )
    return env


def time_make_run(clone: Path) -> dict[str, float]:
    """Seconds from `make run` to the first 200 from `/healthz`, and how many of them the
    install took (until the daemon process started)."""
    port = _free_port()
    log = (clone / "make-run.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", "run", f"RUN_ARGS=--port {port}"],
        cwd=clone,
        env=_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # make and the daemon it starts stop together
    )
    installed = None
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"make run exited {process.returncode}; see {log.name}")
            if installed is None and (clone / ".venv" / ".installed-run").exists():
                installed = time.perf_counter() - started
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        healthy = time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    return {"healthy_s": round(healthy, 1), "install_s": round(installed or healthy, 1)}


def time_test_install(clone: Path) -> float:
    """Seconds `make test` spends installing before pytest starts (its stamp target)."""
    started = time.perf_counter()
    subprocess.run(
        ["make", ".venv/.installed-dev"],
        cwd=clone,
        env=_environment(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return round(time.perf_counter() - started, 1)


def run(workdir: Path) -> dict[str, Any]:
    """Each install twice, in the order run, test, test, run: the pip cache one install warms
    helps the next, so each kind is measured both first and second; the lower figure counts."""
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, float]] = []
    tests: list[float] = []
    for kind in ("run", "test", "test", "run"):
        clone = _clone(workdir, f"clone-{kind}")
        if kind == "run":
            runs.append(time_make_run(clone))
        else:
            tests.append(time_test_install(clone))
        shutil.rmtree(clone, ignore_errors=True)
    best_run = min(runs, key=lambda r: r["healthy_s"])
    best_test = min(tests)
    return {
        "make_run": {**best_run, "all_healthy_s": [r["healthy_s"] for r in runs]},
        "make_test_install": {"seconds": best_test, "all_s": tests},
        "ratio": {"run_install_vs_test_install": round(best_run["install_s"] / best_test, 2)},
    }
