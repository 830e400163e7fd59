"""Runtime automations in the environment database (migration 9), on SQLite and PostgreSQL:
a key once per consumer, writes over a stale version refused, status kept with diagnostics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from rollout_yaml.store.base import Store
from rollout_yaml.store.factory import open_store
from rollout_yaml.store.records import AutomationStatus, StoredAutomation

T = TypeVar("T")


def run_with(database: str, tmp_path: Path, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(database, tmp_path)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def stored(
    key: str, consumer: str = "acme", version: int = 1, **changes: object
) -> StoredAutomation:
    values: dict[str, object] = {
        "consumer": consumer,
        "key": key,
        "definition": {"blueprint": "notify", "params": {"channel": "#ops"}},
        "enabled": True,
        "version": version,
        "created_at": 1.0,
        "updated_at": float(version),
        "custom_data": {"plan": "pro"},
        "status": AutomationStatus.READY,
    }
    values.update(changes)
    return StoredAutomation(**values)  # type: ignore[arg-type]


def test_a_key_is_stored_once_per_consumer_and_read_back(database: str, tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        assert await store.insert_automation(stored("alerts"))
        assert not await store.insert_automation(stored("alerts", custom_data=None))
        assert await store.insert_automation(stored("alerts", consumer="globex"))
        got = await store.get_automation("acme", "alerts")
        assert got == stored("alerts")
        assert [a.consumer for a in await store.list_automations()] == ["acme", "globex"]
        assert [a.key for a in await store.list_automations("globex")] == ["alerts"]
        assert await store.count_automations("acme") == 1
        assert await store.get_automation("acme", "other") is None

    run_with(database, tmp_path, body)


def test_a_write_over_a_stale_version_is_refused(database: str, tmp_path: Path) -> None:
    async def body(store: Store) -> None:
        await store.insert_automation(stored("alerts"))
        newer = stored("alerts", version=2, enabled=False, custom_data=[1, 2])
        assert await store.replace_automation(newer, expected=1)
        assert not await store.replace_automation(stored("alerts", version=2), expected=1)
        got = await store.get_automation("acme", "alerts")
        assert got is not None and got.version == 2 and not got.enabled
        assert got.custom_data == [1, 2] and got.created_at == 1.0

    run_with(database, tmp_path, body)


def test_status_and_diagnostics_are_kept_and_deleting_twice_is_noticed(
    database: str, tmp_path: Path
) -> None:
    async def body(store: Store) -> None:
        await store.insert_automation(stored("alerts"))
        problem = {"code": "RY203", "message": "app `chat` has no action `post`"}
        await store.mark_automation("acme", "alerts", AutomationStatus.INVALID, [problem])
        got = await store.get_automation("acme", "alerts")
        assert got is not None and got.status is AutomationStatus.INVALID
        assert got.diagnostics == (problem,) and got.version == 1
        assert await store.automations_mark() == (1, 1.0)
        assert await store.delete_automation("acme", "alerts")
        assert not await store.delete_automation("acme", "alerts")
        assert await store.automations_mark() == (0, 0.0)

    run_with(database, tmp_path, body)
