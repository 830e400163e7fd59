"""The boundary between the engine and a database. SQLite and PostgreSQL implement it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rollout_yaml.store.records import (
    Attempt,
    AutomationStatus,
    CredentialStatus,
    Hook,
    Ingested,
    NewEvent,
    NewNotification,
    NewRun,
    Notification,
    NotificationQuery,
    Run,
    RunQuery,
    RunUpdate,
    StoredAutomation,
    StoredCredential,
)


class DatabaseUnavailable(RuntimeError):
    """The database server cannot be reached or refused the connection (the message names
    the database without its password)."""


class Store(Protocol):
    shared: bool
    """Other runner processes may use this database at the same time (PostgreSQL)."""

    async def open(self) -> list[int]:
        """Connect and apply migrations; return the migration versions applied."""

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def ingest(self, batch: Sequence[tuple[NewEvent, Sequence[NewRun]]]) -> list[Ingested]:
        """Store events and their runs in one transaction. An event whose (consumer, app,
        trigger, dedupe key) is already stored is not stored again and gets no new runs.
        Returns only after the commit: the caller may then acknowledge."""

    async def insert_runs(self, runs: Sequence[NewRun]) -> list[str]:
        """Store runs of already-stored events (replays); return the ids inserted."""

    async def record(
        self,
        update: RunUpdate,
        attempt: Attempt | None = None,
        notices: Sequence[NewNotification] = (),
    ) -> None:
        """Save an attempt and the run's new state together, with the notifications that
        report it (a run's end) in the same transaction."""

    async def claim_runs(self, owner: str, now: float, lease: float, limit: int) -> list[Run]:
        """Lease runs that are due (queued or retrying, with no live lease) to `owner`."""

    async def release(self, owner: str) -> int:
        """Give up every lease `owner` holds (on shutdown); return how many."""

    async def renew_leases(self, owner: str, until: float) -> set[str]:
        """Extend the leases of `owner`'s unfinished runs to `until` (runs queued in memory
        or executing must not be claimed by a replica meanwhile); return the ids it holds."""

    async def prune(
        self, runs_before: float, events_before: float, limit: int = 500
    ) -> tuple[int, int]:
        """Delete one small batch of finished runs (with their attempts) and of events no run
        refers to, older than the cut-offs; return how many runs and events went."""

    async def get_run(self, run_id: str, consumer: str | None = None) -> Run | None:
        """One run with its event and attempts; None if absent or of another consumer."""

    async def list_runs(self, query: RunQuery) -> list[Run]:
        """Runs newest first (keyset on id), without attempts."""

    async def count_by_status(self) -> dict[str, int]: ...

    async def load_states(self, prefix: str) -> dict[str, Any]:
        """Trigger state (schedules' last tick, polls' cursors) whose key starts with `prefix`."""

    async def save_state(self, key: str, state: Any) -> None:
        """Store a trigger's state; callers save it only after the events it covers."""

    async def seen_ids(self, poll: str, ids: Sequence[str]) -> set[str]:
        """Which of `ids` the poll group `poll` has already seen."""

    async def record_polled(
        self,
        batch: Sequence[tuple[NewEvent, Sequence[NewRun]]],
        poll: str,
        ids: Sequence[str],
        now: float,
    ) -> list[Ingested]:
        """Store one poll page's events and runs (like `ingest`) and mark its item ids seen by
        `poll`, in one transaction; returns after the commit."""

    async def save_poll_state(self, key: str, state: Any, poll: str, keep: int) -> int:
        """Save a poll group's state (after its events are committed) and prune its seen ids
        to the newest `keep`; return how many were pruned."""

    async def drop_poll_state(self, key: str, poll: str) -> None:
        """Forget a poll group: its state (`key`) and the item ids `poll` has seen."""

    async def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take or renew a named lease; False while another owner holds it unexpired."""

    async def release_lease(self, name: str, owner: str) -> None: ...

    async def reserve_rate_slot(
        self, key: str, requests: int, per: float, margin: float, token: str, expiry: float
    ) -> float:
        """Take a slot of a rate-limit quota shared by every process using this database
        now (0), or the seconds after which to ask again (engine/rate_limits.py)."""

    async def confirm_rate_slot(self, key: str, token: str) -> None:
        """The send of slot `token` is over (answered or failed)."""

    async def list_hooks(self, consumer: str | None = None) -> list[Hook]:
        """Webhook rows (hookIds and their App subscriptions), of one consumer or all."""

    async def get_hook(self, hook_id: str) -> Hook | None: ...

    async def insert_hook(self, hook: Hook) -> None: ...

    async def update_hook(self, hook_id: str, values: dict[str, Any]) -> None:
        """Set the given columns of one webhook row."""

    async def delete_hook(self, hook_id: str) -> None: ...
    async def get_credential(self, consumer: str, key: str) -> StoredCredential | None:
        """A stored credential (encrypted values and status), or None."""

    async def list_credentials(self, consumer: str | None = None) -> list[StoredCredential]:
        """Stored credentials of one consumer (None: all), by consumer and key."""

    async def put_credential(self, credential: StoredCredential) -> None:
        """Insert or replace a stored credential."""

    async def delete_credential(self, consumer: str, key: str) -> bool:
        """Delete a stored credential; False if there was none."""

    async def mark_credential(
        self,
        consumer: str,
        key: str,
        status: CredentialStatus,
        error: str | None,
        updated_at: float,
        notices: Sequence[NewNotification] = (),
    ) -> bool:
        """Set a stored credential's status and the reason shown with it; True when the
        status changed, and only then are `notices` stored (in the same transaction)."""

    async def label_credential(
        self, consumer: str, key: str, label: str | None, tested_at: float | None
    ) -> bool:
        """Set (or clear) a stored credential's auth-test label; False if there is none."""

    async def use_oauth_state(self, nonce: str, now: float, expires_at: float) -> bool:
        """Mark an OAuth `state` used; False if it was already (a replayed callback)."""

    async def list_automations(self, consumer: str | None = None) -> list[StoredAutomation]:
        """Runtime automations (created over the API) of one consumer or all, by key."""

    async def get_automation(self, consumer: str, key: str) -> StoredAutomation | None: ...

    async def count_automations(self, consumer: str) -> int: ...

    async def insert_automation(self, automation: StoredAutomation) -> bool:
        """Store a new runtime automation; False if its (consumer, key) exists. Returns after
        the commit (a 201 is answered only once it is durable)."""

    async def replace_automation(self, automation: StoredAutomation, expected: int) -> bool:
        """Write it over the stored version `expected`; False if that is not the stored one."""

    async def mark_automation(
        self,
        consumer: str,
        key: str,
        status: AutomationStatus,
        diagnostics: Sequence[dict[str, Any]],
    ) -> None:
        """Set a runtime automation's status (`ready`, or `invalid` with diagnostics)."""

    async def delete_automation(self, consumer: str, key: str) -> bool:
        """Delete a runtime automation (its runs stay); False if there was none."""

    async def automations_mark(self) -> tuple[int, float]:
        """(count, last write time) of all runtime automations, for replicas' version check."""

    async def automation_versions(self) -> dict[tuple[str, str], int]:
        """The version of every runtime automation, by (consumer, key)."""

    async def listen_automations(self, changed: Callable[[], None]) -> None:
        """Call `changed()` whenever another process commits a runtime automation's write
        (PostgreSQL: LISTEN); a no-op where the database cannot tell."""

    # -- partner notifications (the outbox) ----------------------------------------------

    async def add_notifications(self, notices: Sequence[NewNotification]) -> None:
        """Store notifications to deliver; returns after the commit."""

    async def claim_notifications(
        self, owner: str, now: float, lease: float, limit: int
    ) -> list[Notification]:
        """Lease due notifications to `owner` (never one another live lease holds)."""

    async def finish_delivery(
        self,
        notification_id: str,
        owner: str,
        attempts: int,
        delivered_at: float | None,
        next_attempt_at: float | None,
        error: str | None,
    ) -> bool:
        """Record a delivery attempt and give up its lease; False if the lease was lost."""

    async def list_notifications(self, query: NotificationQuery) -> list[Notification]:
        """Notifications newest first (keyset on id)."""

    async def count_undelivered(self) -> int:
        """How many notifications are not delivered yet (every replica's)."""

    async def prune_notifications(self, delivered_before: float, limit: int = 500) -> int:
        """Delete a small batch of notifications delivered before the cut-off."""
