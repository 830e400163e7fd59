"""The active configuration, replaced whole and atomically when a valid new one is compiled."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.diagnostics import Diagnostic
from rollout_yaml.engine.matching import MatchIndex
from rollout_yaml.expr.compiled import CompiledEnvironment


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


class LiveConfig:
    def __init__(self, env: CompiledEnvironment) -> None:
        self._active = Active(env, MatchIndex.build(env), 1, time.time())
        self.last_error: ReloadError | None = None

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
        self._active = Active(env, MatchIndex.build(env), self._active.generation + 1, time.time())
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
