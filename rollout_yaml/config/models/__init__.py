"""Pydantic models of every file kind: the single source for parsing, `schema` and docs."""

from rollout_yaml.config.models.base import Model
from rollout_yaml.config.models.blueprint import Blueprint
from rollout_yaml.config.models.connector import Action, Connector, Trigger
from rollout_yaml.config.models.consumer import Consumer
from rollout_yaml.config.models.environment import EnvironmentSettings
from rollout_yaml.config.models.release import ReleaseManifest

__all__ = [
    "Action",
    "Blueprint",
    "Connector",
    "Consumer",
    "EnvironmentSettings",
    "Model",
    "ReleaseManifest",
    "Trigger",
]
