"""How long work reports its progress, without knowing who shows it.

`validate`, `promote` and `test` pass a `Progress` down to the loader and the compilers; the
command line draws it as a bar on a terminal (`cli/progress.py`); everything else passes
nothing and pays one no-op call per file.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def expect(self, units: int) -> None:
        """More work is known: `units` more steps before the end."""

    def advance(self, units: int = 1) -> None:
        """`units` steps are done."""


class _Silent:
    def expect(self, units: int) -> None:
        pass

    def advance(self, units: int = 1) -> None:
        pass


NO_PROGRESS: Progress = _Silent()
