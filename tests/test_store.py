"""The store's guarantees, asserted through the Store protocol on a real database file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rollout_yaml.store.base import Store
from rollout_yaml.store.records import (
    Attempt,
    EventRecord,
    NewRun,
    RunQuery,
    RunStatus,
    RunUpdate,
    new_id,
)
from rollout_yaml.store.sqlite import SQLiteStore

T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield SQLiteStore(tmp_path / "state.db")


def run_with(store: Store, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def event(key: str, consumer: str = "acme") -> EventRecord:
    return EventRecord(
        new_id("evt"), consumer, "formflow", "submitted", key, {"k": key}, 1.0, "push"
    )


def run_for(e: EventRecord, automation: str = "notify") -> NewRun:
    return NewRun(
        new_id("run"), e.consumer, automation, e.id, e.dedupe_key, RunStatus.QUEUED, None, 1.0
    )


def test_an_event_key_stored_twice_gets_runs_once(store: Store) -> None:
    async def body(s: Store) -> Any:
        first, second = event("a"), event("a")
        one = await s.ingest([(first, [run_for(first)])])
        two = await s.ingest([(second, [run_for(second)])])
        return one, two, await s.list_runs(RunQuery())

    one, two, runs = run_with(store, body)
    assert one[0].new and len(one[0].run_ids) == 1
    assert not two[0].new and two[0].run_ids == () and two[0].event_id == one[0].event_id
    assert len(runs) == 1


def test_claimed_runs_are_not_claimed_again_until_the_lease_expires(store: Store) -> None:
    async def body(s: Store) -> Any:
        batch = [event(str(i)) for i in range(5)]
        await s.ingest([(e, [run_for(e)]) for e in batch])
        now = time.time()
        first = await s.claim_runs("a", now, 60, 3)
        second = await s.claim_runs("b", now, 60, 10)
        third = await s.claim_runs("b", now, 60, 10)
        after_expiry = await s.claim_runs("c", now + 61, 60, 10)
        return first, second, third, after_expiry

    first, second, third, after_expiry = run_with(store, body)
    assert len(first) == 3 and len(second) == 2 and third == []
    assert {r.id for r in first} | {r.id for r in second} == {r.id for r in after_expiry}


def test_a_recorded_attempt_is_read_back_with_its_run(store: Store) -> None:
    async def body(s: Store) -> Any:
        e = event("x")
        new = run_for(e)
        await s.ingest([(e, [new])])
        await s.record(
            RunUpdate(new.id, RunStatus.SUCCEEDED, 1, 2.0, output={"ok": True}, finished_at=2.0),
            Attempt(new.id, 1, 1.5, 12.0, {"method": "POST"}, {"status": 200}, None),
        )
        return await s.get_run(new.id, "acme"), await s.get_run(new.id, "other")

    mine, theirs = run_with(store, body)
    assert mine is not None and mine.status == RunStatus.SUCCEEDED and mine.output == {"ok": True}
    assert [a.response for a in mine.attempt_log] == [{"status": 200}]
    assert theirs is None


def test_a_named_lease_has_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    async def body(s: Store) -> list[bool]:
        now = 1000.0
        got = [
            await s.acquire_lease("poll:g1", "a", now, 30),
            await s.acquire_lease("poll:g1", "b", now + 1, 30),  # held by a
            await s.acquire_lease("poll:g1", "a", now + 2, 30),  # a renews
            await s.acquire_lease("poll:g1", "b", now + 31, 30),  # a's renewal still live
            await s.acquire_lease("poll:g1", "b", now + 33, 30),  # expired: b takes it
        ]
        await s.release_lease("poll:g1", "b")
        got.append(await s.acquire_lease("poll:g1", "a", now + 34, 30))
        return got

    assert run_with(store, body) == [True, False, True, False, True, True]


def test_trigger_state_is_kept_by_key_prefix(store: Store) -> None:
    async def body(s: Store) -> Any:
        await s.save_state("poll:a", {"cursor": 1})
        await s.save_state("poll:a", {"cursor": 2})
        await s.save_state("schedule:b", {"last": "x"})
        return await s.load_states("poll:")

    assert run_with(store, body) == {"poll:a": {"cursor": 2}}


def test_a_migration_merged_after_a_higher_one_still_runs(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from rollout_yaml.store.migrations import MIGRATIONS, apply_migrations

    made: list[int] = []

    def step(number: int) -> tuple[int, str, Callable[[sa.Connection], None]]:
        return (number, f"step {number}", lambda conn: made.append(number))

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        assert apply_migrations(conn, [step(1), step(3)]) == [1, 3]
        assert apply_migrations(conn, [step(1), step(2), step(3)]) == [2]  # merged late
        assert apply_migrations(conn, [step(1), step(2), step(3)]) == []
    assert made == [1, 3, 2]
    real = sa.create_engine(f"sqlite:///{tmp_path / 'real.db'}")
    with real.begin() as conn:
        assert apply_migrations(conn) == sorted(m[0] for m in MIGRATIONS)
        assert {"events", "runs", "webhooks"} <= set(sa.inspect(conn).get_table_names())
    engine.dispose()
    real.dispose()
