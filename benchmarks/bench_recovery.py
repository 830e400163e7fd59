"""recovery: a backlog of 10,000 queued runs left by a `kill -9` of the real daemon, drained by
the restarted one, against the steady rate of the same run.

1. **Steady**: the `e2e` daemon and sink, senders pushing flat out for 10 s: delivered/s.
2. **Backlog**: a daemon whose sink never answers (a socket that accepts and never reads): its
   workers hang on their first sends while BACKLOG events are accepted (every one committed with
   its run before its 202); then `kill -9`.
3. **Recovery**: a daemon on the same SQLite file and the real sink, nothing pushed: the time from
   its start to the last run arriving at the sink, and the drain rate (runs at the sink ÷ first
   to last arrival). `drain_to_steady` = drain rate ÷ steady delivered/s.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_e2e import (
    CONCURRENCY,
    THROUGHPUT_SECONDS,
    Runner,
    Sink,
    _delivery,
    _push,
    _token,
    write_project,
)
from benchmarks.load import event_body, run_load

NAME = "recovery"
BACKLOG = 10_000
OFFSET = 50_000_000  # the backlog's order ids, apart from the steady phase's


def _black_hole() -> socket.socket:
    """A listening socket nobody reads: connections are accepted by the kernel, requests never
    answered, so every worker of a daemon sending there waits."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    return sock


async def _push_total(port: int, token: str, total: int) -> Any:
    def make(i: int) -> tuple[str, str, bytes]:
        return (str(OFFSET + i), "/v1/events", event_body(OFFSET + i))

    return await run_load(
        "127.0.0.1", port, make, concurrency=CONCURRENCY, total=total, token=token
    )


def _unfinished(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN ('queued', 'retrying', 'running')"
        ).fetchone()
    return int(row[0])


def _wait_for(path: Path, count: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and _unfinished(path) > count:
        time.sleep(0.2)


def run(workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    project = write_project(workdir / "recovery-project")
    database = project / "environments/bench/.rollout/state.db"
    token = _token()

    sink = Sink(workdir)
    try:
        steady_runner = Runner(project, sink.url, workdir / "recovery-steady.log")
        try:
            steady = asyncio.run(
                _push(steady_runner.port, token, 0, duration=THROUGHPUT_SECONDS, rate=None)
            )
            _wait_for(database, 0, 60)
        finally:
            steady_runner.stop()

        hole = _black_hole()
        stuck = Runner(
            project, f"http://127.0.0.1:{hole.getsockname()[1]}", workdir / "recovery-killed.log"
        )
        try:
            pushed = asyncio.run(_push_total(stuck.port, token, BACKLOG))
        finally:
            stuck.kill()
            hole.close()
        backlog = _unfinished(database)

        restarted_at = time.time()
        recovering = Runner(project, sink.url, workdir / "recovery-restarted.log")
        ready_at = time.time()
        try:
            _wait_for(database, 0, 600)
            drained_at = time.time()
            left = _unfinished(database)
        finally:
            recovering.stop()
    finally:
        received = sink.stop()

    arrivals: dict[str, float] = received["arrivals"]
    high = _delivery(steady, arrivals)
    recovered = sorted(t for k, t in arrivals.items() if int(k) >= OFFSET)
    span = recovered[-1] - recovered[0] if len(recovered) > 1 else float("nan")
    drain_rate = len(recovered) / span if recovered else 0.0
    return {
        "steady": {
            "accepted_per_s": round(high["accepted_per_s"], 1),
            "delivered_per_s": round(high["delivered_per_s"], 1),
        },
        "backlog": {
            "accepted_before_kill": pushed.accepted,
            "runs_left_queued": backlog,
        },
        "recovery": {
            "start_to_ready_s": round(ready_at - restarted_at, 2),
            "start_to_drained_s": round(drained_at - restarted_at, 2),
            "runs_delivered": len(recovered),
            "drain_per_s": round(drain_rate, 1),
            "runs_left_unfinished": left,
        },
        "drain_to_steady": round(drain_rate / high["delivered_per_s"], 3),
        "duplicate_keys_at_sink": received["duplicates"],
        "goals": {
            "drain >= 80 % of steady": drain_rate >= 0.8 * high["delivered_per_s"],
            "every backlog run delivered": len(recovered) == pushed.accepted and left == 0,
        },
    }
