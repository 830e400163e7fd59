"""`automations/<blueprint>.yaml`: an automation designed once, enabled per consumer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rollout_yaml.config.models.base import JsonSchema, Model
from rollout_yaml.config.types import Key

EMPTY_PARAMS: JsonSchema = {"type": "object", "properties": {}}


class BlueprintTrigger(Model):
    app: Key
    trigger: Key
    input: dict[str, Any] = Field(default_factory=dict)


class BlueprintAction(Model):
    app: Key
    action: Key
    input: dict[str, Any] = Field(default_factory=dict)


class BlueprintTest(Model):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)
    consumer: str = "test-consumer"
    expect_input: dict[str, Any] | None = None
    expect_trigger_input: dict[str, Any] | None = None
    expect_filtered: bool | None = None


class Blueprint(Model):
    blueprint: Key
    name: str
    description: str | None = None
    params: JsonSchema = Field(default_factory=lambda: dict(EMPTY_PARAMS))
    trigger: BlueprintTrigger
    filter: str | None = None
    action: BlueprintAction
    tests: list[BlueprintTest] = Field(default_factory=list)
