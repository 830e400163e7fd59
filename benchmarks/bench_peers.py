"""peers: the same workload against Node-RED and rollout-yaml, in the same run.

The workload: an HTTP POST of an order event → map one field → POST to an App (a Node.js sink,
`benchmarks/sink.js`, the same for both). Node-RED (installed from npm into
`benchmarks/.work/peers/node-red/`, never globally) runs the flow `http in` → `function` (the
mapping) → `http request` → `http response`, so its answer comes after the sink's; it records
nothing. rollout-yaml runs the `e2e` project (SQLite, `runtime.processes: auto`): each event and
run is committed before the 202, each attempt recorded.

Both are driven by the repo's load generator (`benchmarks/load.py`, keep-alive connections
pushing flat out) at 16 and 64 connections, each side in turn per step. Reports each side's
rate (Node-RED: answered req/s; rollout-yaml: delivered events/s at the sink, and accepted/s),
p99 of the answers (Node-RED: the whole request; rollout-yaml: the ingest), CPU ms per event
(user + system of the process tree, from /proc) and rollout-yaml's rate ÷ Node-RED's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_e2e import Runner, _delivery, _percentile, _port, _token, write_project
from benchmarks.bench_recovery import _wait_for
from benchmarks.load import LoadResult, event_body, run_load
from benchmarks.measure import cpu_seconds

NAME = "peers"
CONNECTIONS = (16, 64)
SECONDS = 10.0
NODE_RED = os.environ.get("ROLLOUT_BENCH_NODE_RED", "4")  # the npm version range installed
HERE = Path(__file__).resolve().parent

MAP = """\
const event = msg.payload;
const order = event.payload;
msg.url = env.get("SINK_URL") + "/orders/" + order.order_id;
msg.headers = { "Content-Type": "application/json", "Idempotency-Key": event.id };
const name = order.customer.name;
msg.payload = { text: "Order " + order.order_id + " by " + name + ": " + order.total };
return msg;
"""
ANSWER = "msg.headers = {}; msg.statusCode = 200; msg.payload = { ok: true }; return msg;"

FLOW = [
    {"id": "bench", "type": "tab", "label": "bench"},
    {
        "id": "in",
        "type": "http in",
        "z": "bench",
        "url": "/v1/events",
        "method": "post",
        "upload": False,
        "wires": [["map"]],
    },
    {"id": "map", "type": "function", "z": "bench", "func": MAP, "outputs": 1, "wires": [["send"]]},
    {
        "id": "send",
        "type": "http request",
        "z": "bench",
        "method": "POST",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": "",
        "persist": True,
        "senderr": False,
        "headers": [],
        "wires": [["answer"]],
    },
    {
        "id": "answer",
        "type": "function",
        "z": "bench",
        "func": ANSWER,
        "outputs": 1,
        "wires": [["out"]],
    },
    {
        "id": "out",
        "type": "http response",
        "z": "bench",
        "statusCode": "",
        "headers": {},
        "wires": [],
    },
]

SETTINGS = """\
module.exports = {
  uiHost: "127.0.0.1",
  uiPort: Number(process.env.PORT),
  flowFile: "flows.json",
  httpAdminRoot: false,
  credentialSecret: false,
  logging: { console: { level: "warn", metrics: false, audit: false } },
};
"""


def install(work: Path) -> Path:
    """Node-RED from npm into `work` (once); the path of its `red.js`."""
    red = work / "node_modules" / "node-red" / "red.js"
    if not red.is_file():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"node-red@{NODE_RED}",
            ],
            cwd=work,
            check=True,
        )
    return red


def _version(work: Path) -> str:
    package = work / "node_modules" / "node-red" / "package.json"
    return str(json.loads(package.read_text())["version"])


class NodeSink:
    def __init__(self, workdir: Path) -> None:
        self.port = _port()
        self.result = workdir / f"node-sink-{self.port}.json"
        self.process = subprocess.Popen(
            ["node", str(HERE / "sink.js"), str(self.port), str(self.result)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        data: dict[str, Any] = json.loads(self.result.read_text())
        return data


class NodeRed:
    def __init__(self, red: Path, user_dir: Path, sink_url: str, log: Path) -> None:
        user_dir.mkdir(parents=True, exist_ok=True)
        (user_dir / "flows.json").write_text(json.dumps(FLOW))
        (user_dir / "settings.js").write_text(SETTINGS)
        self.port = _port()
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                "node",
                str(red),
                "--userDir",
                str(user_dir),
                "--settings",
                str(user_dir / "settings.js"),
            ],
            env={**os.environ, "PORT": str(self.port), "SINK_URL": sink_url},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        warm = event_body(-1)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{self.port}/v1/events",
                    content=warm,
                    headers={"Content-Type": "application/json"},
                    timeout=5,
                )
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"Node-RED did not start; see {log}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


async def _load(port: int, offset: int, connections: int, token: str | None, ok: int) -> LoadResult:
    def make(i: int) -> tuple[str, str, bytes]:
        return (str(offset + i), "/v1/events", event_body(offset + i))

    return await run_load(
        "127.0.0.1",
        port,
        make,
        concurrency=connections,
        duration=SECONDS,
        token=token,
        ok_status=ok,
    )


def run(workdir: Path) -> dict[str, Any]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        return {"skipped": "node and npm are needed (apt-get install nodejs npm)"}
    workdir.mkdir(parents=True, exist_ok=True)
    work = workdir / "peers"
    red = install(work / "node-red")
    project = write_project(work / "rollout-project", "auto")
    database = project / "environments/bench/.rollout/state.db"
    token = _token()
    sink = NodeSink(work)
    steps: dict[int, dict[str, Any]] = {}
    loads: dict[tuple[str, int], tuple[LoadResult, float]] = {}
    try:
        node_red = NodeRed(red, work / "node-red-user", sink.url, work / "node-red.log")
        runner = Runner(project, sink.url, work / "rollout.log")
        try:
            for step, connections in enumerate(CONNECTIONS):
                before = cpu_seconds(node_red.process.pid)
                sent = asyncio.run(_load(node_red.port, (2 * step) * 10**7, connections, None, 200))
                loads[("node_red", connections)] = (
                    sent,
                    cpu_seconds(node_red.process.pid) - before,
                )
                before = cpu_seconds(runner.process.pid)
                sent = asyncio.run(
                    _load(runner.port, (2 * step + 1) * 10**7, connections, token, 202)
                )
                _wait_for(database, 0, 60)  # its queue drained: every run finished
                loads[("rollout_yaml", connections)] = (
                    sent,
                    cpu_seconds(runner.process.pid) - before,
                )
        finally:
            node_red.stop()
            runner.stop()
    finally:
        received = sink.stop()
    arrivals: dict[str, float] = received["arrivals"]
    for connections in CONNECTIONS:
        red_load, red_cpu = loads[("node_red", connections)]
        ours, our_cpu = loads[("rollout_yaml", connections)]
        red_rate = red_load.accepted / red_load.seconds
        delivered = _delivery(ours, arrivals)
        steps[connections] = {
            "node_red": {
                "req_per_s": round(red_rate, 1),
                "p99_ms": round(1000 * _percentile(red_load.latencies, 0.99), 2),
                "errors": red_load.errors,
                "cpu_ms_per_event": round(1000 * red_cpu / max(red_load.accepted, 1), 3),
            },
            "rollout_yaml": {
                "delivered_per_s": round(delivered["delivered_per_s"], 1),
                "accepted_per_s": round(delivered["accepted_per_s"], 1),
                "ingest_p99_ms": round(1000 * _percentile(ours.latencies, 0.99), 2),
                "not_delivered": delivered["accepted"] - delivered["delivered"],
                "cpu_ms_per_event": round(1000 * our_cpu / max(delivered["delivered"], 1), 3),
            },
            "ratio_delivered_to_node_red": round(delivered["delivered_per_s"] / red_rate, 3),
        }
    return {
        "node_red_version": _version(work / "node-red"),
        "load": f"benchmarks/load.py, {SECONDS:.0f} s per step, each side in turn",
        "rollout_yaml_processes": "auto",
        **{f"connections_{c}": figures for c, figures in steps.items()},
        "duplicate_keys_at_sink": received["duplicates"],
    }
