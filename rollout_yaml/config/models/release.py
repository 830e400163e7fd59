"""`environments/<env>/release/release.yaml`: what a frozen environment was promoted with."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import Key

Sha256 = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]


class ReleaseManifest(Model):
    promoted_from: Key
    promoted_at: str
    source_commit: str | None = None
    files: dict[str, Sha256] = Field(default_factory=dict)
