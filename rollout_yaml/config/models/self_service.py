"""`self_service:` in environment.yaml: what consumers may create over the API themselves."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import Key


class SelfServiceSettings(Model):
    """Limits of `/v1/automations` (a consumer's JWT); `/admin/v1` is not limited by them."""

    blueprints: Literal["all"] | list[Key] = Field(
        "all", description="Blueprints a consumer may enable: `all`, or a list of keys"
    )
    inline: bool = Field(
        False, description="Whether a consumer may write trigger, filter and action out in full"
    )
    max_automations: int = Field(
        100, ge=0, description="Automations a consumer may create over the API"
    )

    def allows_blueprint(self, key: str) -> bool:
        return self.blueprints == "all" or key in self.blueprints
