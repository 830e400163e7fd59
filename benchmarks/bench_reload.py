"""reload: the running daemon with the generated project (5,000 consumers, 50,000 automations),
one consumer file edited; milliseconds from the write to the new automation being active.

"Active" is observed from outside, as a user would: the admin API answers the new automation
(it is served from the configuration the runner swapped in). The baseline, measured in the
same run, is `validate --env bench` in a fresh process: loading and checking the same
environment from cold.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_e2e import _port
from benchmarks.bench_validate import _cli
from benchmarks.generate import Params, cached_project
from benchmarks.measure import run_fresh, summary

NAME = "reload"
EDITS = 20
ADMIN_TOKEN = "bench-not-a-secret"  # the generated environment's default


def _probe(consumer_file: Path, number: int) -> str:
    """Append a copy of the file's first automation under a new key; return the key."""
    lines = consumer_file.read_text().splitlines()
    start = lines.index("automations:") + 1
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    key = f"reload-probe-{number}"
    block = [f"  {key}:", *lines[start + 1 : end]]
    consumer_file.write_text("\n".join([*lines, *block]) + "\n")
    return key


def run(workdir: Path) -> dict[str, Any]:
    source, info = cached_project(workdir, Params())
    project = workdir / NAME / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(source, project)
    consumer_file = sorted((project / "environments/bench/consumers").glob("*.yaml"))[0]
    consumer = consumer_file.stem

    validate = [str(_cli()), "validate", "--env", "bench", "--project", str(project)]
    baseline = summary([run_fresh(validate) for _ in range(2)])

    port = _port()
    log = (workdir / NAME / "runner.log").open("w")
    started = time.perf_counter()
    daemon = subprocess.Popen(
        [
            *(sys.executable, "-m", "rollout_yaml", "run", "--env", "bench"),
            *("--project", str(project), "--port", str(port), "--log-format", "json"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    reloads: list[float] = []
    try:
        ready = _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200, 120)
        startup = ready - started
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for number in range(EDITS):
                time.sleep(1.0)  # let the previous reload's aftermath settle
                wrote = time.perf_counter()
                key = _probe(consumer_file, number)
                path = f"/admin/v1/automations/{consumer}/{key}"
                active = _wait(lambda p=path: client.get(p).status_code == 200, 120)
                reloads.append((active - wrote) * 1000)
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
    return {
        "project": {k: info[k] for k in ("files", "automations", "consumers")},
        "startup_to_ready_s": round(startup, 2),
        "reload_ms": {
            "min": round(min(reloads), 1),
            "median": round(statistics.median(reloads), 1),
            "p50": round(percentile(reloads, 50), 1),
            "p99": round(percentile(reloads, 99), 1),
            "max": round(max(reloads), 1),
            "all": [round(r, 1) for r in reloads],
        },
        "validate_env_fresh_process": baseline,
        "reload_to_validate": round(
            statistics.median(reloads) / 1000 / baseline["seconds_median"], 2
        ),
        "goals": {"file_edit_p50_under_100ms": percentile(reloads, 50) < 100},
    }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 20 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def _wait(done: Any, timeout: float) -> float:
    """Poll `done()` every 10 ms; the moment it first held."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if done():
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"not done within {timeout} s")
