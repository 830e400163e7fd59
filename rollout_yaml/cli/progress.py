"""Progress bars for long commands: on a terminal (standard error), never when piped.

A command opens `progress_bar(...)` around its work and hands the result, a `Progress`
(`config/progress.py`), to the code doing the work. The bar appears only for work of at least
`threshold` steps, so that a small project's `validate` stays one quiet line, and it is
transient: once done, the terminal shows the command's output and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)

from rollout_yaml.config.progress import NO_PROGRESS, Progress


class _Bar:
    """A `Progress` drawn by rich: `expect` grows the total, `advance` moves the bar."""

    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        self._bar = bar
        self._task = task

    def expect(self, units: int) -> None:
        task = next(t for t in self._bar.tasks if t.id == self._task)
        self._bar.update(self._task, total=(task.total or 0) + units)

    def advance(self, units: int = 1) -> None:
        self._bar.advance(self._task, units)

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)


class Counter:
    """For work of unknown length (a poll's pages): a spinner and what was done so far."""

    def __init__(self, bar: RichProgress, task: TaskID) -> None:
        self._bar = bar
        self._task = task

    def expect(self, units: int) -> None:
        pass

    def advance(self, units: int = 1) -> None:
        self._bar.advance(self._task, units)

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def on_terminal() -> bool:
    return stderr_console().is_terminal


def _transient(out: Console, *columns: ProgressColumn) -> RichProgress:
    """A display that clears itself when done and leaves standard output alone (a command's
    results go there, its progress to standard error)."""
    return RichProgress(
        *columns,
        TimeElapsedColumn(),
        console=out,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )


@contextlib.contextmanager
def progress_bar(description: str, total: int, *, threshold: int = 0) -> Iterator[Progress]:
    """A bar for `total` steps (more may be `expect`ed), shown on a terminal when `total`
    reaches `threshold`; otherwise the silent `NO_PROGRESS`."""
    out = stderr_console()
    if not out.is_terminal or total < threshold:
        yield NO_PROGRESS
        return
    bar = _transient(out, TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with bar:
        task = bar.add_task(description, total=total)
        bar.refresh()  # drawn at once, not only at the first tick
        yield _Bar(bar, task)


@contextlib.contextmanager
def progress_counter(description: str) -> Iterator[Counter | None]:
    """A spinner with a running description, on a terminal; None when piped."""
    out = stderr_console()
    if not out.is_terminal:
        yield None
        return
    bar = _transient(out, SpinnerColumn(), TextColumn("[bold]{task.description}"))
    with bar:
        task = bar.add_task(description, total=None)
        bar.refresh()
        yield Counter(bar, task)
