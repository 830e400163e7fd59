"""`validate --all` on a generated 50-connector, 5,000-consumer, 50,000-automation project.

Reported against a baseline measured in the same run (a fresh process that only parses every YAML
file with libyaml), because absolute seconds on a shared machine say little on their own.
"""

from __future__ import annotations

import json
import pstats
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from benchmarks.generate import Params, cached_project
from benchmarks.measure import Measurement, run_fresh, summary

NAME = "validate"
REPEAT = 3
GOAL_SECONDS = 10.0
GOAL_MIB = 1024.0
TOP = 15
REPO = Path(__file__).resolve().parents[1]
# Most specific first: site-packages lives inside the repo's .venv.
_ROOTS = sorted(
    {REPO, *(Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib", "stdlib"))},
    key=lambda root: len(root.parts),
    reverse=True,
)
# Frames every call passes through (interpreter, runpy, click): they say nothing about validate.
_PLUMBING = ("rollout_yaml/__main__.py", "rollout_yaml/cli/main.py")

# The baseline: read and parse every file of the project, no models, no checks.
PARSE_ONLY = """
import sys, yaml
from pathlib import Path
for path in sorted(Path(sys.argv[1]).rglob("*.yaml")):
    yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
"""


def _cli() -> Path:
    """The console script of the venv running the benchmarks (what `make bench` installs)."""
    here = Path(sys.executable).parent / "rollout-yaml"
    found = here if here.exists() else shutil.which("rollout-yaml")
    if found is None:
        raise RuntimeError("rollout-yaml is not installed: run `make bench` (pip install -e .)")
    return Path(found)


# The same work as the command, with the consumers compiled in one process (as before
# `validate` compiled them on every CPU): how much the parallel compile saves, in the same run.
ONE_PROCESS = """
import os, sys
from pathlib import Path
from rollout_yaml.cli.validate import validate_project
from rollout_yaml.config.project import Layout
kept = []
validate_project(Layout(Path(sys.argv[1])), keep=kept, parallel=True, compile_processes=1)
os._exit(0)
"""


def run(workdir: Path) -> dict[str, Any]:
    project, info = cached_project(workdir, Params())
    out = workdir / NAME
    out.mkdir(parents=True, exist_ok=True)
    validate = [str(_cli()), "validate", "--all", "--project", str(project), "--format", "json"]
    parse = [sys.executable, "-c", PARSE_ONLY, str(project)]
    one_process = [sys.executable, "-c", ONE_PROCESS, str(project)]
    empty = out / "empty-project"
    (empty / "connectors").mkdir(parents=True, exist_ok=True)
    # Start-up: imports and CLI set-up of the same command, on a project with nothing in it.
    startup = [str(_cli()), "validate", "--all", "--project", str(empty), "--format", "json"]

    runs: dict[str, list[Measurement]] = {
        "validate": [],
        "parse": [],
        "startup": [],
        "one_process": [],
    }
    for i in range(REPEAT):  # interleaved, so drift on a noisy machine hits all alike
        runs["parse"].append(run_fresh(parse))
        runs["startup"].append(run_fresh(startup))
        runs["validate"].append(run_fresh(validate, stdout=out / f"validate-{i}.json"))
        runs["one_process"].append(run_fresh(one_process))
    report = json.loads((out / "validate-0.json").read_text() or "{}")

    v, p = summary(runs["validate"]), summary(runs["parse"])
    one = summary(runs["one_process"])
    return {
        "project": {k: info[k] for k in ("files", "mib", "automations", "digest", "generated_now")}
        | {"consumers": info["consumers"], "connectors": info["connectors"]},
        "validate": v
        | {
            "exit_code": runs["validate"][0].exit_code,
            "errors": report.get("errors"),
            "warnings": report.get("warnings"),
            "first_diagnostics": report.get("diagnostics", [])[:5],
        },
        "parse_baseline": p,
        "startup": summary(runs["startup"]),
        "compiled_in_one_process": one,
        "ratio_to_parse": round(v["seconds_median"] / p["seconds_median"], 2),
        "ratio_to_parse_min": round(v["seconds_min"] / p["seconds_min"], 2),
        "one_process_ratio_to_parse": round(one["seconds_median"] / p["seconds_median"], 2),
        "goals": {
            "seconds_under_10": v["seconds_median"] < GOAL_SECONDS,
            "memory_under_1gib": v["peak_mib"] < GOAL_MIB,
            "at_most_1.2x_parse": v["seconds_median"] <= 1.2 * p["seconds_median"],
        },
        "profile": profile(project, out),
    }


def profile(project: Path, out: Path) -> dict[str, Any]:
    """One cProfile run: where validate spends its time (about 2x slower than unprofiled)."""
    stats_file = out / "validate.prof"
    stats_file.unlink(missing_ok=True)
    # The command itself ends with os._exit (skipping teardown), which would also skip
    # cProfile's writing of the stats: profile the same work through its function instead.
    script = (
        "import cProfile, sys; from pathlib import Path; "
        "from rollout_yaml.cli.validate import validate_project; "
        "from rollout_yaml.config.project import Layout; "
        "cProfile.run('validate_project(Layout(Path(sys.argv[1])))', sys.argv[2])"
    )
    cmd = [sys.executable, "-c", script, str(project.resolve()), str(stats_file)]
    measured = run_fresh(cmd, stdout=out / "profiled.json")
    stats = pstats.Stats(str(stats_file))
    return {
        "seconds_profiled": round(measured.seconds, 2),
        "stats_file": _where(str(stats_file), 0, ""),
        "top_cumulative": _top(stats, "cumulative"),
        "top_own": _top(stats, "tottime"),
    }


def _top(stats: pstats.Stats, key: str) -> list[str]:
    """Top functions by own time (any code), or by cumulative time (rollout_yaml's own code)."""
    rows = stats.stats  # type: ignore[attr-defined]  # {(file, line, func): (cc, nc, tt, ct, _)}
    order = 3 if key == "cumulative" else 2
    lines = []
    for (file, line, func), (_, nc, tt, ct, _) in sorted(
        rows.items(), key=lambda item: item[1][order], reverse=True
    ):
        where = _where(file, line, func)
        if key == "cumulative" and (
            not where.startswith("rollout_yaml/") or where.startswith(_PLUMBING)
        ):
            continue
        lines.append(f"{ct:7.2f}s cum {tt:7.2f}s own {nc:>9} calls  {where}")
        if len(lines) == TOP:
            break
    return lines


def _where(file: str, line: int, func: str) -> str:
    """Short location: relative to the repo, site-packages or the standard library."""
    if file == "~":  # a built-in
        return func
    path = Path(file)
    for root in _ROOTS:
        if path.is_relative_to(root):
            path = path.relative_to(root)
            break
    return f"{path.as_posix()}:{line}({func})" if func else path.as_posix()
