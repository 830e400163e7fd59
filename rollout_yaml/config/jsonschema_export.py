"""JSON Schemas of the file kinds, generated from the same pydantic models that parse them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rollout_yaml.config.models import (
    Blueprint,
    Connector,
    Consumer,
    EnvironmentSettings,
    ReleaseManifest,
)

FILE_KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "connector": (Connector, "connectors/<app>.yaml"),
    "blueprint": (Blueprint, "automations/<blueprint>.yaml"),
    "consumer": (Consumer, "environments/<env>/consumers/<consumer>.yaml"),
    "environment": (EnvironmentSettings, "environments/<env>/environment.yaml"),
    "release": (ReleaseManifest, "environments/<env>/release/release.yaml"),
}


def file_schema(kind: str) -> dict[str, Any]:
    model, where = FILE_KINDS[kind]
    document = model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://rollout-yaml.dev/schemas/{kind}.schema.json",
        "title": f"rollout-yaml {kind} file ({where})",
        **document,
    }
