"""The active configuration, replaced whole and atomically when a valid new one is compiled."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.engine.matching import MatchIndex
from rollout_yaml.expr.compiled import CompiledEnvironment
from rollout_yaml.expr.incremental import Change


@dataclass(frozen=True)
class Active:
    """One generation of configuration; a run reads it once and uses it throughout."""

    env: CompiledEnvironment
    index: MatchIndex
    generation: int
    loaded_at: float


@dataclass
class ReloadError:
    at: float
    diagnostics: list[dict[str, Any]] = field(default_factory=list)


CHANGES_KEPT = 64


class LiveConfig:
    def __init__(self, env: CompiledEnvironment) -> None:
        self._active = Active(env, MatchIndex.build(env), 1, time.time())
        self.last_error: ReloadError | None = None
        self._changes: list[tuple[int, Change]] = []
        """The last swaps that changed only some automations: (generation, change)."""

    def changes_since(self, generation: int) -> list[Change] | None:
        """What changed from `generation` to the active one, swap by swap; None when that is
        not known (a whole new configuration came in between, or too long ago): then derive
        what depends on the configuration from it whole."""
        wanted = range(generation + 1, self._active.generation + 1)
        found = [change for number, change in self._changes if number in wanted]
        return found if len(found) == len(wanted) else None

    @property
    def active(self) -> Active:
        return self._active

    @property
    def current(self) -> CompiledEnvironment:
        return self._active.env

    @property
    def generation(self) -> int:
        return self._active.generation

    def swap(self, env: CompiledEnvironment) -> Active:
        """Make `env` active (one assignment: readers see the old or the new, never a mix)."""
        self._changes = []
        return self._make_active(env, MatchIndex.build(env), reloaded=True)

    def swap_changed(self, env: CompiledEnvironment, change: Change, *, reloaded: bool) -> Active:
        """Make `env` active, a change of the running one (`expr/incremental.py`): the match
        index is updated for the automations that changed instead of rebuilt. `reloaded`: a
        file change (it clears the last reload error), not an API write."""
        removed, added = change
        active = self._make_active(env, self._active.index.changed(removed, added), reloaded)
        self._changes = [*self._changes[-(CHANGES_KEPT - 1) :], (active.generation, change)]
        return active

    def _make_active(self, env: CompiledEnvironment, index: MatchIndex, reloaded: bool) -> Active:
        self._active = Active(env, index, self._active.generation + 1, time.time())
        if reloaded:
            self.last_error = None
        return self._active

    def reject(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.last_error = ReloadError(time.time(), [d.to_dict() for d in diagnostics])

    def status(self) -> dict[str, Any]:
        active = self._active
        return {
            "environment": active.env.name,
            "generation": active.generation,
            "loaded_at": active.loaded_at,
            "files": list(active.env.files),
            "consumers": len(active.env.consumers),
            "automations": len(active.env.automations),
            "last_reload_error": None
            if self.last_error is None
            else {"at": self.last_error.at, "diagnostics": self.last_error.diagnostics},
        }
