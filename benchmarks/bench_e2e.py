"""e2e: events pushed over HTTP by concurrent senders → one action each → a fast local sink.

Reports sustained delivered events/s, p50/p99 event→action latency at a fixed offered rate,
and the sink's own direct throughput measured in the same run (the baseline), with the
runner's throughput as a fraction of it. Every event is durably stored and every run fully
recorded (SQLite, the default store; `e2e-postgres` runs the same on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from benchmarks.load import LoadResult, event_body, run_load
from benchmarks.measure import cpu_seconds

NAME = "e2e"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
CONCURRENCY = 32
THROUGHPUT_SECONDS = 10.0
LATENCY_RATE = 500.0
LATENCY_SECONDS = 10.0

CONNECTORS = {
    "partner.yaml": """\
app: partner
name: Partner App
version: 1.0.0
base_url: http://partner.invalid
triggers:
  order-created:
    name: Order Created
    payload_schema:
      type: object
      required: [order_id, total]
      properties:
        order_id: { type: integer }
        total: { type: number }
        customer: { type: object, properties: { name: { type: string } } }
    push: {}
""",
    "sink.yaml": """\
app: sink
name: Sink
version: 1.0.0
base_url: https://sink.invalid
auth: { type: bearer }
defaults:
  timeout: 10s
  retry: { max_attempts: 5, base: 200ms, max: 2s }
actions:
  deliver:
    name: Deliver
    input_schema:
      type: object
      required: [order_id, text]
      properties: { order_id: { type: integer }, text: { type: string } }
    request:
      method: POST
      path: /orders/{{ input.order_id }}
      json: { text: "{{ input.text }}" }
    idempotency_header: Idempotency-Key
""",
}

ENVIRONMENT = """\
environment: bench
release: live
database: "${BENCH_DATABASE:-sqlite}"
server: { host: 127.0.0.1, port: 8080 }
auth: { jwt_secret: "${BENCH_JWT_SECRET}" }
apps:
  sink: { base_url: "${SINK_URL}" }
runtime: { workers: 16, dry_run: false }
"""

CONSUMER = """\
consumer: c1
credentials:
  sink: { app: sink, values: { token: "${C1_SINK_TOKEN:-bench-token}" } }
automations:
  deliver:
    trigger: { app: partner, trigger: order-created }
    action:
      app: sink
      action: deliver
      credential: sink
      input:
        order_id: "{{ payload.order_id }}"
        text: "Order {{ payload.order_id }} by {{ payload.customer.name }}: {{ payload.total }}"
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(root: Path, processes: int | str = 1) -> Path:
    if root.exists():
        shutil.rmtree(root)
    (root / "connectors").mkdir(parents=True)
    for name, text in CONNECTORS.items():
        (root / "connectors" / name).write_text(text)
    env = root / "environments" / "bench"
    (env / "consumers").mkdir(parents=True)
    (env / "environment.yaml").write_text(
        ENVIRONMENT.replace("workers: 16,", f"workers: 16, processes: {processes},")
    )
    (env / "consumers" / "c1.yaml").write_text(CONSUMER)
    return root


class Sink:
    def __init__(self, workdir: Path) -> None:
        self.port = _port()
        self.result = workdir / f"sink-{self.port}.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sink", str(self.port), str(self.result)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arrived(self) -> int:
        """How many orders have reached the sink so far."""
        return int(httpx.get(f"{self.url}/count").text)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        """Until `count` orders have arrived: the next phase must not start behind a backlog
        of this one (flat out, the daemon accepts faster than it delivers)."""
        deadline = time.time() + timeout
        while time.time() < deadline and self.arrived() < count:
            time.sleep(0.2)

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        data: dict[str, Any] = json.loads(self.result.read_text())
        return data


class Runner:
    def __init__(self, project: Path, sink_url: str, log: Path, database: str = "sqlite") -> None:
        self.port = _port()
        env = {
            **os.environ,
            "BENCH_JWT_SECRET": JWT_SECRET,
            "SINK_URL": sink_url,
            "BENCH_DATABASE": database,
        }
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rollout_yaml",
                "run",
                "--env",
                "bench",
                "--project",
                str(project),
                "--port",
                str(self.port),
                "--log-format",
                "json",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"runner did not start; see {log}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log.close()

    def kill(self) -> None:
        """`kill -9`: no drain, no lease released, nothing flushed but what was committed."""
        self.process.kill()
        self.process.wait(60)
        self.log.close()


