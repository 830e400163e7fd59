"""The compiled, immutable form of an environment: what the runner and the offline tools use.

Every expression is compiled once here; nothing downstream parses a template or a JMESPath
expression again. A new configuration is a new `CompiledEnvironment`, swapped in whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollout_yaml.config.loader import EnvironmentConfig
from rollout_yaml.config.models import Blueprint, Connector, EnvironmentSettings
from rollout_yaml.config.models.connector import Action, Trigger
from rollout_yaml.config.models.consumer import Credential
from rollout_yaml.config.models.environment import AppSettings
from rollout_yaml.config.models.request import Paginate, RetryPolicy
from rollout_yaml.config.source import SourceFile
from rollout_yaml.expr.jmespath import Query
from rollout_yaml.expr.schemas import Schema
from rollout_yaml.expr.templates import Params, Template
from rollout_yaml.expr.values import Tree


@dataclass(frozen=True, slots=True)
class CompiledRequest:
    method: str
    path: Template | str
    query: Tree
    headers: Tree
    json_body: Tree
    form: Tree
    body: Template | str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class CompiledPoll:
    every: float
    request: CompiledRequest
    paginate: Paginate | None
    next_page: Query | None
    items: Query
    id: Query
    cursor: Query | None
    payload: Query | None
    initial: str


@dataclass(frozen=True, slots=True)
class CompiledWebhook:
    verify_secrets: tuple[Template | str, ...] | None
    """`verify.secret` (one, or several while a secret is rotated)."""
    items: Query | None
    id: Query | None
    payload: Query | None
    subscribe: CompiledRequest | None
    subscription_id: Query | None
    unsubscribe: CompiledRequest | None


@dataclass(frozen=True, slots=True)
class CompiledTrigger:
    app: str
    key: str
    model: Trigger
    input_schema: Schema
    payload_schema: Schema
    filter: Query | None
    poll: CompiledPoll | None = None
    webhook: CompiledWebhook | None = None

    @property
    def kind(self) -> str:
        return self.model.kind


@dataclass(frozen=True, slots=True)
class CompiledAction:
    app: str
    key: str
    model: Action
    input_schema: Schema
    request: CompiledRequest
    success: Query | None
    error: Query | None
    output: Query | None
    retry: RetryPolicy


@dataclass(frozen=True, slots=True)
class CompiledAuthTest:
    """A connector's `auth.test`: the request, what makes it a success, what labels it."""

    request: CompiledRequest
    success: Query | None
    label: Query | None


@dataclass(frozen=True, slots=True)
class CompiledApp:
    key: str
    connector: Connector
    file: str | None
    base_url: Template | str
    auth_headers: Tree
    auth_query: Tree
    default_headers: Tree
    default_query: Tree
    error: Query | None
    settings: AppSettings
    triggers: Mapping[str, CompiledTrigger]
    actions: Mapping[str, CompiledAction]
    auth_test: CompiledAuthTest | None = None


@dataclass(frozen=True, slots=True)
class CompiledBlueprint:
    key: str
    model: Blueprint
    file: str
    trigger_input: Tree
    action_input: Tree
    filter: Query | None
    params_schema: Schema


@dataclass(frozen=True, slots=True)
class CompiledAutomation:
    """One consumer's automation, blueprint expanded, ready to match events and run."""

    consumer: str
    key: str
    name: str
    enabled: bool
    blueprint: str | None
    source: SourceFile
    trigger_app: str
    trigger_key: str
    trigger_credential: str | None
    trigger_input: Mapping[str, Any]
    filter: Query | None
    action_app: str
    action_key: str
    action_credential: str | None
    action_input: Tree
    params: Params

    @property
    def ref(self) -> str:
        return f"{self.consumer}/{self.key}"

    @property
    def file(self) -> str:
        return self.source.display

    def location(self) -> tuple[int, int]:
        """Line and column of this automation's key in its consumer file."""
        return self.source.locate(("automations", self.key), key=True)


@dataclass(frozen=True, slots=True)
class CompiledConsumer:
    key: str
    name: str
    file: str
    credentials: Mapping[str, Credential]


@dataclass(frozen=True)
class CompiledEnvironment:
    name: str
    settings: EnvironmentSettings
    source: EnvironmentConfig
    apps: Mapping[str, CompiledApp]
    blueprints: Mapping[str, CompiledBlueprint]
    consumers: Mapping[str, CompiledConsumer]
    automations: Mapping[tuple[str, str], CompiledAutomation]
    secret_values: frozenset[str] = field(default_factory=frozenset)

    @property
    def files(self) -> tuple[str, ...]:
        return self.source.files
