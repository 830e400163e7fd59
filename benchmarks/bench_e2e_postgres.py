"""e2e-postgres: the `e2e` benchmark on PostgreSQL, next to the same benchmark on SQLite run
just before it (ratios from one run; the machine is shared and noisy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import bench_e2e
from benchmarks.pg import fresh_database, server_version

NAME = "e2e-postgres"


def run(workdir: Path) -> dict[str, Any]:
    sqlite = bench_e2e.measure(workdir, "sqlite", "sqlite")
    with fresh_database() as url:
        postgres = bench_e2e.measure(workdir, url, "postgresql")
    pg, lite = _summary(postgres), _summary(sqlite)
    return {
        "postgres_server": server_version(),
        "postgresql": pg,
        "sqlite": lite,
        "postgresql_to_sqlite": {
            "delivered_per_s": round(pg["delivered_per_s"] / lite["delivered_per_s"], 3),
            "p99_ms_at_500": round(pg["p99_ms_at_500"] / lite["p99_ms_at_500"], 3),
        },
    }


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    high, steady = figures["throughput"], figures["at_500_per_s"]
    return {
        "delivered_per_s": high["delivered_per_s"],
        "accepted_per_s": high["accepted_per_s"],
        "delivered": high["delivered"],
        "accepted": high["accepted"],
        "p50_ms_at_500": steady["latency_p50_ms"],
        "p99_ms_at_500": steady["latency_p99_ms"],
        "duplicate_keys_at_sink": figures["duplicate_keys_at_sink"],
        "fraction_of_sink": figures["fraction_of_sink"],
    }