def _token() -> str:
    now = int(time.time())
    return jwt.encode({"sub": "c1", "iat": now, "exp": now + 3600}, JWT_SECRET, algorithm="HS512")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sink_direct(port: int) -> LoadResult:
    def make(i: int) -> tuple[str, str, bytes]:
        return (str(i), f"/orders/{i}", b'{"text":"direct"}')

    return await run_load(
        "127.0.0.1", port, make, concurrency=CONCURRENCY, duration=5.0, ok_status=200
    )


async def _push(
    port: int, token: str, offset: int, *, duration: float, rate: float | None
) -> LoadResult:
    def make(i: int) -> tuple[str, str, bytes]:
        return (str(offset + i), "/v1/events", event_body(offset + i))

    return await run_load(
        "127.0.0.1", port, make, concurrency=CONCURRENCY, duration=duration, rate=rate, token=token
    )


def _delivery(sent: LoadResult, arrivals: dict[str, float]) -> dict[str, float]:
    latencies = [(arrivals[k] - t) * 1000 for k, t in sent.send_times.items() if k in arrivals]
    delivered = [arrivals[k] for k in sent.send_times if k in arrivals]
    span = (max(delivered) - sent.started) if delivered else float("nan")
    return {
        "sent": sent.sent,
        "accepted": sent.accepted,
        "delivered": len(delivered),
        "accepted_per_s": sent.accepted / sent.seconds,
        "delivered_per_s": len(delivered) / span if delivered else 0.0,
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p99_ms": _percentile(latencies, 0.99),
        "latency_mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


def run(workdir: Path) -> dict[str, Any]:
    return measure(workdir, "sqlite", "sqlite")


def measure(workdir: Path, database: str, label: str, processes: int | str = 1) -> dict[str, Any]:
    """The e2e figures of one store: `database` is the environment's `database:` setting,
    `processes` its `runtime.processes`."""
    workdir.mkdir(parents=True, exist_ok=True)
    project = write_project(workdir / "e2e-project", processes)

    baseline_sink = Sink(workdir)
    direct = asyncio.run(_sink_direct(baseline_sink.port))
    baseline_sink.stop()
    sink_rps = direct.accepted / direct.seconds

    sink = Sink(workdir)
    runner = Runner(project, sink.url, workdir / f"e2e-runner-{label}.log", database)
    token = _token()
    try:
        cpu_start = cpu_seconds(runner.process.pid)
        throughput = asyncio.run(
            _push(runner.port, token, 0, duration=THROUGHPUT_SECONDS, rate=None)
        )
        sink.wait_for(throughput.accepted)  # the backlog drained before the latency run
        time.sleep(1)
        cpu_middle = cpu_seconds(runner.process.pid)
        latency = asyncio.run(
            _push(runner.port, token, 10_000_000, duration=LATENCY_SECONDS, rate=LATENCY_RATE)
        )
        time.sleep(3)
        cpu_end = cpu_seconds(runner.process.pid)
    finally:
        runner.stop()
        received = sink.stop()
    arrivals: dict[str, float] = received["arrivals"]
    high = _delivery(throughput, arrivals)
    steady = _delivery(latency, arrivals)
    # the daemon's CPU time over each phase (its drain included) per event delivered in it
    high["cpu_ms_per_event"] = 1000 * (cpu_middle - cpu_start) / max(high["delivered"], 1)
    steady["cpu_ms_per_event"] = 1000 * (cpu_end - cpu_middle) / max(steady["delivered"], 1)
    return {
        "store": label,
        "processes": processes,
        "concurrency": CONCURRENCY,
        "sink_direct_rps": round(sink_rps, 1),
        "throughput": {k: round(v, 2) for k, v in high.items()},
        "fraction_of_sink": round(high["delivered_per_s"] / sink_rps, 3),
        "at_500_per_s": {k: round(v, 2) for k, v in steady.items()},
        "duplicate_keys_at_sink": received["duplicates"],
        "goals": {
            "delivered_per_s >= 1000": high["delivered_per_s"] >= 1000,
            "p99 < 20 ms at 500/s": steady["latency_p99_ms"] < 20,
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).parent / ".work"), indent=2))
