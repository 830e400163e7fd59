"""processes: the `e2e` workload (SQLite, every event and run recorded) with `runtime.processes`
1 and 2 in the same run: delivered/s flat out, p99 at 500 events/s offered, the daemon's CPU ms
per event (all its processes), and the ratio of 2 to 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import bench_e2e

NAME = "processes"


def run(workdir: Path) -> dict[str, Any]:
    one = _summary(bench_e2e.measure(workdir, "sqlite", "sqlite", processes=1))
    two = _summary(bench_e2e.measure(workdir, "sqlite", "sqlite", processes=2))
    return {
        "processes_1": one,
        "processes_2": two,
        "two_to_one": {
            "delivered_per_s": round(two["delivered_per_s"] / one["delivered_per_s"], 3),
            "cpu_ms_per_event": round(two["cpu_ms_per_event"] / one["cpu_ms_per_event"], 3),
        },
    }


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    high, steady = figures["throughput"], figures["at_500_per_s"]
    return {
        "delivered_per_s": high["delivered_per_s"],
        "accepted_per_s": high["accepted_per_s"],
        "cpu_ms_per_event": high["cpu_ms_per_event"],
        "p50_ms_at_500": steady["latency_p50_ms"],
        "p99_ms_at_500": steady["latency_p99_ms"],
        "cpu_ms_per_event_at_500": steady["cpu_ms_per_event"],
        "lost": high["accepted"] - high["delivered"],
        "duplicate_keys_at_sink": figures["duplicate_keys_at_sink"],
    }
