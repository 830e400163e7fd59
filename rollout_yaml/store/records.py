"""What the store keeps, as plain immutable records (no ORM objects leave the store)."""

from __future__ import annotations

import os
import threading
import time
from base64 import b32encode
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)
_POOL = 4096  # random bytes read at once: one system call for ~400 ids


class _Ulids:
    """ULIDs (48-bit Unix time in ms, 80 random bits, Crockford base32), monotonic in this
    process as python-ulid's generator makes them (within one millisecond, the previous id + 1).

    An id is made for every event and run on the event loop: the random bits come from a pool
    filled by one `os.urandom` call every ~400 ids instead of one call per id (a system call
    there lets another thread take the GIL, and the loop waits to get it back). A forked child
    empties the pool, so no two processes hand out the same bits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._pool = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._pool, self._at = b"", 0

    def next(self) -> str:
        millis = time.time_ns() // 1_000_000
        with self._lock:
            if self._at + 10 > len(self._pool):
                self._pool, self._at = os.urandom(_POOL), 0
            random = int.from_bytes(self._pool[self._at : self._at + 10], "big")
            self._at += 10
            value = millis << 80 | random
            if value <= self._last:  # the same millisecond (or the clock went back)
                value = self._last + 1
            self._last = value
        # 130 bits (2 leading zeros) as 26 base32 digits, base64's alphabet made Crockford's
        return b32encode((value << 6).to_bytes(17, "big"))[:26].translate(_TO_CROCKFORD).decode()


_ULIDS = _Ulids()


def new_id(prefix: str) -> str:
    """A sortable id: `run_01J…` (ULID: time-ordered, 128 bits)."""
    return f"{prefix}_{_ULIDS.next()}"


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
    error: str | None = None  # a run that ends at intake (its filter failed)
    error_kind: str | None = None


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


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential kept in the database. `ciphertext` is the encrypted JSON of its values; the
    other fields are not secret and are shown without decrypting."""

    consumer: str
    key: str
    app: str
    ciphertext: bytes
    status: CredentialStatus
    updated_at: float
    expires_at: float | None = None
    error: str | None = None
    label: str | None = None
    """What the connector's `auth.test` read from the App (e.g. the account's name)."""
    tested_at: float | None = None


class AutomationStatus(StrEnum):
    READY = "ready"  # compiles against the running connectors and blueprints: it runs
    INVALID = "invalid"  # does not compile any more (a change under it): kept, shown, not run


@dataclass(frozen=True, slots=True)
class StoredAutomation:
    """An automation created over the API. `definition` is what a consumer file would hold
    under `automations.<key>` (a blueprint with params and credentials, or trigger, filter and
    action written out), without `enabled`, which is its own column."""

    consumer: str
    key: str
    definition: dict[str, Any]
    enabled: bool
    version: int
    created_at: float
    updated_at: float
    custom_data: Any
    status: AutomationStatus
    diagnostics: tuple[dict[str, Any], ...] = ()


# -- partner notifications (the outbox) ------------------------------------------------------


class NotificationStatus(StrEnum):
    PENDING = "pending"  # not delivered, not failed yet
    DELIVERED = "delivered"
    FAILING = "failing"  # not delivered; at least one delivery failed (retried)


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification to deliver: `id` is its `webhook-id` (stable over every retry), `payload`
    the body as sent (`{type, timestamp, data}`)."""

    id: str
    type: str
    payload: Any
    created_at: float


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    type: str
    payload: Any
    created_at: float
    attempts: int
    next_attempt_at: float | None
    delivered_at: float | None
    last_error: str | None

    @property
    def status(self) -> NotificationStatus:
        if self.delivered_at is not None:
            return NotificationStatus.DELIVERED
        return NotificationStatus.FAILING if self.attempts else NotificationStatus.PENDING


@dataclass(frozen=True, slots=True)
class NotificationQuery:
    """Newest first, keyset on id."""

    status: NotificationStatus | None = None
    type: str | None = None
    before_id: str | None = None
    limit: int = 50
