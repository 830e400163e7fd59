"""The base of every file model: unknown keys are errors, and a compiled model never changes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

JsonSchema = dict[str, Any]
"""A JSON Schema fragment (checked against the meta-schema when the project compiles)."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
