"""The Store protocol written once, as calls to `queries`: a backend only says how a query
runs (`_read`) and how a write is committed (`_write`).

SQLite sends writes to its writer thread (grouped commits); PostgreSQL runs them on its async
engine. A new store method is added here, next to its query, and both backends have it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from rollout_yaml.store import queries
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

T = TypeVar("T")


class QueryStore:
    shared = False
    """Whether other runner processes may use this database at the same time (PostgreSQL):
    then what they must share (rate limits) is kept in it."""

    def _write(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run `fn(conn, *args)` in a write transaction; resolves after the commit."""
        raise NotImplementedError

    def _write_alone(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """`_write` for a write whose latency matters more than grouping (a backend may run
        it in a transaction of its own)."""
        return self._write(fn, *args)

    def _read(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run `fn(conn, *args)` on a read connection."""
        raise NotImplementedError

    async def ingest(self, batch: Sequence[tuple[NewEvent, Sequence[NewRun]]]) -> list[Ingested]:
        return await self._write(queries.ingest, batch)

    async def insert_runs(self, runs: Sequence[NewRun]) -> list[str]:
        return await self._write(queries.insert_runs, runs)

    async def record(
        self,
        update: RunUpdate,
        attempt: Attempt | None = None,
        notices: Sequence[NewNotification] = (),
    ) -> None:
        await self._write(queries.record, update, attempt, tuple(notices))

    async def claim_runs(self, owner: str, now: float, lease: float, limit: int) -> list[Run]:
        return await self._write(queries.claim_runs, owner, now, lease, limit)

    async def release(self, owner: str) -> int:
        return await self._write(queries.release, owner)

    async def renew_leases(self, owner: str, until: float) -> set[str]:
        return await self._write(queries.renew_leases, owner, until)

    async def prune(
        self, runs_before: float, events_before: float, limit: int = 500
    ) -> tuple[int, int]:
        return await self._write(queries.prune, runs_before, events_before, limit)

    async def get_run(self, run_id: str, consumer: str | None = None) -> Run | None:
        return await self._read(queries.get_run, run_id, consumer)

    async def list_runs(self, query: RunQuery) -> list[Run]:
        return await self._read(queries.list_runs, query)

    async def count_by_status(self) -> dict[str, int]:
        return await self._read(queries.count_by_status)

    async def load_states(self, prefix: str) -> dict[str, Any]:
        return await self._read(queries.load_states, prefix)

    async def save_state(self, key: str, state: Any) -> None:
        await self._write(queries.save_state, key, state)

    async def seen_ids(self, poll: str, ids: Sequence[str]) -> set[str]:
        return await self._read(queries.seen_ids, poll, ids)

    async def record_polled(
        self,
        batch: Sequence[tuple[NewEvent, Sequence[NewRun]]],
        poll: str,
        ids: Sequence[str],
        now: float,
    ) -> list[Ingested]:
        return await self._write(queries.record_polled, batch, poll, ids, now)

    async def save_poll_state(self, key: str, state: Any, poll: str, keep: int) -> int:
        return await self._write(queries.save_poll_state, key, state, poll, keep)

    async def drop_poll_state(self, key: str, poll: str) -> None:
        await self._write(queries.drop_poll_state, key, poll)

    async def acquire_lease(self, name: str, owner: str, now: float, ttl: float) -> bool:
        return await self._write(queries.acquire_lease, name, owner, now, ttl)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._write(queries.release_lease, name, owner)

    async def reserve_rate_slot(
        self, key: str, requests: int, per: float, margin: float, token: str, expiry: float
    ) -> float:
        return await self._write_alone(
            queries.reserve_rate_slot, key, requests, per, margin, token, expiry
        )

    async def confirm_rate_slot(self, key: str, token: str) -> None:
        await self._write_alone(queries.confirm_rate_slot, key, token)

    async def list_hooks(self, consumer: str | None = None) -> list[Hook]:
        return await self._read(queries.list_hooks, consumer)

    async def get_hook(self, hook_id: str) -> Hook | None:
        return await self._read(queries.get_hook, hook_id)

    async def insert_hook(self, hook: Hook) -> None:
        await self._write(queries.insert_hook, hook)

    async def update_hook(self, hook_id: str, values: dict[str, Any]) -> None:
        await self._write(queries.update_hook, hook_id, values)

    async def delete_hook(self, hook_id: str) -> None:
        await self._write(queries.delete_hook, hook_id)

    async def get_credential(self, consumer: str, key: str) -> StoredCredential | None:
        return await self._read(queries.get_credential, consumer, key)

    async def list_credentials(self, consumer: str | None = None) -> list[StoredCredential]:
        return await self._read(queries.list_credentials, consumer)

    async def put_credential(self, credential: StoredCredential) -> None:
        await self._write(queries.put_credential, credential)

    async def delete_credential(self, consumer: str, key: str) -> bool:
        return await self._write(queries.delete_credential, consumer, key)

    async def mark_credential(
        self,
        consumer: str,
        key: str,
        status: CredentialStatus,
        error: str | None,
        updated_at: float,
        notices: Sequence[NewNotification] = (),
    ) -> bool:
        return await self._write(
            queries.mark_credential, consumer, key, status, error, updated_at, tuple(notices)
        )

    async def label_credential(
        self, consumer: str, key: str, label: str | None, tested_at: float | None
    ) -> bool:
        return await self._write(queries.label_credential, consumer, key, label, tested_at)

    async def use_oauth_state(self, nonce: str, now: float, expires_at: float) -> bool:
        return await self._write(queries.use_oauth_state, nonce, now, expires_at)

    async def list_automations(self, consumer: str | None = None) -> list[StoredAutomation]:
        return await self._read(queries.list_automations, consumer)

    async def get_automation(self, consumer: str, key: str) -> StoredAutomation | None:
        return await self._read(queries.get_automation, consumer, key)

    async def count_automations(self, consumer: str) -> int:
        return await self._read(queries.count_automations, consumer)

    async def insert_automation(self, automation: StoredAutomation) -> bool:
        return await self._write_alone(queries.insert_automation, automation)

    async def replace_automation(self, automation: StoredAutomation, expected: int) -> bool:
        return await self._write_alone(queries.replace_automation, automation, expected)

    async def mark_automation(
        self,
        consumer: str,
        key: str,
        status: AutomationStatus,
        diagnostics: Sequence[dict[str, Any]],
    ) -> None:
        await self._write(queries.mark_automation, consumer, key, status, diagnostics)

    async def delete_automation(self, consumer: str, key: str) -> bool:
        return await self._write_alone(queries.delete_automation, consumer, key)

    async def automations_mark(self) -> tuple[int, float]:
        return await self._read(queries.automations_mark)

    async def automation_versions(self) -> dict[tuple[str, str], int]:
        return await self._read(queries.automation_versions)

    async def listen_automations(self, changed: Callable[[], None]) -> None:
        """Only PostgreSQL tells other processes (`PostgresStore`); elsewhere they compare
        `automations_mark` now and then."""
        return None

    async def add_notifications(self, notices: Sequence[NewNotification]) -> None:
        await self._write(queries.add_notifications, tuple(notices))

    async def claim_notifications(
        self, owner: str, now: float, lease: float, limit: int
    ) -> list[Notification]:
        return await self._write(queries.claim_notifications, owner, now, lease, limit)

    async def finish_delivery(
        self,
        notification_id: str,
        owner: str,
        attempts: int,
        delivered_at: float | None,
        next_attempt_at: float | None,
        error: str | None,
    ) -> bool:
        return await self._write(
            queries.finish_delivery,
            notification_id,
            owner,
            attempts,
            delivered_at,
            next_attempt_at,
            error,
        )

    async def list_notifications(self, query: NotificationQuery) -> list[Notification]:
        return await self._read(queries.list_notifications, query)

    async def count_undelivered(self) -> int:
        return await self._read(queries.count_undelivered)

    async def prune_notifications(self, delivered_before: float, limit: int = 500) -> int:
        return await self._write(queries.prune_notifications, delivered_before, limit)
