"""scale: 1, 2 and 3 replicas (`rollout-yaml run` processes) on one PostgreSQL database, events
pushed across them by 32 senders for a fixed time, every run delivered to one sink.

Reports, per replica count, accepted/s, delivered/s (events that reached the sink ÷ time from
the first send to the last arrival), events never delivered, and idempotency keys the sink saw
twice (must be 0: no replica kill here). On a machine with fewer cores than replicas + database
+ sink + senders, replicas compete for the same CPUs: read the ratios to 1 replica as what the
coordination costs, not as what more machines would give.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.bench_e2e import CONCURRENCY, Runner, Sink, _token, write_project
from benchmarks.load import LoadResult, event_body, run_load
from benchmarks.pg import fresh_database, server_version

NAME = "scale"
REPLICAS = (1, 2, 3)
SECONDS = 10.0
DRAIN_SECONDS = 30.0


async def _push(ports: list[int], token: str, duration: float) -> list[LoadResult]:
    """The senders split evenly over the replicas, as a load balancer would spread them."""
    per_replica = max(CONCURRENCY // len(ports), 1)

    def maker(offset: int) -> Any:
        def make(i: int) -> tuple[str, str, bytes]:
            return (str(offset + i), "/v1/events", event_body(offset + i))

        return make

    return list(
        await asyncio.gather(
            *(
                run_load(
                    "127.0.0.1",
                    port,
                    maker(index * 10_000_000),
                    concurrency=per_replica,
                    duration=duration,
                    token=token,
                )
                for index, port in enumerate(ports)
            )
        )
    )


def _one(workdir: Path, project: Path, replicas: int) -> dict[str, Any]:
    with fresh_database() as url:
        sink = Sink(workdir)
        runners: list[Runner] = []
        try:
            for index in range(replicas):
                log = workdir / f"scale-{replicas}-{index}.log"
                runners.append(Runner(project, sink.url, log, url))
            loads = asyncio.run(_push([r.port for r in runners], _token(), SECONDS))
            accepted = sum(load.accepted for load in loads)
            deadline = time.time() + DRAIN_SECONDS
            while time.time() < deadline and _finished(url) < accepted:
                time.sleep(0.5)
        finally:
            for runner in runners:
                runner.stop()
            received = sink.stop()
    arrivals: dict[str, float] = received["arrivals"]
    started = min(load.started for load in loads)
    sent_keys = {key for load in loads for key in load.send_times}
    delivered = [arrivals[k] for k in sent_keys if k in arrivals]
    span = max(delivered) - started if delivered else float("nan")
    return {
        "accepted": accepted,
        "accepted_per_s": round(accepted / max(load.seconds for load in loads), 1),
        "delivered": len(delivered),
        "delivered_per_s": round(len(delivered) / span, 1) if delivered else 0.0,
        "not_delivered": accepted - len(delivered),
        "duplicate_keys_at_sink": received["duplicates"],
        "errors": sum(load.errors for load in loads),
    }


def _finished(url: str) -> int:
    """Runs finished so far (one cheap query every half second while draining)."""

    async def go() -> int:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL")
            )
        finally:
            await conn.close()

    return asyncio.run(go())


def run(workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    project = write_project(workdir / "scale-project")
    results = {f"replicas_{n}": _one(workdir, project, n) for n in REPLICAS}
    one = results["replicas_1"]["delivered_per_s"] or float("nan")
    return {
        "postgres_server": server_version(),
        "cpu_count": os.cpu_count(),
        "seconds_pushed": SECONDS,
        **results,
        "delivered_ratio_to_1": {
            f"replicas_{n}": round(results[f"replicas_{n}"]["delivered_per_s"] / one, 3)
            for n in REPLICAS
        },
        "duplicates_total": sum(r["duplicate_keys_at_sink"] for r in results.values()),
    }
