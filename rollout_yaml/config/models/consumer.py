"""`environments/<env>/consumers/<consumer>.yaml`: one customer's credentials and automations."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.types import ConsumerKey, Key


class Credential(Model):
    app: Key
    values: dict[str, Any] | None = None
    stored: bool = False

    @model_validator(mode="after")
    def _values_or_stored(self) -> Credential:
        if self.stored == (self.values is not None):
            raise PydanticCustomError(
                "RY503",
                "a credential has either `values:` or `stored: true`, not both and not neither",
                {},
            )
        return self


class InlineTrigger(Model):
    app: Key
    trigger: Key
    credential: Key | None = None
    input: dict[str, Any] = Field(default_factory=dict)


class InlineAction(Model):
    app: Key
    action: Key
    credential: Key | None = None
    input: dict[str, Any] = Field(default_factory=dict)


class InlineAutomation(Model):
    """An automation written out in full in the consumer file."""

    name: str | None = None
    enabled: bool = True
    trigger: InlineTrigger
    filter: str | None = None
    action: InlineAction


class BlueprintCredentials(Model):
    trigger: Key | None = None
    action: Key | None = None


class BlueprintAutomation(Model):
    """A blueprint enabled for this consumer with its own params and credentials."""

    blueprint: Key
    name: str | None = None
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)
    credentials: BlueprintCredentials = Field(default_factory=BlueprintCredentials)


def _automation_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "blueprint" if "blueprint" in value else "inline"
    return "blueprint" if hasattr(value, "blueprint") else "inline"


AutomationEntry = Annotated[
    Annotated[BlueprintAutomation, Tag("blueprint")] | Annotated[InlineAutomation, Tag("inline")],
    Discriminator(_automation_kind),
]


class Consumer(Model):
    consumer: ConsumerKey
    name: str | None = None
    credentials: dict[Key, Credential] = Field(default_factory=dict)
    automations: dict[Key, AutomationEntry] = Field(default_factory=dict)
