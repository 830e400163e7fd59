"""Reading many YAML files on every core. `validate` of a large project spends most of its time
parsing YAML, and consumer files are independent of each other.

Only for one-shot commands: it forks, which a process running threads (the daemon) must not.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.config.progress import NO_PROGRESS, Progress
from rollout_yaml.config.project import Layout
from rollout_yaml.config.source import SourceFile, YamlProblem, read_source

THRESHOLD = 400
"""Below this many files a second process costs more than it saves."""

Read = SourceFile | Diagnostic


def read_one(path: Path, layout: Layout) -> Read:
    try:
        return read_source(path, layout.display(path))
    except YamlProblem as problem:
        return problem.diagnostic


def read_sequentially(
    paths: Sequence[Path], layout: Layout, progress: Progress = NO_PROGRESS
) -> list[Read]:
    reads = []
    for path in paths:
        reads.append(read_one(path, layout))
        progress.advance()
    return reads


def _read_chunk(paths: list[Path], root: Path) -> list[Read]:
    return read_sequentially(paths, Layout(root))


def read_in_parallel(
    paths: Sequence[Path], layout: Layout, progress: Progress = NO_PROGRESS
) -> list[Read]:
    """The same as `read_sequentially`, in order, with the work split across the CPUs
    (`progress` advances file by file for this process's share, chunk by chunk for others)."""
    cpus = min(os.cpu_count() or 1, 8)
    if len(paths) < THRESHOLD or cpus < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return read_sequentially(paths, layout, progress)
    size = -(-len(paths) // cpus)
    chunks = [list(paths[i : i + size]) for i in range(0, len(paths), size)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=len(chunks) - 1, mp_context=context) as pool:
        others = [pool.submit(_read_chunk, chunk, layout.root) for chunk in chunks[1:]]
        results = read_sequentially(chunks[0], layout, progress)  # this process's share
        for future, chunk in zip(others, chunks[1:], strict=True):
            results.extend(future.result())
            progress.advance(len(chunk))
    return results
