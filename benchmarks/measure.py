"""Time and peak memory of one command in a fresh process, plus small statistics helpers.

A child's `ru_maxrss` on Linux starts at the peak RSS of the process that forked it (the memory
map it had before `exec`), so the harness, with rich and pstats loaded, would raise the floor of
every figure. A tiny wrapper (`python -S`, nothing imported) spawns the command instead, reaps it
with `os.wait4` (the usage of exactly that child) and reports time and peak memory as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WRAPPER = """
import os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as out:
    out.write('{"seconds": %r, "maxrss": %d, "exit_code": %d}' % (
        seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)))
"""

# ru_maxrss is in KiB on Linux, in bytes on macOS.
_MAXRSS_TO_MIB = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_mib: float
    exit_code: int


def run_fresh(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    stdout: Path | None = None,
    timeout: float = 900.0,
) -> Measurement:
    """Run `cmd` in a new process: wall time from spawn to exit, and that process's peak RSS.

    With `stdout`, the output goes to that file and stderr next to it (`.stderr`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        wrapped = [sys.executable, "-S", "-c", WRAPPER, str(report), *(str(c) for c in cmd)]
        out = stdout.open("wb") if stdout else subprocess.DEVNULL
        err = stdout.with_suffix(".stderr").open("wb") if stdout else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(wrapped, stdout=out, stderr=err, start_new_session=True)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the wrapper and the command it runs
                proc.wait()
                raise
        finally:
            for f in (out, err):
                if not isinstance(f, int):
                    f.close()
        if proc.returncode != 0 or not report.is_file():
            raise RuntimeError(f"measuring {cmd[0]} failed (wrapper exit {proc.returncode})")
        data = json.loads(report.read_text())
    if data["exit_code"] < 0:
        raise RuntimeError(f"{cmd[0]} was killed by signal {-data['exit_code']}")
    return Measurement(data["seconds"], data["maxrss"] * _MAXRSS_TO_MIB, data["exit_code"])


def summary(runs: Sequence[Measurement]) -> dict[str, Any]:
    """min and median seconds (min is the least noisy), the largest peak memory."""
    times = [r.seconds for r in runs]
    return {
        "seconds_min": round(min(times), 4),
        "seconds_median": round(statistics.median(times), 4),
        "seconds_all": [round(t, 4) for t in times],
        "peak_mib": round(max(r.peak_mib for r in runs), 1),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process and every process under it so far (its
    threads included), from `/proc` (Linux; 0.0 elsewhere): read before and after a load, the
    difference divided by the events handled is CPU per event."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        pending.extend(int(c) for c in children)
    return total
