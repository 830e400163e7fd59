"""What the store keeps, as plain immutable records (no ORM objects leave the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ulid import ULID


def new_id(prefix: str) -> str:
    """A sortable id: `run_01J…` (ULID: time-ordered, 128 bits)."""
    return f"{prefix}_{ULID()}"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FILTERED = "filtered"
    DRY_RUN = "dry_run"


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.FILTERED, RunStatus.DRY_RUN})


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    consumer: str
    automation: str
    event_id: str
    event_key: str
    status: RunStatus
    input: Any
    created_at: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    replay_of: str | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    """The stored id of one event, whether it was new, and the runs created for it."""

    event_id: str
    new: bool
    run_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    consumer: str
    app: str
    trigger: str
    dedupe_key: str
    payload: Any
    received_at: float
    source: str


NewEvent = EventRecord
"""An event about to be stored is the same record as one read back."""


@dataclass(frozen=True, slots=True)
class Attempt:
    run_id: str
    number: int
    started_at: float
    duration_ms: float
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    error: str | None


@dataclass(frozen=True, slots=True)
class RunUpdate:
    """The state a run moves to after an attempt (or a decision without one)."""

    run_id: str
    status: RunStatus
    attempts: int
    updated_at: float
    output: Any = None
    error: str | None = None
    error_kind: str | None = None
    next_attempt_at: float | None = None
    finished_at: float | None = None
    input: Any = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    consumer: str
    automation: str
    status: RunStatus
    attempts: int
    input: Any
    output: Any
    error: str | None
    error_kind: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    next_attempt_at: float | None
    replay_of: str | None
    event: EventRecord
    attempt_log: tuple[Attempt, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class RunQuery:
    consumer: str | None = None
    automation: str | None = None
    status: str | None = None
    since: float | None = None
    before_id: str | None = None
    limit: int = 50


class HookState(StrEnum):
    ACTIVE = "active"  # receives deliveries; subscribed at the App when it declares `subscribe`
    DISABLED = "disabled"  # its automation is disabled: no deliveries, no subscription
    RETIRED = "retired"  # gone or changed: kept until its App subscription is removed


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook URL (`id` is the hookId) of one automation, and its App subscription.

    `credential` and `input` are what the subscription was made with, so that it can be
    removed after the automation changed or disappeared from the configuration.
    """

    id: str
    consumer: str
    automation: str
    app: str
    trigger: str
    credential: str | None
    input: Any
    fingerprint: str
    state: HookState
    subscription: dict[str, Any] | None
    subscribed_url: str | None
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float
