"""Compiling many consumers on every core, for `validate`: each forked process compiles a
contiguous share of the consumers against the connectors and blueprints compiled before the
fork, and sends back only what was found (diagnostics, how many automations compiled); the
compiled objects stay where they were made. Diagnostics come back in the order one process
would have found them.

Only for one-shot commands: it forks, which a process running threads (the daemon) must not.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TypeVar

from rollout_yaml.config.progress import Progress

THRESHOLD = 200
"""Below this many consumers a second process costs more than it saves."""

Item = TypeVar("Item")
Found = TypeVar("Found")


def processes_for(count: int) -> int:
    """How many processes compile `count` consumers: one per CPU (at most 8), or one."""
    cpus = min(os.cpu_count() or 1, 8)
    if count < THRESHOLD or cpus < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return cpus


def map_forked(
    work: Callable[[Sequence[Item], Progress], Found],
    items: Sequence[Item],
    processes: int,
    progress: Progress,
    advance: int = 1,
) -> list[Found]:
    """`work` over `items` split in `processes` contiguous chunks, each but the first in a
    forked child (which inherits everything built so far, so `work` need not be picklable),
    the first here; the results in chunk order. `progress` advances `advance` steps per item
    of a child's chunk when its result arrives (`work` advances it for this process's own)."""
    size = max(-(-len(items) // max(processes, 1)), 1)
    chunks = [items[i : i + size] for i in range(0, len(items), size)] or [items]
    children = [(start_forked(work, chunk), chunk) for chunk in chunks[1:]]
    results = [work(chunks[0], progress)]
    for result, chunk in children:
        results.append(result())
        progress.advance(advance * len(chunk))
    return results


def start_forked(
    work: Callable[[Sequence[Item], Progress], Found], items: Sequence[Item]
) -> Callable[[], Found]:
    """`work(items)` started in a forked child; call what this returns for its result (it
    waits for the child; it raises RuntimeError if `work` raised there or the child died)."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, items, sending), daemon=True)
    child.start()
    sending.close()

    def result() -> Found:
        try:
            outcome = receiving.recv()
        except EOFError:  # it died before sending anything
            child.join()
            outcome = ChildFailed(f"it exited with code {child.exitcode}")
        child.join()
        receiving.close()
        if isinstance(outcome, ChildFailed):
            raise RuntimeError(f"a worker process of validate failed: {outcome}")
        return outcome  # type: ignore[no-any-return]

    return result


class ChildFailed(str):
    """What a child sends instead of its result when `work` raised (its traceback)."""


def _child(
    work: Callable[[Sequence[Item], Progress], Found], chunk: Sequence[Item], out: Connection
) -> None:
    from rollout_yaml.config.progress import NO_PROGRESS

    try:
        result: object = work(chunk, NO_PROGRESS)
    except BaseException:  # reported to the parent, which raises it
        import traceback

        result = ChildFailed(traceback.format_exc())
    out.send(result)
    out.close()
    os._exit(0)  # nothing to tear down: the parent holds everything that matters
