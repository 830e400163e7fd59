"""Run benchmarks, write `benchmarks/results/<name>.json`, print a table of the figures."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import RESULTS, WORK, discover

SHOWN = 8


def machine() -> dict[str, Any]:
    """Enough about the machine and code to tell whether two result files are comparable."""
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "rollout_yaml": _version(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "rollout_yaml")),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _version() -> str | None:
    try:
        return metadata.version("rollout-yaml")
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=RESULTS.parent
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def top_lists(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """Ranked listings (`top_*`: profiles) to print under the table."""
    found: list[tuple[str, list[str]]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            found += top_lists(value, f"{prefix}{key}.")
        elif key.startswith("top_") and isinstance(value, list):
            found.append((prefix + key, [str(line) for line in value]))
    return found


def flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar figures as dotted names; lists (profiles, raw runs) stay in the JSON only."""
    rows: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows += flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            rows.append((prefix + key, value))
    return rows


def show(figure: str, value: Any) -> str:
    if isinstance(value, bool) and figure.startswith("goals."):
        return "[green]met[/]" if value else "[red]NOT met[/]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(available)})",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(available)}")
    console = Console()
    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    table = Table("benchmark", "figure", "value", title="rollout-yaml benchmarks")
    failed = 0
    listings: list[tuple[str, list[str]]] = []
    for name in args.names or list(available):
        console.print(f"[bold]{name}[/] …")
        start, info = time.perf_counter(), machine()
        try:
            figures = available[name].run(WORK)
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            console.print_exception()
            table.add_row(name, "error", f"[red]{type(exc).__name__}: {exc}[/]")
            failed += 1
            continue
        result = {
            "name": name,
            "machine": info,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "figures": figures,
        }
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        listings += [(f"{name}: {key}", lines) for key, lines in top_lists(figures)]
        for figure, value in flatten(figures):
            table.add_row(name, figure, show(figure, value))
        table.add_row(name, "written to", str(path.relative_to(RESULTS.parent.parent)))
    console.print(table)
    for title, lines in listings:
        console.print(f"\n[bold]{title}[/] (first {min(len(lines), SHOWN)}, all in the JSON)")
        console.print("\n".join(lines[:SHOWN]), markup=False, highlight=False, soft_wrap=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
