"""Benchmarks of rollout-yaml, run with `python -m benchmarks [NAME ...]` (`make bench`).

Each benchmark is a module `benchmarks/bench_<name>.py` exposing `NAME` and
`run(workdir: Path) -> dict`; adding one needs no registration beyond the file itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "results"


def discover() -> dict[str, ModuleType]:
    """Every `bench_*` module of this package, by its `NAME`, in file-name order."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda i: i.name):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.NAME] = module
    return found
