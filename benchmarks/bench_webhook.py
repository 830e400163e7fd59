"""webhook: the e2e workload, but events arrive as HMAC-signed deliveries at an automation's
webhook URL (`POST /webhooks/partner/order-paid/<hookId>`) instead of `POST /v1/events`.

Same senders, same sink, same figures as `e2e`, so the two read side by side: sustained
delivered events/s, p50/p99 delivery→action latency at a fixed offered rate, and the sink's own
direct throughput measured in the same run as the baseline.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_e2e import (
    CONCURRENCY,
    CONNECTORS,
    LATENCY_RATE,
    LATENCY_SECONDS,
    THROUGHPUT_SECONDS,
    Runner,
    Sink,
    _delivery,
    _sink_direct,
    _token,
)
from benchmarks.load import LoadResult, Request, run_load

NAME = "webhook"
SECRET = "bench-webhook-secret-4f1c9a"
HEADER = "X-Partner-Hmac-Sha256"

PARTNER = f"""\
app: partner
name: Partner App
version: 1.0.0
base_url: http://partner.invalid
triggers:
  order-paid:
    name: Order Paid
    payload_schema:
      type: object
      required: [order_id, total]
      properties:
        order_id: {{ type: integer }}
        total: {{ type: number }}
        customer: {{ type: object, properties: {{ name: {{ type: string }} }} }}
    webhook:
      verify:
        scheme: hmac
        header: {HEADER}
        encoding: base64
        secret: "{{{{ app.webhook_secret }}}}"
      id: "to_string(id)"
      payload: "{{order_id: id, total: total, customer: customer}}"
"""

ENVIRONMENT = f"""\
environment: bench
release: live
database: sqlite
server: {{ host: 127.0.0.1, port: 8080 }}
auth: {{ jwt_secret: "${{BENCH_JWT_SECRET}}" }}
apps:
  sink: {{ base_url: "${{SINK_URL}}" }}
  partner: {{ webhook_secret: "${{BENCH_WEBHOOK_SECRET:-{SECRET}}}" }}
runtime: {{ workers: 16, dry_run: false }}
"""

CONSUMER = """\
consumer: c1
credentials:
  sink: { app: sink, values: { token: "${C1_SINK_TOKEN:-bench-token}" } }
automations:
  deliver:
    trigger: { app: partner, trigger: order-paid }
    action:
      app: sink
      action: deliver
      credential: sink
      input:
        order_id: "{{ payload.order_id }}"
        text: "Order {{ payload.order_id }} by {{ payload.customer.name }}: {{ payload.total }}"
"""


def write_project(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    (root / "connectors").mkdir(parents=True)
    (root / "connectors" / "sink.yaml").write_text(CONNECTORS["sink.yaml"])
    (root / "connectors" / "partner.yaml").write_text(PARTNER)
    env = root / "environments" / "bench"
    (env / "consumers").mkdir(parents=True)
    (env / "environment.yaml").write_text(ENVIRONMENT)
    (env / "consumers" / "c1.yaml").write_text(CONSUMER)
    return root


def _hook_path(port: int) -> str:
    """The automation's webhook path, once the runner has made its hookId."""
    deadline = time.time() + 30
    headers = {"Authorization": f"Bearer {_token()}"}
    while time.time() < deadline:
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/automations/deliver", headers=headers)
        url = answer.json().get("webhook_url") if answer.status_code == 200 else None
        if url:
            return "/" + url.split("/", 3)[3]
        time.sleep(0.1)
    raise RuntimeError("the automation has no webhook_url")


def _signed(i: int, path: str) -> Request:
    body = json.dumps({"id": i, "total": 42.5, "customer": {"name": "Ada"}}).encode()
    mac = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    return (str(i), path, body, {HEADER: base64.b64encode(mac).decode()})


async def _deliver(
    port: int, path: str, offset: int, *, duration: float, rate: float | None
) -> LoadResult:
    return await run_load(
        "127.0.0.1",
        port,
        lambda i: _signed(offset + i, path),
        concurrency=CONCURRENCY,
        duration=duration,
        rate=rate,
        ok_status=200,
    )


def run(workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    project = write_project(workdir / "webhook-project")

    baseline_sink = Sink(workdir)
    direct = asyncio.run(_sink_direct(baseline_sink.port))
    baseline_sink.stop()
    sink_rps = direct.accepted / direct.seconds

    sink = Sink(workdir)
    runner = Runner(project, sink.url, workdir / "webhook-runner.log")
    try:
        path = _hook_path(runner.port)
        throughput = asyncio.run(
            _deliver(runner.port, path, 0, duration=THROUGHPUT_SECONDS, rate=None)
        )
        sink.wait_for(throughput.accepted)  # the backlog drained before the latency run
        time.sleep(1)
        latency = asyncio.run(
            _deliver(runner.port, path, 10_000_000, duration=LATENCY_SECONDS, rate=LATENCY_RATE)
        )
        time.sleep(3)
    finally:
        runner.stop()
        received = sink.stop()
    arrivals: dict[str, float] = received["arrivals"]
    high = _delivery(throughput, arrivals)
    steady = _delivery(latency, arrivals)
    return {
        "store": "sqlite",
        "verification": "hmac-sha256, base64",
        "concurrency": CONCURRENCY,
        "sink_direct_rps": round(sink_rps, 1),
        "throughput": {k: round(v, 2) for k, v in high.items()},
        "fraction_of_sink": round(high["delivered_per_s"] / sink_rps, 3),
        "at_500_per_s": {k: round(v, 2) for k, v in steady.items()},
        "rejected": throughput.errors + latency.errors,
        "duplicate_keys_at_sink": received["duplicates"],
    }


if __name__ == "__main__":
    print(json.dumps(run(Path(__file__).parent / ".work"), indent=2))
