"""api-write: the running daemon with the generated project (5,000 consumers, 50,000
automations); an automation created over the API, milliseconds until the 201 and until an
event pushed right after it makes its run.

"Matches" is observed from outside: a push to the automation's trigger (a push trigger no other
automation of that consumer uses) answers `runs_queued: 1`. The baseline, measured in the same
run, is `validate --env bench` in a fresh process: loading and checking the same environment
from cold (what a write cost when every change recompiled the environment).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_e2e import _port
from benchmarks.bench_reload import ADMIN_TOKEN, _wait, percentile
from benchmarks.bench_validate import _cli
from benchmarks.generate import Params, cached_project
from benchmarks.measure import run_fresh, summary

NAME = "api-write"
WRITES = 100
CONSUMER_APPS = ("brighthub", "swifthub")


def _consumer(project: Path) -> str:
    """A consumer with credentials for both Apps the written automation uses."""
    for path in sorted((project / "environments/bench/consumers").glob("*.yaml")):
        text = path.read_text()
        if all(f"\n  {app}:\n" in text for app in CONSUMER_APPS):
            return path.stem
    raise RuntimeError("no consumer with brighthub and swifthub credentials")


def _automation(consumer: str, number: int) -> dict[str, Any]:
    return {
        "key": f"api-write-{number}",
        "consumer": consumer,
        "trigger": {"app": "brighthub", "trigger": "issue-synced"},
        "filter": "payload.state == 'open'",
        "action": {
            "app": "swifthub",
            "action": "add-invoice-note",
            "credential": "swifthub",
            "input": {"invoice_id": number, "body": "Issue {{ payload.title }}"},
        },
    }


def _event(consumer: str, number: int) -> dict[str, Any]:
    return {
        "consumer": consumer,
        "app": "brighthub",
        "trigger": "issue-synced",
        "id": f"api-write-{number}",
        "payload": {"issue_id": number, "title": f"#{number}", "state": "open"},
    }


def run(workdir: Path) -> dict[str, Any]:
    source, info = cached_project(workdir, Params())
    project = workdir / NAME / "project"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(source, project)
    consumer = _consumer(project)

    validate = [str(_cli()), "validate", "--env", "bench", "--project", str(project)]
    baseline = summary([run_fresh(validate) for _ in range(2)])

    port = _port()
    log = (workdir / NAME / "runner.log").open("w")
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
    writes: list[float] = []
    matched: list[float] = []
    try:
        _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200, 180)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for number in range(WRITES):
                time.sleep(0.05)
                started = time.perf_counter()
                created = client.post("/admin/v1/automations", json=_automation(consumer, number))
                answered = time.perf_counter()
                if created.status_code != 201:
                    raise RuntimeError(f"POST answered {created.status_code}: {created.text}")
                pushed = client.post("/admin/v1/events", json=_event(consumer, number))
                done = time.perf_counter()
                if pushed.json().get("runs_queued") != number + 1:  # every one made so far
                    raise RuntimeError(f"the push did not match: {pushed.text}")
                writes.append((answered - started) * 1000)
                matched.append((done - started) * 1000)
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
    return {
        "project": {k: info[k] for k in ("files", "automations", "consumers")},
        "writes": WRITES,
        "post_to_201_ms": _figures(writes),
        "post_to_matching_push_ms": _figures(matched),
        "validate_env_fresh_process": baseline,
        "goals": {"api_write_p99_under_50ms": percentile(writes, 99) < 50},
    }


def _figures(values: list[float]) -> dict[str, Any]:
    return {
        "p50": round(percentile(values, 50), 1),
        "p99": round(percentile(values, 99), 1),
        "max": round(max(values), 1),
        "all": [round(v, 1) for v in values],
    }
